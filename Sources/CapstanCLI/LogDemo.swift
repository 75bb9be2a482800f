import ArgumentParser
import EventLog
import EventLogTesting
import Foundation
import Synchronization

/// `capstan log demo`: the log alone, with a realistic fleet's generated lifecycle events
/// (no kube-sim, no engine; `capstan demo` runs the real fleet).
struct LogDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Append a realistic fleet's lifecycle events, read them back, verify, and print stats.",
        discussion: """
            Tells the story of a small fleet of workload clusters on KubeVirt with Kamaji \
            control planes: clusters created at Kubernetes v1.33, machines provisioned, a \
            chained control-plane upgrade v1.33 → v1.34 → v1.35 → v1.36 with the workers \
            following, then conditions flapping, machines remediated and scaled up. Each \
            cluster has its own appender; all of them append at once, each event in its own \
            durable append with an expected stream revision, so the log's group commit \
            batches them. Then it reads every new event back, checks each is whole, verifies \
            the log, and prints stats and throughput.

            Running it again on the same data directory appends a new fleet (new cluster \
            names) after the events already there. The events are generated: no workflow \
            runs and no cluster API is called (`capstan demo` runs the real fleet).

            Examples:
              capstan log demo
              capstan log demo --events 1000000 --clusters 64 --seed 7
              capstan log demo --data-dir /tmp/capstan-log-demo -o json
            """
    )

    @OptionGroup var options: CommonOptions

    @Option(help: ArgumentHelp("How many events to append.", valueName: "count"))
    var events: Int = 20_000

    @Option(help: ArgumentHelp("Clusters in the fleet: one concurrent appender each.", valueName: "count"))
    var clusters: Int = 64

    @Option(help: ArgumentHelp("Seed of the generated fleet (default: derived from the log's length).", valueName: "seed"))
    var seed: UInt64?

    func validate() throws {
        guard events > 0 else { throw ValidationError("--events must be at least 1") }
        guard (1...4096).contains(clusters) else { throw ValidationError("--clusters must be 1...4096") }
    }

    struct Summary: Codable {
        var dataDirectory: String
        var seed: UInt64
        var clusters: Int
        var eventsAppended: Int
        var firstPosition: UInt64
        var lastPosition: UInt64
        var appendSeconds: Double
        var eventsPerSecond: Double
        var commitLatencyP50Milliseconds: Double
        var commitLatencyP99Milliseconds: Double
        var eventsReadBack: Int
        var readSeconds: Double
        var verified: Bool
        var stats: StatsOutput
    }

    func run() async throws {
        try await reportingFailures {
            let directory = options.dataDirectory
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw CommandFailure("cannot create the data directory \(directory): \(error)")
            }
            let log: EventLog
            do {
                log = try EventLog(directory: directory)
            } catch {
                throw CommandFailure("cannot open the log at \(directory) for writing: \(error)")
            }
            let startPosition = try log.reader.lastPosition()
            let seed = self.seed ?? (startPosition.rawValue &+ 2026)
            let progress = Progress(total: events, enabled: options.output == .text && events >= 100_000)

            let appendStart = ContinuousClock.now
            let latencies: [Duration]
            do {
                latencies = try await appendFleet(log: log, seed: seed, progress: progress)
            } catch {
                await log.close()
                throw error
            }
            let appendTime = ContinuousClock.now - appendStart
            await log.close()

            let reader = try openReader(directory)
            let readStart = ContinuousClock.now
            var readBack = 0
            var broken: [UInt64] = []
            try reader.scan(after: startPosition) { event in
                readBack += 1
                if !event.isWhole { broken.append(event.position.rawValue) }
                return true
            }
            let readTime = ContinuousClock.now - readStart
            guard broken.isEmpty else {
                throw CommandFailure("events read back differ from what was appended at positions \(broken.prefix(10))")
            }
            let report = try verifyLog(directory)
            let stats = StatsOutput(try reader.stats(), directory: directory)
            let sorted = latencies.sorted()
            let summary = Summary(
                dataDirectory: directory, seed: seed, clusters: clusters, eventsAppended: events,
                firstPosition: startPosition.rawValue + 1, lastPosition: report.lastPosition.rawValue,
                appendSeconds: appendTime.seconds, eventsPerSecond: Double(events) / appendTime.seconds,
                commitLatencyP50Milliseconds: sorted.percentile(0.50).seconds * 1000,
                commitLatencyP99Milliseconds: sorted.percentile(0.99).seconds * 1000,
                eventsReadBack: readBack, readSeconds: readTime.seconds, verified: report.isClean, stats: stats)
            switch options.output {
            case .json, .yaml: try printStructured(summary, format: options.output)
            case .text, .wide, .name: printSummary(summary, report: report)
            }
            if !report.isClean { throw ExitCodes.damage }
        }
    }

    /// One task per cluster, each appending its cluster's events one durable append at a
    /// time with the stream's expected revision; returns each append's latency.
    private func appendFleet(log: EventLog, seed: UInt64, progress: Progress) async throws -> [Duration] {
        let reader = log.reader
        let clusters = self.clusters
        let events = self.events
        return try await withThrowingTaskGroup(of: [Duration].self) { group in
            for index in 0..<clusters {
                let share = events / clusters + (index < events % clusters ? 1 : 0)
                guard share > 0 else { continue }
                group.addTask {
                    var generator = LifecycleEventGenerator(seed: seed, fleetIndex: index)
                    var revisions: [StreamID: StreamRevision] = [:]
                    var latencies: [Duration] = []
                    latencies.reserveCapacity(share)
                    for _ in 0..<share {
                        let next = generator.next()
                        let expected: ExpectedRevision
                        if let known = revisions[next.streamID] {
                            expected = .exact(known)
                        } else if let existing = try reader.streamRevision(next.streamID) {
                            expected = .exact(existing)  // a stream an earlier run began
                        } else {
                            expected = .noStream
                        }
                        let start = ContinuousClock.now
                        let result = try await log.append([next.event], to: next.streamID, expectedRevision: expected)
                        latencies.append(ContinuousClock.now - start)
                        revisions[next.streamID] = result.streams[0].lastRevision
                        progress.add(1)
                    }
                    return latencies
                }
            }
            var all: [Duration] = []
            all.reserveCapacity(events)
            for try await latencies in group { all += latencies }
            return all
        }
    }

    private func printSummary(_ summary: Summary, report: VerifyReport) {
        print("capstan log demo: a generated fleet of \(summary.clusters) clusters (seed \(summary.seed)) in \(summary.dataDirectory)")
        print(
            "appended  \(grouped(summary.eventsAppended)) events (positions \(summary.firstPosition)...\(summary.lastPosition)) "
                + "in \(formatted(summary.appendSeconds, digits: 2)) s: \(grouped(Int(summary.eventsPerSecond))) durable events/s, "
                + "\(summary.clusters) concurrent appenders")
        print(
            "commit    latency p50 \(formatted(summary.commitLatencyP50Milliseconds, digits: 2)) ms, "
                + "p99 \(formatted(summary.commitLatencyP99Milliseconds, digits: 2)) ms")
        print(
            "read back \(grouped(summary.eventsReadBack)) events in \(formatted(summary.readSeconds, digits: 3)) s, "
                + "each whole (content hash matches)")
        if report.isClean {
            print(
                "verify    OK: \(grouped(report.eventsChecked)) events, \(grouped(report.streamsChecked)) streams, "
                    + "\(report.dictionariesChecked) dictionaries")
        } else {
            print("verify    FAILED")
            printVerifyReport(report)
        }
        print("")
        printStats(summary.stats)
        print("")
        print("next: capstan log verify | capstan log stats | capstan log export | capstan log --help")
    }
}

/// Progress on standard error for long runs, at most once a second.
final class Progress: Sendable {
    private let total: Int
    private let enabled: Bool
    private let done = Atomic<Int>(0)
    private let lastReport = Mutex<ContinuousClock.Instant>(.now)
    private let start = ContinuousClock.now

    init(total: Int, enabled: Bool) {
        self.total = total
        self.enabled = enabled
    }

    func add(_ count: Int) {
        let now = done.wrappingAdd(count, ordering: .relaxed).newValue
        guard enabled else { return }
        let due = lastReport.withLock { last -> Bool in
            guard ContinuousClock.now - last >= .seconds(1) else { return false }
            last = .now
            return true
        }
        if due {
            let rate = Double(now) / (ContinuousClock.now - start).seconds
            printError("  appended \(grouped(now)) / \(grouped(total)) events (\(grouped(Int(rate))) events/s)")
        }
    }
}
