import Foundation
import Testing

@testable import EventLog

@Suite("EventLog: append and read")
struct AppendReadTests {
    @Test("EventLog: round trip: every field of every event reads back")
    func roundTrip() async throws {
        // Goal: what goes in comes out, field for field, through both read paths.
        // Method: append events with and without optional metadata to two streams, read back.
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            let first = [
                proposed(1, causation: eventID(100), correlation: eventID(200)),
                ProposedEvent(
                    id: eventID(2), type: "fleet.VersionChanged", schemaVersion: 7,
                    metadata: EventMetadata(actor: "cli:alice"), payload: []),
                proposed(3, actor: "controller:remediation", correlation: eventID(300), payload: Array(repeating: 0xAB, count: 5000)),
            ]
            let result = try await log.append(first, to: "cluster/a", expectedRevision: .noStream)
            #expect(result.streams.count == 1)
            #expect(result.streams[0].firstRevision == StreamRevision(0))
            #expect(result.streams[0].lastRevision == StreamRevision(2))
            #expect(result.streams[0].firstPosition == LogPosition(1))
            #expect(result.lastPosition == LogPosition(3))
            let second = try await log.append([proposed(4)], to: "cluster/b", expectedRevision: .any)
            #expect(second.lastPosition == LogPosition(4))
            #expect(second.recordedAtNanoseconds >= result.recordedAtNanoseconds)

            let stream = try log.reader.readStream("cluster/a")
            #expect(stream.count == 3)
            for (index, event) in stream.enumerated() {
                let original = first[index]
                #expect(event.id == original.id)
                #expect(event.type == original.type)
                #expect(event.schemaVersion == original.schemaVersion)
                #expect(event.metadata == original.metadata)
                #expect(event.payload == original.payload)
                #expect(event.streamID == "cluster/a")
                #expect(event.revision == StreamRevision(UInt64(index)))
                #expect(event.position == LogPosition(UInt64(index + 1)))
                #expect(event.recordedAtNanoseconds == result.recordedAtNanoseconds)
            }
            let all = try log.reader.readAll(after: .start)
            #expect(all.map(\.position.rawValue) == [1, 2, 3, 4])
            #expect(Array(all.prefix(3)) == stream)
            #expect(all[3].streamID == "cluster/b")
            #expect(try log.reader.readStream("cluster/a", from: StreamRevision(1), maxCount: 1).map(\.id) == [eventID(2)])
            #expect(try log.reader.readAll(after: LogPosition(2), maxCount: 1).map(\.position) == [LogPosition(3)])
            #expect(try log.reader.lastPosition() == LogPosition(4))
            #expect(try log.reader.streamRevision("cluster/a") == StreamRevision(2))
            #expect(try log.reader.streamRevision("cluster/none") == nil)
            #expect(try log.reader.readStream("cluster/none").isEmpty)
            await log.close()
        }
    }

    @Test("EventLog: round trip: a long stream reads from any revision")
    func longStream() async throws {
        // Goal: the stream index (pages of positions) finds revisions across index pages.
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            for chunk in 0..<5 {
                let events = (0..<400).map { proposed(chunk * 400 + $0, payload: [UInt8(truncatingIfNeeded: $0)]) }
                try await log.append(events, to: "long", expectedRevision: .any)
                try await log.append([proposed(9999, payload: [1])], to: StreamID("other-\(chunk)"), expectedRevision: .noStream)
            }
            let tail = try log.reader.readStream("long", from: StreamRevision(1234))
            #expect(tail.count == 2000 - 1234)
            #expect(tail.first?.revision == StreamRevision(1234))
            #expect(tail.first?.id == eventID(1234))
            #expect(try log.reader.streamRevision("long") == StreamRevision(1999))
            await log.close()
        }
    }

    @Test("EventLog: state: writes commit with their events and delete")
    func stateWrites() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            try await log.append(
                [proposed(1)], to: "s", expectedRevision: .noStream,
                stateWrites: [.put(key: "proj/a", value: [1, 2]), .put(key: "proj/b", value: [3]), .put(key: "other", value: [9])])
            #expect(try log.reader.state(forKey: "proj/a") == [1, 2])
            #expect(try log.reader.stateEntries(withPrefix: "proj/").map(\.key) == ["proj/a", "proj/b"])
            // State-only append: no streams.
            try await log.append([], stateWrites: [.delete(key: "proj/a"), .put(key: "proj/b", value: [4])])
            #expect(try log.reader.state(forKey: "proj/a") == nil)
            #expect(try log.reader.state(forKey: "proj/b") == [4])
            // A rejected append leaves state untouched.
            let error = await expectEventLogError {
                try await log.append([proposed(2)], to: "s", expectedRevision: .noStream,
                                     stateWrites: [.put(key: "proj/b", value: [5])])
            }
            #expect(error?.code == .wrongExpectedRevision)
            #expect(try log.reader.state(forKey: "proj/b") == [4])
            #expect(try log.reader.stateEntries(withPrefix: "").count == 2)
            await log.close()
        }
    }

    @Test("EventLog: input: bad appends are refused and write nothing")
    func invalidInput() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            let cases: [[StreamAppend]] = [
                [StreamAppend(streamID: "", expectedRevision: .any, events: [proposed(1)])],
                [StreamAppend(streamID: StreamID(String(repeating: "x", count: 256)), expectedRevision: .any, events: [proposed(1)])],
                [StreamAppend(streamID: "a", expectedRevision: .any, events: [])],
                [StreamAppend(streamID: "a", expectedRevision: .any, events: [proposed(1, type: "")])],
                [StreamAppend(streamID: "a", expectedRevision: .any, events: [proposed(1)]),
                 StreamAppend(streamID: "a", expectedRevision: .any, events: [proposed(2)])],
                [],
            ]
            for streams in cases {
                let error = await expectEventLogError { try await log.append(streams) }
                #expect(error?.code == .invalidInput)
            }
            #expect(try log.reader.lastPosition() == .start)
            await log.close()
        }
    }

    @Test("EventLog: reopen: everything survives close and reopen")
    func reopen() async throws {
        try await withTemporaryDirectory { dir in
            var written: [RecordedEvent] = []
            do {
                let log = try EventLog(directory: dir, options: testOptions())
                for n in 0..<20 {
                    try await log.append([proposed(n)], to: StreamID("s\(n % 3)"), expectedRevision: .any,
                                         stateWrites: [.put(key: "k\(n)", value: [UInt8(n)])])
                }
                written = try log.reader.readAll(after: .start)
                await log.close()
            }
            let log = try EventLog(directory: dir, options: testOptions())
            #expect(try log.reader.readAll(after: .start) == written)
            #expect(try log.reader.state(forKey: "k19") == [19])
            let next = try await log.append([proposed(99)], to: "s0", expectedRevision: .exact(StreamRevision(6)))
            #expect(next.lastPosition == LogPosition(21))
            #expect(next.streams[0].firstRevision == StreamRevision(7))
            await log.close()
            let reader = try EventLogReader(directory: dir)
            #expect(try reader.lastPosition() == LogPosition(21))
        }
    }

    @Test("EventLog: cuts: time and position cuts select a prefix")
    func cuts() async throws {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            let first = try await log.append((0..<3).map { proposed($0) }, to: "a", expectedRevision: .any)
            try await Task.sleep(for: .milliseconds(5))
            let second = try await log.append((3..<5).map { proposed($0) }, to: "a", expectedRevision: .any)
            #expect(second.recordedAtNanoseconds > first.recordedAtNanoseconds)
            let reader = log.reader
            #expect(try reader.position(atTimeNanoseconds: first.recordedAtNanoseconds - 1) == .start)
            #expect(try reader.position(atTimeNanoseconds: first.recordedAtNanoseconds) == LogPosition(3))
            #expect(try reader.position(atTimeNanoseconds: second.recordedAtNanoseconds - 1) == LogPosition(3))
            #expect(try reader.position(atTimeNanoseconds: .max) == LogPosition(5))
            var seen: [UInt64] = []
            try reader.scan(after: LogPosition(1), through: LogPosition(3)) { seen.append($0.position.rawValue); return true }
            #expect(seen == [2, 3])
            seen = []
            try reader.scan(after: .start) { seen.append($0.position.rawValue); return seen.count < 2 }
            #expect(seen == [1, 2])
            await log.close()
        }
    }
}
