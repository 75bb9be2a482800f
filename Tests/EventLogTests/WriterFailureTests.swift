import Foundation
import Logging
import Synchronization
import Testing

@testable import EventLog

#if canImport(Glibc)
import Glibc
#endif

/// How the writer contains failures: one request's, the map's, the disk's.
@Suite("EventLog: writer failures")
struct WriterFailureTests {
    /// Enqueues one single-event append to `stream` and returns the task awaiting its result.
    static func enqueue(_ inbox: Inbox, _ n: Int, to stream: StreamID) async throws
        -> Task<Result<AppendResult, any Error>, Never>
    {
        try await inbox.reserve()
        let request = PreparedStream(
            streamID: stream, expectedRevision: .any,
            events: [PreparedEvent(proposed: proposed(n), compressed: nil, dictionaryID: 0)])
        let enqueued = Mutex(false)
        let task = Task { () -> Result<AppendResult, any Error> in
            do {
                return .success(try await withCheckedThrowingContinuation { waiter in
                    inbox.enqueue(AppendRequest(streams: [request], stateWrites: [], waiter: waiter))
                    enqueued.withLock { $0 = true }
                })
            } catch {
                return .failure(error)
            }
        }
        while !enqueued.withLock({ $0 }) { try await Task.sleep(nanoseconds: 1_000_000) }
        return task
    }

    // Breaking it on purpose: make BatchWriter.process fail the whole batch on a
    // RequestFailure (as before) and the append to "good" fails with the damage of "bad".
    @Test("EventLog: writer: one request's error (a damaged index chunk) fails only that request, its batch commits the rest")
    func oneRequestFails() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            for n in 0..<3 { try await log.append([proposed(n)], to: "bad", expectedRevision: .any) }
            try await log.append([proposed(3)], to: "good", expectedRevision: .any)
            await log.close()
            // Damage the last index chunk of "bad": an overlong varint.
            let environment = try LMDBEnvironment.shared(directory: dir, create: true, mapSizeBytes: 1 << 20)
            let number = try #require(try environment.read { try $0.number(of: "bad", kind: .stream) })
            try VerifyTests.write(environment) { txn in
                try txn.put(txn.dbs.streamIndex, StreamIndex.key(number, 0), [UInt8](repeating: 0xFF, count: 12))
            }

            // Both requests queued before the writer starts, so they share one batch.
            let inbox = Inbox(capacity: 16)
            let bad = try await Self.enqueue(inbox, 10, to: "bad")
            let good = try await Self.enqueue(inbox, 11, to: "good")
            let fresh = try await Self.enqueue(inbox, 12, to: "new")
            inbox.close()
            let completion = Completion()
            let writer = try BatchWriter(
                environment: environment, inbox: inbox, options: testOptions(), logger: Logger(label: "test"),
                registry: DictionaryRegistry(), lock: try WriterLock(directory: dir), completion: completion)
            let handoff = WriterHandoff(writer: writer)
            let thread = Thread { handoff.writer.run() }
            thread.start()
            await completion.wait()

            if case .failure(let error as EventLogError) = await bad.value {
                #expect(error.code == .corrupt)
                #expect(error.message.contains("stream index"), "\(error)")
            } else {
                Issue.record("the append to the damaged stream did not fail with its damage")
            }
            let goodResult = try await good.value.get()
            #expect(goodResult.streams.first?.firstRevision == StreamRevision(1))
            _ = try await fresh.value.get()
            let reader = EventLogReader(environment: environment, logger: Logger(label: "test"))
            #expect(try reader.readStream("good").count == 2)
            #expect(try reader.readStream("new").count == 1)
            #expect(try reader.lastPosition() == LogPosition(6))
        }
    }

    // Breaking it on purpose: drop `stop(failure)` in BatchWriter.process and the second
    // append fails with a fresh per-batch I/O error instead of the stopped writer's, the
    // writer keeps running and `writerFailure` stays nil.
    @Test("EventLog: writer: after an I/O error the writer stops with a clear error; later appends fail at once naming it")
    func ioErrorStopsWriter() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            try await log.append([proposed(0)], to: "s", expectedRevision: .any)
            log.environment.injectedCommitError.withLock { $0 = EIO }
            let first = await expectEventLogError { try await log.append([proposed(1)], to: "s", expectedRevision: .any) }
            #expect(first?.code == .diskFull)
            #expect(first?.lmdb?.code == .ioError)
            let stopped = try #require(log.writerFailure)
            #expect(stopped.message.contains("writer stopped"), "\(stopped)")
            let second = await expectEventLogError { try await log.append([proposed(2)], to: "s", expectedRevision: .any) }
            #expect(second?.message.contains("writer stopped") == true, "\(String(describing: second))")
            #expect(second?.lmdb?.code == .ioError)
            await log.close()
            #expect(try log.reader.lastPosition() == LogPosition(1))
        }
        // The lock was released with the stopped writer: the next open (a fresh process or
        // environment, after the disk is fixed) writes again.
    }

    // Breaking it on purpose: remove the growAheadOfNeed() call in BatchWriter.process and
    // every doubling goes through MDB_MAP_FULL (mapFullCount > 0).
    @Test("EventLog: writer: the map grows ahead of need, so appends filling a small map never meet MDB_MAP_FULL")
    func growsAhead() async throws {
        try await withTemporaryDirectory { dir in
            var options = testOptions()
            options.initialMapSizeBytes = 256 << 10
            let log = try EventLog(directory: dir, options: options)
            let before = log.environment.mapSizeBytes
            // A steady reader alongside, as a tailing engine would be.
            let reading = Atomic<Bool>(true)
            let reader = Task.detached {
                while reading.load(ordering: .relaxed) { _ = try? log.reader.lastPosition() }
            }
            for n in 0..<3000 {
                try await log.append([proposed(n)], to: StreamID("s\(n % 50)"), expectedRevision: .any)
            }
            reading.store(false, ordering: .relaxed)
            await reader.value
            #expect(log.environment.mapSizeBytes >= 4 * before)
            #expect(log.environment.mapFullCount.load(ordering: .relaxed) == 0)
            await log.close()
        }
    }
}
