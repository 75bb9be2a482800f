import CLMDB
import Foundation
import Testing

@testable import EventLog

@Suite("EventLog: verify, stats, backup")
struct VerifyTests {
    /// Random bytes: zstd cannot shrink them, so they are stored raw and can be found in the file.
    static func randomPayload(_ seed: UInt64, count: Int = 200) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }

    /// Writes 120 events (random payloads) to 4 streams and closes the log.
    static func writeLog(_ dir: String) async throws -> [[UInt8]] {
        let log = try EventLog(directory: dir, options: testOptions())
        var payloads: [[UInt8]] = []
        for n in 0..<120 {
            let payload = randomPayload(UInt64(n + 1))
            payloads.append(payload)
            try await log.append([proposed(n, payload: payload)], to: StreamID("s\(n % 4)"), expectedRevision: .any)
        }
        await log.close()
        return payloads
    }

    static func copyDataFile(from source: String, to target: String) throws -> String {
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let path = target + "/data.mdb"
        try FileManager.default.copyItem(atPath: source + "/data.mdb", toPath: path)
        return path
    }

    @Test("EventLog: verify: a clean log has no problems and stats add up")
    func clean() async throws {
        try await withTemporaryDirectory { dir in
            _ = try await Self.writeLog(dir)
            let report = try EventLogReader.verify(directory: dir)
            #expect(report.isClean, "\(report)")
            #expect(report.eventsChecked == 120)
            #expect(report.streamsChecked == 4)
            #expect(report.lastPosition == LogPosition(120))
            let stats = try EventLogReader(directory: dir).stats()
            #expect(stats.events == 120)
            #expect(stats.streams == 4)
            #expect(stats.payloadBytesRaw == 120 * 200)
            #expect(stats.eventsStoredRaw == 120)
            #expect(stats.dataFileBytes > stats.envelopeBytes)
            #expect(stats.bytesPerEvent > 200)
        }
    }

    @Test("EventLog: verify: flipped bytes in one payload are reported at that exact position")
    func flippedPayload() async throws {
        try await withTemporaryDirectory { dir in
            let payloads = try await Self.writeLog(dir + "/log")
            let damagedPath = try Self.copyDataFile(from: dir + "/log", to: dir + "/damaged")
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: damagedPath)))
            // Position 77's payload: find it in the file and flip one byte in its middle.
            let needle = payloads[76]
            let live = try #require(try Self.fileOffsets(dir + "/log") { txn in
                try txn.get(txn.dbs.events, Keys.position(77)).map { [$0] } ?? []
            }.first)
            let within = try #require(Self.find(needle, in: Array(bytes[live..<(live + 400)])))
            let offset = live + within
            bytes[offset + 100] ^= 0xFF
            try Data(bytes).write(to: URL(fileURLWithPath: damagedPath))

            let report = try EventLogReader.verify(directory: dir + "/damaged")
            #expect(report.problems.count == 1, "\(report)")
            #expect(report.problems.first?.kind == .checksumMismatch)
            #expect(report.problems.first?.position == LogPosition(77))
            #expect(report.problems.first?.stream == "s0")
            #expect(report.eventsChecked == 120)

            // Readers refuse the damaged event with its position, and read around it.
            let reader = try EventLogReader(directory: dir + "/damaged")
            let error = await expectEventLogError { try reader.readAll(after: .start) }
            #expect(error?.code == .corrupt)
            #expect(error?.position == LogPosition(77))
            #expect(try reader.readAll(after: LogPosition(77)).count == 43)
            #expect(try reader.readAll(after: .start, maxCount: 76).count == 76)
        }
    }

    @Test("EventLog: verify: a truncated data file is reported, never crashes")
    func truncated() async throws {
        try await withTemporaryDirectory { dir in
            _ = try await Self.writeLog(dir + "/log")
            let path = try Self.copyDataFile(from: dir + "/log", to: dir + "/truncated")
            let size = try #require(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
            #expect(truncate(path, off_t(size / 2)) == 0)
            let report = try EventLogReader.verify(directory: dir + "/truncated")
            #expect(!report.isClean)
            #expect(report.problems.first?.kind == .truncatedFile)
            #expect(report.problems.first?.message.contains("truncated") == true)
            let error = await expectEventLogError { try EventLogReader(directory: dir + "/truncated") }
            #expect(error?.code == .corrupt)

            // Cut inside the meta pages: still a report, not a crash.
            #expect(truncate(path, 100) == 0)
            let tiny = try EventLogReader.verify(directory: dir + "/truncated")
            #expect(!tiny.isClean)
        }
    }

    @Test("EventLog: verify: a missing log is a clear error")
    func missing() async throws {
        try await withTemporaryDirectory { dir in
            let error = await expectEventLogError { try EventLogReader.verify(directory: dir + "/nothing") }
            #expect(error?.code == .notFound)
            #expect(error?.message.contains("nothing") == true)
        }
    }

    @Test("EventLog: backup: a compacted copy made while the writer runs holds every event")
    func backup() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir + "/log", options: testOptions())
            for n in 0..<50 {
                try await log.append([proposed(n)], to: StreamID("s\(n % 3)"), expectedRevision: .any,
                                     stateWrites: [.put(key: "last", value: [UInt8(n)])])
            }
            try log.reader.backup(to: dir + "/copy")
            try await log.append([proposed(50)], to: "s0", expectedRevision: .any)
            let copy = try EventLogReader(directory: dir + "/copy")
            #expect(try copy.lastPosition() == LogPosition(50))
            #expect(try copy.readAll(after: .start) == log.reader.readAll(after: .start, maxCount: 50))
            #expect(try copy.state(forKey: "last") == [49])
            #expect(try copy.verify().isClean)
            let again = await expectEventLogError { try log.reader.backup(to: dir + "/copy") }
            #expect(again?.code == .invalidInput)
            await log.close()
        }
    }

    @Test("EventLog: verify: index chunks swapped within a stream (same positions, wrong revisions) are reported")
    func scrambledIndex() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            // 150 events in stream "s" (chunks 0, 1, 2 of its index), interleaved with "t".
            for n in 0..<150 {
                try await log.append([proposed(2 * n)], to: "s", expectedRevision: .any)
                try await log.append([proposed(2 * n + 1)], to: "t", expectedRevision: .any)
            }
            await log.close()
            #expect(try EventLogReader.verify(directory: dir).isClean)

            // Swap the first two index chunks of "s": each stays an increasing run, and the
            // index still lists exactly the positions of the stream's envelopes.
            let environment = try LMDBEnvironment.shared(directory: dir, create: true, mapSizeBytes: 1 << 20)
            let (number, first, second) = try environment.read { txn in
                let number = try #require(try txn.number(of: "s", kind: .stream))
                let first = try #require(try txn.get(txn.dbs.streamIndex, StreamIndex.key(number, 0))).map { $0 }
                let second = try #require(try txn.get(txn.dbs.streamIndex, StreamIndex.key(number, 1))).map { $0 }
                return (number, first, second)
            }
            try Self.write(environment) { txn in
                try txn.put(txn.dbs.streamIndex, StreamIndex.key(number, 0), second)
                try txn.put(txn.dbs.streamIndex, StreamIndex.key(number, 1), first)
            }

            let report = try EventLogReader.verify(directory: dir)
            let mismatches = report.problems.filter { $0.kind == .indexMismatch }
            #expect(mismatches.count == 128, "\(report)")
            #expect(mismatches.allSatisfy { $0.stream == "s" })
            // Revision 0 of "s" is at position 1; the scrambled index lists it as revision 64.
            let atFirst = try #require(mismatches.first { $0.position == LogPosition(1) })
            #expect(atFirst.message.contains("revision 64"))
            #expect(report.problems.count == mismatches.count, "\(report)")
        }
    }

    @Test("EventLog: verify: a log longer than one read transaction's share, verified while the writer appends and grows the map")
    func verifyWhileAppending() async throws {
        try await withTemporaryDirectory { dir in
            var options = testOptions()
            options.initialMapSizeBytes = 256 << 10
            let log = try EventLog(directory: dir, options: options)
            var n = 0
            for _ in 0..<50 {
                try await log.append((0..<100).map { _ in defer { n += 1 }; return proposed(n) },
                                     to: StreamID("s\(n % 7)"), expectedRevision: .any)
            }
            let before = try log.reader.lastPosition()
            #expect(before == LogPosition(5000))
            let mapBefore = log.environment.mapSizeBytes
            let start = n
            let appender = Task {
                for chunk in 0..<40 {
                    try await log.append((0..<100).map { proposed(start + chunk * 100 + $0) },
                                         to: StreamID("u\(chunk % 5)"), expectedRevision: .any)
                }
            }
            let report = try log.reader.verify()
            try await appender.value
            #expect(report.isClean, "\(report)")
            // Everything up to the position at its start, in order across several read
            // transactions; appends after it may or may not be included.
            #expect(report.eventsChecked >= 5000)
            #expect(report.lastPosition.rawValue == UInt64(report.eventsChecked))
            #expect(log.environment.mapSizeBytes > mapBefore)
            let after = try log.reader.verify()
            #expect(after.isClean, "\(after)")
            #expect(after.eventsChecked == 9000)
            #expect(after.streamsChecked == 12)
            await log.close()
        }
    }

    /// One write transaction outside any writer, to damage a closed log on purpose.
    static func write(_ environment: LMDBEnvironment, _ body: (borrowing WriteTransaction) throws -> Void) throws {
        let txn = try WriteTransaction(environment: environment)
        try body(txn)
        try txn.commit()
    }

    /// The file offsets of what `body` returns (bytes read through the map in one read
    /// transaction): the live copies, where a search of the file can find stale ones in free
    /// pages first (the fold rewrites pages after the commits).
    static func fileOffsets(
        _ directory: String, _ body: (ReadTransaction) throws -> [UnsafeRawBufferPointer]
    ) throws -> [Int] {
        let environment = try LMDBEnvironment.shared(directory: directory, create: false, mapSizeBytes: 0)
        // The map is page-aligned and every page starts with its own number (`mp_pgno`):
        // the page of bytes inside a leaf page, and their offset in it.
        return try environment.read { txn in
            try body(txn).map { bytes in
                let address = Int(bitPattern: bytes.baseAddress)
                let page = UnsafeRawPointer(bitPattern: address & ~4095)!.load(as: UInt64.self)
                return Int(page) * 4096 + address & 4095
            }
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return start }
        }
        return nil
    }
}
