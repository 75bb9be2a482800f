import CLMDB
import Foundation
import Logging
import Testing

@testable import EventLog

/// The fold: commits write only envelopes and new names; the stream index, the name hashes
/// and the type counters are derived from them later, and readers cover the unfolded tail.
@Suite("EventLog: fold")
struct FoldTests {
    /// Options that never fold on their own (no idle fold, a bound out of reach).
    static func unfoldedOptions() -> EventLogOptions {
        var options = testOptions()
        options.maxUnfoldedEvents = 1 << 30
        options.foldsWhenIdle = false
        return options
    }

    static func foldState(_ environment: LMDBEnvironment) throws -> FoldState? {
        try environment.read { try $0.foldState() }
    }

    /// Appends `count` events over `streams` streams, s0, s1, ... in turn.
    static func append(_ log: EventLog, _ range: Range<Int>, streams: Int) async throws {
        for n in range {
            try await log.append([proposed(n, type: "T\(n % 3)", actor: "a\(n % 2)")],
                                 to: StreamID("s\(n % streams)"), expectedRevision: .any)
        }
    }

    static func expectStreams(_ reader: EventLogReader, events: Int, streams: Int, _ context: String) throws {
        for stream in 0..<streams {
            let expected = (0..<events).filter { $0 % streams == stream }
            let read = try reader.readStream(StreamID("s\(stream)"))
            #expect(read.map(\.id) == expected.map { eventID(UInt64($0)) }, "\(context): s\(stream)")
            #expect(read.map(\.revision.rawValue) == Array(0..<UInt64(expected.count)), "\(context): s\(stream)")
            #expect(try reader.streamRevision(StreamID("s\(stream)")) == StreamRevision(UInt64(expected.count - 1)),
                    "\(context): s\(stream)")
            // From a revision inside the tail and inside the index.
            let from = UInt64(expected.count / 2)
            #expect(try reader.readStream(StreamID("s\(stream)"), from: StreamRevision(from)).first?.revision.rawValue
                    == from, "\(context): s\(stream) from \(from)")
        }
        #expect(try reader.streamRevision("missing") == nil)
        #expect(try reader.readStream("missing").isEmpty)
    }

    // Breaking it on purpose: make `forEachPosition` skip `tailEntries` and the streams read
    // only their folded events (or none); make the writer still write the index inline and
    // the fold record stays at 0 while `unfolded` is asserted.
    @Test("EventLog: fold: commits leave the derived tables to the fold; readers cover the unfolded tail")
    func readersCoverTheTail() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: Self.unfoldedOptions())
            try await Self.append(log, 0..<300, streams: 7)
            let fold = try #require(try Self.foldState(log.environment))
            #expect(fold.position == 0, "nothing folded yet: \(fold)")
            #expect(try log.environment.read { try $0.entryCount($0.dbs.streamIndex) } == 0)
            #expect(try log.environment.read { try $0.entryCount($0.dbs.names) } == 0)
            try Self.expectStreams(log.reader, events: 300, streams: 7, "unfolded")
            // Revisions are checked against the tail too.
            let error = await expectEventLogError {
                try await log.append([proposed(999)], to: "s0", expectedRevision: .exact(StreamRevision(3)))
            }
            #expect(error?.code == .wrongExpectedRevision)
            // Verify knows the tail is not an index defect.
            #expect(try log.reader.verify().problems.isEmpty)
            await log.close()
            // Close folds: everything is in the derived tables.
            let closed = try #require(try Self.foldState(log.environment))
            #expect(closed.position == 300)
            #expect(closed.streams == 7 && closed.eventTypes == 3 && closed.actors == 2)
            #expect(try log.environment.read { try $0.entryCount($0.dbs.streamIndex) } == 7)
            try Self.expectStreams(log.reader, events: 300, streams: 7, "folded")
            let report = try log.reader.verify()
            #expect(report.problems.isEmpty, "\(report.problems)")
        }
    }

    // Breaking it on purpose: drop `recoverTail()` from the writer's init and the reopened
    // writer checks revisions against the index only (s0: 40 folded events), so the append
    // expecting revision 59 is refused.
    @Test("EventLog: fold: a writer reopened after an unfolded tail (fold failed) rebuilds it and folds it later")
    func recoveryRebuildsTheTail() async throws {
        try await withTemporaryDirectory { dir in
            var options = Self.unfoldedOptions()
            options.maxUnfoldedEvents = 100
            let log = try EventLog(directory: dir, options: options)
            try await Self.append(log, 0..<250, streams: 5)
            #expect(try Self.foldState(log.environment)?.position == 200)
            // The fold at close fails: the tail stays as a crash would leave it.
            log.environment.injectedFoldError.withLock { $0 = MDB_BAD_TXN }
            try await Self.append(log, 250..<300, streams: 5)
            await log.close()
            log.environment.injectedFoldError.withLock { $0 = nil }
            #expect(try Self.foldState(log.environment)?.position == 200)
            try Self.expectStreams(log.reader, events: 300, streams: 5, "tail of 100")

            let reopened = try EventLog(directory: dir, options: Self.unfoldedOptions())
            // s0 holds 60 events: the next expected revision is 60, known from the tail.
            try await reopened.append([proposed(300)], to: "s0", expectedRevision: .exact(StreamRevision(59)))
            try await reopened.append([proposed(301)], to: "new", expectedRevision: .noStream)
            await reopened.close()
            let fold = try #require(try Self.foldState(reopened.environment))
            #expect(fold.position == 302)
            #expect(fold.streams == 6)
            #expect(try reopened.reader.readStream("s0").count == 61)
            #expect(try reopened.reader.readStream("new").count == 1)
            let report = try reopened.reader.verify()
            #expect(report.problems.isEmpty, "\(report.problems)")
            // No name was numbered twice.
            #expect(try reopened.environment.read { try $0.lastNumber(kind: .stream) } == 6)
        }
    }

    // Breaking it on purpose: treat a missing fold record as "nothing folded" (position 0)
    // and the format-1 log's streams read every event twice (index, then tail).
    @Test("EventLog: fold: a format-1 log (no fold record, every commit indexed) reads, verifies and takes appends")
    func formatOneLogStillReads() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            try await Self.append(log, 0..<200, streams: 6)
            await log.close()
            // What format 1 wrote: the same tables, every commit indexed, no fold record.
            try VerifyTests.write(log.environment) { txn in
                try txn.delete(txn.dbs.meta, MetaKey.fold)
                try txn.delete(txn.dbs.meta, MetaKey.format)
            }
            #expect(try Self.foldState(log.environment) == nil)
            try Self.expectStreams(log.reader, events: 200, streams: 6, "format 1")
            #expect(try log.reader.verify().problems.isEmpty)
            let reopened = try EventLog(directory: dir, options: Self.unfoldedOptions())
            try await Self.append(reopened, 200..<260, streams: 6)
            // The first commit wrote the fold record: everything before it is folded.
            #expect(try Self.foldState(reopened.environment)?.position == 200)
            try Self.expectStreams(reopened.reader, events: 260, streams: 6, "format 1 + tail")
            await reopened.close()
            #expect(try reopened.reader.verify().problems.isEmpty)
        }
    }

    // Breaking it on purpose: make `foldTail` skip its work when idle (only at the bound)
    // and the fold record stays at 0 until close.
    @Test("EventLog: fold: the writer folds once its inbox is idle")
    func foldsWhenIdle() async throws {
        try await withTemporaryDirectory { dir in
            var options = testOptions()
            options.maxUnfoldedEvents = 1 << 30
            let log = try EventLog(directory: dir, options: options)
            try await Self.append(log, 0..<50, streams: 3)
            var folded = false
            for _ in 0..<2000 where !folded {
                folded = try Self.foldState(log.environment)?.position == 50
                if !folded { try await Task.sleep(nanoseconds: 5_000_000) }
            }
            #expect(folded, "no fold within 10 s of idleness")
            await log.close()
        }
    }

    // Breaking it on purpose: make `foldTail` leave `foldFailure` unset and the writer
    // tries the same failing fold after every batch (foldFailureCount passes 1); stop the
    // writer instead and the appends to "good" throw.
    @Test("EventLog: fold: a damaged index chunk the fold must extend stops folding, not appending")
    func damagedChunkStopsFolding() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: Self.unfoldedOptions())
            for n in 0..<3 { try await log.append([proposed(n)], to: "bad", expectedRevision: .any) }
            await log.close()
            var options = Self.unfoldedOptions()
            options.maxUnfoldedEvents = 4
            let reopened = try EventLog(directory: dir, options: options)
            // Its count read from the intact index: "bad" is in the writer's tail now.
            try await reopened.append([proposed(3)], to: "bad", expectedRevision: .exact(StreamRevision(2)))
            let number = try #require(try reopened.environment.read { try $0.number(of: "bad", kind: .stream) })
            try VerifyTests.write(reopened.environment) { txn in
                try txn.put(txn.dbs.streamIndex, StreamIndex.key(number, 0), [UInt8](repeating: 0xFF, count: 12))
            }
            let folds = reopened.environment.foldCount.load(ordering: .relaxed)
            for n in 4..<20 { try await reopened.append([proposed(n)], to: "good", expectedRevision: .any) }
            #expect(reopened.environment.foldCount.load(ordering: .relaxed) == folds, "a fold over the damage committed")
            #expect(reopened.environment.foldFailureCount.load(ordering: .relaxed) == 1)
            #expect(try Self.foldState(reopened.environment)?.position == 3)
            #expect(try reopened.reader.readStream("good").count == 16)
            await reopened.close()
            let report = try reopened.reader.verify()
            #expect(report.problems.contains { $0.kind == .danglingIndexEntry }, "\(report.problems)")
        }
    }

    // Breaking it on purpose: ignore `maxUnfoldedEvents == 0` in `writeAndCommit` and the
    // index stays empty until the fold; skip the first `foldTail()` in `run` and the
    // recovered tail is claimed folded by the first inline commit (verify: missing entries).
    @Test("EventLog: fold: maxUnfoldedEvents 0 writes the derived entries in each commit, after folding an older tail")
    func derivedInEachCommit() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: Self.unfoldedOptions())
            try await Self.append(log, 0..<40, streams: 4)
            log.environment.injectedFoldError.withLock { $0 = MDB_BAD_TXN }
            await log.close()
            log.environment.injectedFoldError.withLock { $0 = nil }
            #expect(try Self.foldState(log.environment)?.position == 0)

            var options = Self.unfoldedOptions()
            options.maxUnfoldedEvents = 0
            let inline = try EventLog(directory: dir, options: options)
            try await Self.append(inline, 40..<100, streams: 4)
            // Every commit is folded when it returns: nothing is left for a reader to derive.
            #expect(try Self.foldState(inline.environment)?.position == 100)
            #expect(try inline.environment.read { try $0.entryCount($0.dbs.streamIndex) } == 4)
            #expect(try inline.environment.read { try $0.entryCount($0.dbs.names) } >= 4)
            try Self.expectStreams(inline.reader, events: 100, streams: 4, "inline")
            #expect(try inline.reader.verify().problems.isEmpty)
            await inline.close()
        }
    }
}
