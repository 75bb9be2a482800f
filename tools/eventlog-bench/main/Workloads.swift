import EventLog
import EventLogTesting
import Foundation
import Synchronization

/// An event as every system in the benchmark stores it.
struct BenchEvent: Sendable {
    var streamID: StreamID
    var revision: UInt64
    var event: ProposedEvent
    var stream: String { streamID.rawValue }
    var type: String { event.type }
    var payload: [UInt8] { event.payload }
}

/// Generates `count` events from `generators` clusters, round robin, with each stream's
/// revision (so SQLite's unique index and Capstan's expected revisions hold).
func makeEvents(seed: UInt64, count: Int, clusters: Int, fleetOffset: Int = 0) -> [[BenchEvent]] {
    var perCluster: [[BenchEvent]] = []
    for index in 0..<clusters {
        var generator = LifecycleEventGenerator(seed: seed, fleetIndex: fleetOffset + index)
        var revisions: [StreamID: UInt64] = [:]
        let share = count / clusters + (index < count % clusters ? 1 : 0)
        var events: [BenchEvent] = []
        events.reserveCapacity(share)
        for _ in 0..<share {
            let next = generator.next()
            let revision = revisions[next.streamID].map { $0 + 1 } ?? 0
            revisions[next.streamID] = revision
            events.append(BenchEvent(streamID: next.streamID, revision: revision, event: next.event))
        }
        perCluster.append(events)
    }
    return perCluster
}

/// Round-robin interleaving, as the events of concurrent clusters reach a log.
func interleave(_ perCluster: [[BenchEvent]]) -> [BenchEvent] {
    var all: [BenchEvent] = []
    all.reserveCapacity(perCluster.reduce(0) { $0 + $1.count })
    let longest = perCluster.map(\.count).max() ?? 0
    for index in 0..<longest {
        for events in perCluster where index < events.count { all.append(events[index]) }
    }
    return all
}

struct CommitFigures: Codable {
    var eventsPerSecond: Double
    var latencyP50Milliseconds: Double
    var latencyP99Milliseconds: Double
}

func figures(events: Int, elapsed: Duration, latencies: [Duration]) -> CommitFigures {
    let sorted = latencies.sorted()
    return CommitFigures(
        eventsPerSecond: Double(events) / elapsed.seconds,
        latencyP50Milliseconds: sorted.percentile(0.50).seconds * 1000,
        latencyP99Milliseconds: sorted.percentile(0.99).seconds * 1000)
}

// MARK: Capstan

enum CapstanWorkloads {
    /// One event per durable append, each awaited before the next.
    static func single(directory: String, events: [BenchEvent]) async throws -> CommitFigures {
        let log = try EventLog(directory: directory)
        var latencies: [Duration] = []
        latencies.reserveCapacity(events.count)
        let start = ContinuousClock.now
        for event in events {
            let expected: ExpectedRevision = event.revision == 0 ? .noStream : .exact(StreamRevision(event.revision - 1))
            let begin = ContinuousClock.now
            _ = try await log.append([event.event], to: event.streamID, expectedRevision: expected)
            latencies.append(ContinuousClock.now - begin)
        }
        let elapsed = ContinuousClock.now - start
        await log.close()
        return figures(events: events.count, elapsed: elapsed, latencies: latencies)
    }

