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

    @Test("EventLog: ids: causation and correlation ids stored as back-references read back exactly")
    func idReferences() async throws {
        // Goal: ids that repeat (a causation naming a recent event, a correlation shared by a
        // run) are stored as references yet every read path returns them whole.
        // Method: chains of events across streams, read by scan, by stream (random access,
        // cold caches) and after reopening; compare stats with a log of inline ids.
        try await withTemporaryDirectory { dir in
            var written: [ProposedEvent] = []
            do {
                let log = try EventLog(directory: dir, options: testOptions())
                for run in 0..<20 {
                    let correlation = EventID(high: 0xABC, low: UInt64(run))
                    var previous: EventID? = run > 0 ? written.last?.id : nil
                    for step in 0..<10 {
                        let n = run * 10 + step
                        let event = proposed(n, causation: previous, correlation: correlation)
                        written.append(event)
                        previous = event.id
                        try await log.append([event], to: StreamID("run/\(run % 4)"), expectedRevision: .any)
                    }
                }
                let all = try log.reader.readAll(after: .start)
                #expect(all.map(\.metadata) == written.map(\.metadata))
                // 200 events, 20 inline correlations and one inline causation (the first has none).
                let envelopeBytes = try log.reader.stats().envelopeBytes
                let inlineBytes = try await Self.inlineEnvelopeBytes(written)
                #expect(envelopeBytes < inlineBytes - 199 * 13 - 180 * 13)
                await log.close()
            }
            let reader = try EventLogReader(directory: dir)
            reader.environment.caches.tables.withLock { $0 = ReaderCaches.Tables() }
            let stream = try reader.readStream("run/3", from: StreamRevision(25))
            #expect(stream.map(\.metadata) == written.enumerated().filter { ($0.offset / 10) % 4 == 3 }.dropFirst(25).map(\.element.metadata))
            #expect(try reader.verify().isClean)
        }
    }

    /// Envelope bytes of the same events with no reference possible (each in a log of its own).
    static func inlineEnvelopeBytes(_ events: [ProposedEvent]) async throws -> Int {
        try await withTemporaryDirectory { dir in
            let log = try EventLog(directory: dir, options: testOptions())
            for (n, event) in events.enumerated() {
                var alone = event
                // Ids of events not in this log cannot be referred to: shift them out of reach.
                alone.metadata.causationID = event.metadata.causationID.map { EventID(high: $0.high ^ 1, low: $0.low) }
                alone.metadata.correlationID = event.metadata.correlationID.map { EventID(high: $0.high, low: $0.low ^ UInt64(n + 1) << 32) }
                try await log.append([alone], to: StreamID("run/\((n / 10) % 4)"), expectedRevision: .any)
            }
            let bytes = try log.reader.stats().envelopeBytes
            await log.close()
            return bytes
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
