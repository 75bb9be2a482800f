// eventlog-crash-driver: a child process for the crash and multi-process tests (issue 3).
//
// `append` appends in a loop and prints each acknowledged event only after its append
// returned (durable); the test SIGKILLs it at random moments and checks every acknowledged
// event afterwards. `read` reads consistent snapshots while another process writes.
import ArgumentParser
import EventLog
import EventLogTesting
import Foundation
import Synchronization

@main
struct CrashDriver: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eventlog-crash-driver",
        abstract: "Append to or read an event log for crash and multi-process tests.",
        discussion: """
            append prints one line per acknowledged event, flushed after the append returned:
              ack <position> <stream> <revision> <content hash, 16 hex digits>
            It prints `ready <last position>` once the log is open and `done <last position>` \
            when --max-events are appended. read prints one JSON summary and exits 1 on any \
            inconsistency.
            """,
        subcommands: [Append.self, Read.self]
    )
}

/// Writes whole lines to standard output, one `write` per call, so that lines from
/// concurrent appenders never interleave and each is on its way before the next append.
final class LineWriter: Sendable {
    private let lock = Mutex<Void>(())

    func write(_ text: String) {
        lock.withLock { _ in
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}

struct Append: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Append in a loop; print each acknowledged event.")

    @Option(name: .customLong("data-dir")) var dataDirectory: String
    @Option var seed: UInt64
    @Option(help: "Concurrent appenders.") var appenders: Int = 4
    @Option(help: "Initial LMDB map size in bytes (tiny maps make the writer grow the map).")
    var initialMapSize: Int?
    @Option(help: "Stop after appending this many events (default: until killed).") var maxEvents: Int?
    @Option(help: "One append in N carries a large (4-256 KiB) incompressible event.") var largeEvery: Int = 40
    @Option(help: "Fold the derived tables once this many events are unfolded (small: fold all the time).")
    var maxUnfoldedEvents: Int?

    func run() async throws {
        var options = EventLogOptions()
        if let initialMapSize { options.initialMapSizeBytes = initialMapSize }
        if let maxUnfoldedEvents { options.maxUnfoldedEvents = maxUnfoldedEvents }
        let log = try EventLog(directory: dataDirectory, options: options)
        let output = LineWriter()
        output.write("ready \(try log.reader.lastPosition())\n")
        let appended = EventCounter()
        let maxEvents = self.maxEvents ?? .max
        let (seed, largeEvery) = (self.seed, self.largeEvery)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<appenders {
                group.addTask {
                    var appender = try DriverAppender(seed: seed, index: index, reader: log.reader, largeEvery: largeEvery)
                    while appended.count.load(ordering: .relaxed) < maxEvents {
                        let request = try appender.nextRequest()
                        let result = try await log.append(request.streams)
                        appender.acknowledge(result)
                        output.write(ackLines(request: request.streams, result: result))
                        appended.count.add(request.eventCount, ordering: .relaxed)
                    }
                }
            }
            try await group.waitForAll()
        }
        await log.close()
        output.write("done \(try EventLogReader(directory: dataDirectory).lastPosition())\n")
    }
}

/// Events appended by all appenders, shared across their tasks.
final class EventCounter: Sendable {
    let count = Atomic<Int>(0)
}

/// `ack <position> <stream> <revision> <hash>` for every event of an acknowledged append.
func ackLines(request: [StreamAppend], result: AppendResult) -> String {
    var text = ""
    for (streamAppend, committed) in zip(request, result.streams) {
        precondition(streamAppend.streamID == committed.streamID, "the result's streams follow the request")
        for (offset, event) in streamAppend.events.enumerated() {
            let position = committed.firstPosition.rawValue + UInt64(offset)
            let revision = committed.firstRevision.rawValue + UInt64(offset)
            text += "ack \(position) \(streamAppend.streamID) \(revision) \(hex16(event.id.low))\n"
        }
    }
    return text
}

func hex16(_ value: UInt64) -> String {
    let text = String(value, radix: 16)
    return String(repeating: "0", count: 16 - text.count) + text
}

/// One appender's share: its own clusters' streams, with the expected revision of each.
struct DriverAppender {
    struct Request {
        var streams: [StreamAppend]
        var eventCount: Int
    }

    private var generator: LifecycleEventGenerator
    private var random: SeededRandom
    private var revisions: [StreamID: StreamRevision] = [:]
    private let reader: EventLogReader
    private let largeEvery: Int
    private let snapshotStream: StreamID

    init(seed: UInt64, index: Int, reader: EventLogReader, largeEvery: Int) throws {
        generator = LifecycleEventGenerator(seed: seed, fleetIndex: index)
        random = SeededRandom(seed: seed ^ (UInt64(index) << 32) ^ 0xC0FFEE)
        self.reader = reader
        self.largeEvery = max(1, largeEvery)
        snapshotStream = StreamID("snapshot/\(generator.clusterName)")
    }

    /// A single-stream append of 1-4 events most of the time; a multi-stream append of
    /// 2-6 events one time in four; sometimes a large event.
    mutating func nextRequest() throws -> Request {
        var events = generator.next(random.oneIn(4) ? 2 + random.below(5) : 1 + random.below(4))
        if random.oneIn(largeEvery) { events.append(makeLargeEvent()) }
        var order: [StreamID] = []
        var byStream: [StreamID: [ProposedEvent]] = [:]
        for generated in events {
            if byStream[generated.streamID] == nil { order.append(generated.streamID) }
            byStream[generated.streamID, default: []].append(generated.event)
        }
        var streams: [StreamAppend] = []
        for stream in order {
            streams.append(
                StreamAppend(streamID: stream, expectedRevision: try expected(stream), events: byStream[stream]!))
        }
        return Request(streams: streams, eventCount: events.count)
    }

    mutating func acknowledge(_ result: AppendResult) {
        for stream in result.streams { revisions[stream.streamID] = stream.lastRevision }
    }

    private mutating func expected(_ stream: StreamID) throws -> ExpectedRevision {
        if let known = revisions[stream] { return .exact(known) }
        // A stream an earlier (killed) round may have begun.
        if let existing = try reader.streamRevision(stream) {
            revisions[stream] = existing
            return .exact(existing)
        }
        return .noStream
    }

    private mutating func makeLargeEvent() -> GeneratedEvent {
        let size = 4096 << random.below(7)  // 4 KiB ... 256 KiB
        var blob = [UInt8]()
        blob.reserveCapacity(size)
        while blob.count < size {
            var word = random.next()
            for _ in 0..<8 {
                blob.append(UInt8(ascii: "A") + UInt8(word % 26))
                word /= 26
            }
        }
        let json =
            "{\"cluster\":\"\(generator.clusterName)\",\"kind\":\"KubevirtMachineTemplate\",\"data\":\""
            + String(decoding: blob, as: UTF8.self) + "\"}"
        let payload = Array(json.utf8)
        let type = "fleet.ManifestSnapshotted"
        let event = ProposedEvent(
            id: EventID(high: random.next(), low: contentHash(type: type, payload: payload)), type: type,
            metadata: EventMetadata(actor: "crash-driver"), payload: payload)
        return GeneratedEvent(streamID: snapshotStream, event: event)
    }
}