    /// One task per appender, each appending its events one durable append at a time: the
    /// log's group commit batches what the appenders have in flight.
    static func group(
        directory: String, perAppender: [[BenchEvent]], options: EventLogOptions = .init()
    ) async throws -> CommitFigures {
        let log = try EventLog(directory: directory, options: options)
        let start = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
            for events in perAppender {
                group.addTask {
                    var latencies: [Duration] = []
                    latencies.reserveCapacity(events.count)
                    for event in events {
                        let expected: ExpectedRevision =
                            event.revision == 0 ? .noStream : .exact(StreamRevision(event.revision - 1))
                        let begin = ContinuousClock.now
                        _ = try await log.append([event.event], to: event.streamID, expectedRevision: expected)
                        latencies.append(ContinuousClock.now - begin)
                    }
                    return latencies
                }
            }
            var all: [Duration] = []
            for try await latencies in group { all += latencies }
            return all
        }
        let elapsed = ContinuousClock.now - start
        await log.close()
        return figures(events: latencies.count, elapsed: elapsed, latencies: latencies)
    }

    /// One task per appender, each submitting its events `batch` at a time as one
    /// multi-stream append, awaited before the next.
    static func batches(directory: String, perAppender: [[BenchEvent]], batch: Int) async throws -> CommitFigures {
        let log = try EventLog(directory: directory)
        let start = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
            for events in perAppender {
                group.addTask {
                    var latencies: [Duration] = []
                    var index = 0
                    while index < events.count {
                        let appends = streamAppends(events[index..<min(index + batch, events.count)])
                        let begin = ContinuousClock.now
                        _ = try await log.append(appends)
                        latencies.append(ContinuousClock.now - begin)
                        index += batch
                    }
                    return latencies
                }
            }
            var all: [Duration] = []
            for try await latencies in group { all += latencies }
            return all
        }
        let elapsed = ContinuousClock.now - start
        await log.close()
        return figures(events: perAppender.reduce(0) { $0 + $1.count }, elapsed: elapsed, latencies: latencies)
    }

    /// The events of a slice grouped by stream, in first-seen order.
    static func streamAppends(_ slice: ArraySlice<BenchEvent>) -> [StreamAppend] {
        var order: [StreamID] = []
        var byStream: [StreamID: [ProposedEvent]] = [:]
        for event in slice {
            if byStream[event.streamID] == nil { order.append(event.streamID) }
            byStream[event.streamID, default: []].append(event.event)
        }
        return order.map { StreamAppend(streamID: $0, expectedRevision: .any, events: byStream[$0]!) }
    }

    /// Opens the log (the page check of every B-tree page runs here) and reads its end.
    static func open(directory: String) throws -> LogPosition {
        try EventLogReader(directory: directory).lastPosition()
    }

    /// A full replay split in two halves scanned on two threads at once.
    static func replayTwoCores(_ reader: EventLogReader) throws -> (count: Int, sum: UInt64) {
        let last = try reader.lastPosition().rawValue
        let middle = LogPosition(last / 2)
        let results = Mutex<[(Int, UInt64)]>([])
        let failure = Mutex<(any Error)?>(nil)
        let done = DispatchSemaphore(value: 0)
        let second = Thread {
            defer { done.signal() }
            do {
                var count = 0
                var sum: UInt64 = 0
                try reader.scan(after: middle) { event in
                    count += 1
                    sum &+= UInt64(event.payload.last ?? 0) &+ event.revision.rawValue &+ UInt64(event.type.utf8.count)
                    return true
                }
                results.withLock { $0.append((count, sum)) }
            } catch {
                failure.withLock { $0 = error }
            }
        }
        second.start()
        var count = 0
        var sum: UInt64 = 0
        try reader.scan(after: .start, through: middle) { event in
            count += 1
            sum &+= UInt64(event.payload.last ?? 0) &+ event.revision.rawValue &+ UInt64(event.type.utf8.count)
            return true
        }
        done.wait()
        if let error = failure.withLock({ $0 }) { throw error }
        let other = results.withLock { $0 }
        return (count + other.reduce(0) { $0 + $1.0 }, other.reduce(sum) { $0 &+ $1.1 })
    }

    /// Fills a log with `events` in durable multi-stream appends of `batch` events.
    static func load(directory: String, events: [BenchEvent], batch: Int) async throws {
        let log = try EventLog(directory: directory)
        var index = 0
        while index < events.count {
            let slice = events[index..<min(index + batch, events.count)]
            var order: [StreamID] = []
            var byStream: [StreamID: [ProposedEvent]] = [:]
            for event in slice {
                if byStream[event.streamID] == nil { order.append(event.streamID) }
                byStream[event.streamID, default: []].append(event.event)
            }
            let appends = order.map { StreamAppend(streamID: $0, expectedRevision: .any, events: byStream[$0]!) }
            _ = try await log.append(appends)
            index += batch
        }
        await log.close()
    }

    /// A full replay: every event read, checksum checked, payload decompressed, envelope decoded.
    static func replay(directory: String) throws -> (count: Int, sum: UInt64) {
        try replay(try EventLogReader(directory: directory))
    }

    /// A full replay with a reader already open (the open, with its page check, is timed on its own).
    static func replay(_ reader: EventLogReader) throws -> (count: Int, sum: UInt64) {
        var count = 0
        var sum: UInt64 = 0
        try reader.scan(after: .start) { event in
            count += 1
            sum &+= UInt64(event.payload.last ?? 0) &+ event.revision.rawValue &+ UInt64(event.type.utf8.count)
            return true
        }
        return (count, sum)
    }
}

// MARK: peers

enum PeerWorkloads {
    /// One record per transaction, or `batch` records per transaction, through `append`.
    static func commits(
        events: [BenchEvent], batch: Int, append: (ArraySlice<BenchEvent>) throws -> Void
    ) throws -> CommitFigures {
        var latencies: [Duration] = []
        latencies.reserveCapacity(events.count / batch + 1)
        let start = ContinuousClock.now
        var index = 0
        while index < events.count {
            let slice = events[index..<min(index + batch, events.count)]
            let begin = ContinuousClock.now
            try append(slice)
            latencies.append(ContinuousClock.now - begin)
            index += batch
        }
        return figures(events: events.count, elapsed: ContinuousClock.now - start, latencies: latencies)
    }
}

func fileBytes(_ path: String) -> UInt64 {
    let attributes = try? FileManager.default.attributesOfItem(atPath: path)
    return (attributes?[.size] as? NSNumber)?.uint64Value ?? 0
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}
