import CLMDB
import EventLogTesting
import Foundation
import Synchronization
import Testing

@testable import EventLog

#if canImport(Glibc)
import Glibc
#endif

/// Damage anywhere in the data file: verify never crashes or hangs, and reports what changed.
@Suite("EventLog: damaged data files")
struct DamageTests {
    /// What an operator reads back: every event in order (`capstan log export`), and each
    /// stream by revision. Not the state: state values carry no checksum in format 1, so
    /// damage to one cannot be told from a value written that way.
    struct Export: Equatable {
        var events: [RecordedEvent]
        var streams: [[RecordedEvent]]
    }

    static func export(_ dir: String, streams: [StreamID]) throws -> Export {
        let reader = try EventLogReader(directory: dir)
        return Export(events: try reader.readAll(after: .start), streams: try streams.map { try reader.readStream($0) })
    }

    /// A small log with every database in use: 900 events over 120 streams (several index
    /// chunks for some), trained dictionaries, actors, state, and freed pages from many commits.
    static func writeLog(_ dir: String) async throws -> [StreamID] {
        var options = testOptions(training: true)
        options.dictionaryTraining.minimumSamples = 200
        let log = try EventLog(directory: dir, options: options)
        let streams = (0..<120).map { StreamID("cluster/c\($0 % 7)/machine-\($0)") }
        for n in 0..<900 {
            // Streams 0...3 get most events (more than one index chunk of 64).
            let stream = n % 3 == 0 ? streams[n % 120] : streams[n % 4]
            try await log.append(
                [proposed(n, type: n % 5 == 0 ? "MachineDeleted" : "MachineProvisioned", actor: "actor-\(n % 9)",
                          causation: n > 0 ? eventID(UInt64(n - 1)) : nil, correlation: eventID(UInt64(n / 50)))],
                to: stream, expectedRevision: .any,
                stateWrites: n % 10 == 0 ? [.put(key: "cursor/\(n % 30)", value: [UInt8(n % 256)])] : [])
        }
        await log.close()
        return streams
    }

    // Breaking it on purpose: without `PageCheck` at open (comment out `checkPages` in
    // LMDBEnvironment.init), a handful of the copies crash the test process with SIGSEGV or
    // SIGBUS; without the verify bounds, copies with keys out of order spin forever.
    @Test("EventLog: damage: 16 random bytes at a random offset, 240 copies: no crash, no hang, every changed export reported")
    func randomOffsets() async throws {
        try await withTemporaryDirectory { dir in
            let streams = try await Self.writeLog(dir + "/clean")
            let clean = try Self.export(dir + "/clean", streams: streams)
            #expect(try EventLogReader.verify(directory: dir + "/clean").isClean)
            let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/clean/data.mdb")))
            var random = SeededRandom(seed: 0x11_2026)
            var changed = 0
            var reported = 0
            for copy in 0..<240 {
                var bytes = original
                let offset = random.below(bytes.count - 16)
                for index in 0..<16 { bytes[offset + index] = UInt8(truncatingIfNeeded: random.next()) }
                let target = dir + "/copy\(copy)"
                try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
                try Data(bytes).write(to: URL(fileURLWithPath: target + "/data.mdb"))

                let exported = Result { try Self.export(target, streams: streams) }
                let report: VerifyReport
                do {
                    report = try EventLogReader.verify(directory: target)
                } catch {
                    Issue.record("copy \(copy) (offset \(offset)): verify threw \(error)")
                    continue
                }
                let same = (try? exported.get()) == clean
                if !same {
                    changed += 1
                    #expect(!report.isClean, "copy \(copy): 16 bytes at offset \(offset) (page \(offset / 4096)) changed the export, verify says clean: \(Self.difference(exported, clean))")
                }
                if !report.isClean {
                    reported += 1
                    // Every finding names where: a page, a position or a stream.
                    for problem in report.problems where problem.kind == .damagedPage {
                        #expect(problem.page != nil && problem.message.contains("page"), "\(problem)")
                    }
                }
                try? FileManager.default.removeItem(atPath: target)
            }
            // The damage must have landed on used bytes often enough to mean something.
            #expect(changed >= 40, "only \(changed) of 240 damaged copies changed the export")
            #expect(reported >= changed)
        }
    }

    static func difference(_ exported: Result<Export, any Error>, _ clean: Export) -> String {
        switch exported {
        case .failure(let error): return "export failed: \(error)"
        case .success(let export):
            if export.events != clean.events {
                guard export.events.count == clean.events.count else {
                    return "events differ: \(export.events.count) events, not \(clean.events.count)"
                }
                let (a, b) = zip(export.events, clean.events).first { $0 != $1 }!
                return "events differ: first at position \(b.position): \(a) instead of \(b)"
            }
            return "streams differ"
        }
    }

    /// The file offsets of leaf pages (flag 0x02) whose first key is 8 bytes: stream number
    /// (BE) ≥ 2 and chunk 0, that is stream index pages other than the first.
    static func streamIndexLeafStarts(_ bytes: [UInt8], pageSize: Int) -> [(page: Int, keyOffset: Int)] {
        var found: [(Int, Int)] = []
        for page in 2..<(bytes.count / pageSize) {
            let base = page * pageSize
            func u16(_ at: Int) -> Int { Int(bytes[base + at]) | Int(bytes[base + at + 1]) << 8 }
            guard u16(10) == 0x02, u16(12) > 16 else { continue }
            let node = u16(16)
            guard node + 16 <= pageSize, u16(node + 6) == 8 else { continue }
            let key = Array(bytes[(base + node + 8)..<(base + node + 16)])
            let stream = key[0..<4].reduce(0) { $0 << 8 | Int($1) }
            guard stream >= 2, stream < 1000, key[4..<8].allSatisfy({ $0 == 0 }) else { continue }
            found.append((page, base + node + 8))
        }
        return found
    }

