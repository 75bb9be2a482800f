import Foundation
import Testing

@testable import EventLog

#if canImport(Glibc)
import Glibc
#endif

@Suite("EventLog: optimistic concurrency and group commit")
struct ConcurrencyTests {
    @Test("EventLog: conflicts: each expected revision case, with the error's fields")
    func conflicts() async throws {
        // Goal: every ExpectedRevision case accepts what it should and names stream, expected
        // and actual when it refuses.
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            // streamExists on a missing stream.
            var error = await expectEventLogError {
                try await log.append([proposed(1)], to: "s", expectedRevision: .streamExists)
            }
            #expect(error?.code == .wrongExpectedRevision)
            #expect(error?.stream == "s")
            #expect(error?.expected == .streamExists)
            #expect(error?.actual == nil)
            // exact on a missing stream.
            error = await expectEventLogError {
                try await log.append([proposed(1)], to: "s", expectedRevision: .exact(StreamRevision(0)))
            }
            #expect(error?.expected == .exact(StreamRevision(0)))
            #expect(error?.actual == nil)
            #expect(error?.message.contains("does not exist") == true)

            try await log.append([proposed(1), proposed(2)], to: "s", expectedRevision: .noStream)
            // noStream on an existing stream.
            error = await expectEventLogError {
                try await log.append([proposed(3)], to: "s", expectedRevision: .noStream)
            }
            #expect(error?.code == .wrongExpectedRevision)
            #expect(error?.expected == .noStream)
            #expect(error?.actual == StreamRevision(1))
            // exact with a stale revision.
            error = await expectEventLogError {
                try await log.append([proposed(3)], to: "s", expectedRevision: .exact(StreamRevision(0)))
            }
            #expect(error?.stream == "s")
            #expect(error?.expected == .exact(StreamRevision(0)))
            #expect(error?.actual == StreamRevision(1))
            #expect(error?.message.contains("stream s") == true)
            #expect(error?.message.contains("its revision is 1") == true)
            // The accepted cases.
            try await log.append([proposed(3)], to: "s", expectedRevision: .exact(StreamRevision(1)))
            try await log.append([proposed(4)], to: "s", expectedRevision: .streamExists)
            let last = try await log.append([proposed(5)], to: "s", expectedRevision: .any)
            #expect(last.streams[0].lastRevision == StreamRevision(4))
            #expect(try log.reader.readStream("s").map(\.id) == (1...5).map { eventID(UInt64($0)) })
            #expect(try log.reader.lastPosition() == LogPosition(5))
            await log.close()
        }
    }

    @Test("EventLog: group commit: a rejected append fails alone while concurrent ones commit")
    func rejectedInBatch() async throws {
        // Goal: expected revisions are checked against earlier requests of the same batch, and
        // a rejected request fails alone. Method: 40 concurrent appenders race for one stream
        // with .noStream while 40 others append to their own streams.
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            let outcomes = await withTaskGroup(of: (Int, Result<AppendResult, EventLogError>).self) { group in
                for n in 0..<80 {
                    group.addTask {
                        let stream: StreamID = n % 2 == 0 ? "contested" : StreamID("own-\(n)")
                        do {
                            return (n, .success(try await log.append([proposed(n)], to: stream, expectedRevision: .noStream)))
                        } catch let error as EventLogError {
                            return (n, .failure(error))
                        } catch {
                            return (n, .failure(EventLogError(.lmdb, "\(error)")))
                        }
                    }
                }
                var all: [(Int, Result<AppendResult, EventLogError>)] = []
                for await outcome in group { all.append(outcome) }
                return all
            }
            let contested = outcomes.filter { $0.0 % 2 == 0 }
            let own = outcomes.filter { $0.0 % 2 == 1 }
            let winners = contested.filter { (try? $0.1.get()) != nil }.count
            #expect(winners == 1)
            for (_, outcome) in contested {
                if case .failure(let error) = outcome {
                    #expect(error.code == .wrongExpectedRevision)
                    #expect(error.actual == StreamRevision(0))
                }
            }
            let ownCommitted = own.filter { (try? $0.1.get()) != nil }.count
            #expect(ownCommitted == 40)
            let all = try log.reader.readAll(after: .start)
            #expect(all.map(\.position.rawValue) == Array(1...41))
            #expect(try log.reader.readStream("contested").count == 1)
            await log.close()
        }
    }

    @Test("EventLog: group commit: concurrent appends to one stream stay gap-free across index chunks")
    func concurrentOneStream() async throws {
        // Goal: requests of one batch extending the same stream (also across the index's
        // 64-revision chunks) get consecutive revisions. Method: 10 tasks × 30 appends, `.any`.
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<10 {
                    group.addTask {
                        for step in 0..<30 {
                            try await log.append([proposed(task * 100 + step)], to: "shared", expectedRevision: .any)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let events = try log.reader.readStream("shared")
            #expect(events.map(\.revision.rawValue) == Array(0..<300))
            #expect(events.map(\.position.rawValue) == Array(1...300))
            #expect(try log.reader.readStream("shared", from: StreamRevision(130), maxCount: 3).map(\.position.rawValue) == [131, 132, 133])
            #expect(try log.reader.streamRevision("shared") == StreamRevision(299))
            #expect(try log.reader.verify().isClean)
            await log.close()
        }
    }

    @Test("EventLog: multi-stream: a conflict in one stream writes nothing of the append")
    func multiStreamAtomicity() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            try await log.append([proposed(1)], to: "b", expectedRevision: .noStream)
            let error = await expectEventLogError {
                try await log.append(
                    [
                        StreamAppend(streamID: "a", expectedRevision: .noStream, events: [proposed(2), proposed(3)]),
                        StreamAppend(streamID: "b", expectedRevision: .exact(StreamRevision(5)), events: [proposed(4)]),
                    ], stateWrites: [.put(key: "x", value: [1])])
            }
            #expect(error?.code == .wrongExpectedRevision)
            #expect(error?.stream == "b")
            #expect(error?.actual == StreamRevision(0))
            #expect(try log.reader.streamRevision("a") == nil)
            #expect(try log.reader.lastPosition() == LogPosition(1))
            #expect(try log.reader.state(forKey: "x") == nil)

            let result = try await log.append(
                [
                    StreamAppend(streamID: "a", expectedRevision: .noStream, events: [proposed(2), proposed(3)]),
                    StreamAppend(streamID: "b", expectedRevision: .exact(StreamRevision(0)), events: [proposed(4)]),
                ], stateWrites: [.put(key: "x", value: [1])])
            #expect(result.streams.map(\.streamID) == ["a", "b"])
            #expect(result.streams[0].firstPosition == LogPosition(2))
            #expect(result.streams[0].lastPosition == LogPosition(3))
            #expect(result.streams[1].firstRevision == StreamRevision(1))
            #expect(result.lastPosition == LogPosition(4))
            #expect(try log.reader.state(forKey: "x") == [1])
            let all = try log.reader.readAll(after: .start)
            #expect(Set(all.dropFirst().map(\.recordedAtNanoseconds)).count == 1)
            await log.close()
        }
    }

    @Test("EventLog: map growth: a 64 KiB map grows to hold thousands of events")
    func mapGrowth() async throws {
        try await withTemporaryDirectory { dir in
            var options = testOptions()
            options.initialMapSizeBytes = 64 << 10
            let log = try EventLog(directory: dir, options: options)
            for chunk in 0..<30 {
                let events = (0..<100).map { proposed(chunk * 100 + $0) }
                try await log.append(events, to: StreamID("s\(chunk % 7)"), expectedRevision: .any)
            }
            #expect(log.environment.mapSizeBytes > 64 << 10)
            let all = try log.reader.readAll(after: .start)
            #expect(all.count == 3000)
            #expect(all.last?.id == eventID(2999))
            await log.close()
        }
    }

    @Test("EventLog: writer lock: a second writer is refused at once, naming the pid")
    func secondWriter() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            let error = await expectEventLogError { try EventLog(directory: dir, options: testOptions()) }
            #expect(error?.code == .writerLocked)
            #expect(error?.holderPID == getpid())
            #expect(error?.message.contains("\(getpid())") == true)
            await log.close()
            // Once closed, the directory can be written again.
            let again = try EventLog(directory: dir, options: testOptions())
            try await again.append([proposed(1)], to: "s", expectedRevision: .any)
            await again.close()
        }
    }

    @Test("EventLog: tail: yields the past, then wakes on new commits")
    func tail() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            try await log.append([proposed(1), proposed(2)], to: "s", expectedRevision: .any)
            let reader = try EventLogReader(directory: dir)
            let collector = Task {
                var seen: [LogPosition] = []
                for try await event in reader.tail(after: LogPosition(1)) {
                    seen.append(event.position)
                    if seen.count == 4 { break }
                }
                return seen
            }
            try await Task.sleep(for: .milliseconds(50))
            try await log.append([proposed(3)], to: "s", expectedRevision: .any)
            try await Task.sleep(for: .milliseconds(20))
            try await log.append([proposed(4), proposed(5)], to: "t", expectedRevision: .any)
            let seen = try await collector.value
            #expect(seen == [2, 3, 4, 5].map { LogPosition($0) })

            // Cancelling a waiting tail ends it.
            let idle = Task {
                var count = 0
                for try await _ in reader.tail(after: LogPosition(5)) { count += 1 }
                return count
            }
            try await Task.sleep(for: .milliseconds(50))
            idle.cancel()
            #expect(try await idle.value == 0)
            await log.close()
        }
    }
}