    // A key out of order across pages passes the page check (each page is in order): the
    // index walk must still end (its seeks are bounded and must move forward) and report.
    @Test("EventLog: damage: a stream index key out of order across pages is reported, the walk ends")
    func indexKeysOutOfOrder() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir + "/log", options: testOptions())
            // 600 streams of 2 events: the stream index spans several leaf pages.
            for n in 0..<1200 {
                try await log.append([proposed(n)], to: StreamID("s\(n % 600)"), expectedRevision: .any)
            }
            await log.close()
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/log/data.mdb")))
            // Live leaves only: free pages can hold stale copies of index pages.
            let live = Set(try VerifyTests.fileOffsets(dir + "/log") { txn in
                let cursor = try txn.cursor(txn.dbs.streamIndex)
                var keys: [UnsafeRawBufferPointer] = []
                var entry = try cursor.get(MDB_FIRST)
                while let current = entry {
                    keys.append(current.key)
                    entry = try cursor.get(MDB_NEXT)
                }
                return keys
            }.map { $0 / 4096 })
            let starts = Self.streamIndexLeafStarts(bytes, pageSize: 4096).filter { live.contains($0.page) }
            let last = try #require(starts.max { $0.keyOffset < $1.keyOffset }, "no stream index leaf page found")
            // The first key of a later leaf page now names stream 1: in order within its page,
            // out of order with the pages before it.
            bytes.replaceSubrange(last.keyOffset..<(last.keyOffset + 4), with: [0, 0, 0, 1])
            try FileManager.default.createDirectory(atPath: dir + "/damaged", withIntermediateDirectories: false)
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/damaged/data.mdb"))

            let report = try EventLogReader.verify(directory: dir + "/damaged")
            #expect(!report.isClean)
            #expect(report.problems.contains { $0.kind == .missingIndexEntry || $0.kind == .danglingIndexEntry },
                    "\(report)")
        }
    }

    // Breaking it on purpose: without the entry bound in StreamIndex.decode, a damaged value
    // length (megabytes of "valid" varints) is decoded to the end before it is refused: the
    // spin `log verify` was seen in.
    @Test("EventLog: damage: a stream index chunk is refused as soon as it holds more than 64 entries")
    func overlongChunk() throws {
        let bytes = [UInt8](repeating: 1, count: 1 << 20)
        do {
            _ = try bytes.withUnsafeBytes { try StreamIndex.decode($0, stream: 7, chunk: 0) }
            Issue.record("an overlong chunk decoded")
        } catch let error as EventLogError {
            #expect(error.code == .corrupt)
            #expect(error.message.contains("more than 64"), "\(error)")
        }
    }

    // Breaking it on purpose: without `checkPages` in LMDBEnvironment.init, opening the log
    // reads the last events page through the map (the writer looks up the last position) and
    // the process dies of SIGSEGV.
    @Test("EventLog: damage: the engine opening a log with a damaged page gets a clear error naming the page")
    func openDamaged() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir + "/log", options: testOptions())
            for n in 0..<300 { try await log.append([proposed(n)], to: "s", expectedRevision: .any) }
            await log.close()
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/log/data.mdb")))
            // The page holding the last event's key (position 300 BE): point its nodes far away.
            let at = try #require(try VerifyTests.fileOffsets(dir + "/log") { txn in
                try txn.get(txn.dbs.events, Keys.position(300)).map { [$0] } ?? []
            }.first)
            let page = at / 4096
            for slot in 0..<8 {
                bytes[page * 4096 + 16 + 2 * slot] = 0xF0
                bytes[page * 4096 + 17 + 2 * slot] = 0xFF
            }
            try FileManager.default.createDirectory(atPath: dir + "/damaged", withIntermediateDirectories: false)
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/damaged/data.mdb"))

            let error = await expectEventLogError { try EventLog(directory: dir + "/damaged", options: testOptions()) }
            #expect(error?.code == .corrupt)
            #expect(error?.page == UInt64(page), "\(String(describing: error))")
            #expect(error?.message.contains("page \(page)") == true)
            #expect(error?.message.contains("events") == true)
            let report = try EventLogReader.verify(directory: dir + "/damaged")
            #expect(report.problems.first?.kind == .damagedPage)
            #expect(report.problems.first?.page == UInt64(page))
            // The lock was released: a later open (after repair) is not refused as locked.
            let again = await expectEventLogError { try EventLog(directory: dir + "/damaged", options: testOptions()) }
            #expect(again?.code == .corrupt)
        }
    }

    // Breaking it on purpose: remove the syncDirectory calls in LMDBEnvironment.shared and
    // this fails.
    @Test("EventLog: durability: creating a log fsyncs its directory, reopening does not need to")
    func directorySynced() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/new-log"
            let log = try EventLog(directory: path, options: testOptions())
            let canonical = LMDBEnvironment.canonicalPath(path)
            #expect(LMDBEnvironment.syncedDirectories.withLock { $0.contains(canonical) })
            try await log.append([proposed(1)], to: "s", expectedRevision: .any)
            await log.close()
        }
    }
}
