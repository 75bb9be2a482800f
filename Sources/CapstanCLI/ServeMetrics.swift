// The metrics `capstan serve --metrics-address` publishes (Prometheus, through swift-metrics):
//   capstan_workflows{state}                   gauge: workflows by the status `workflow list`
//                                              shows (running, paused, quarantined, completed,
//                                              failed, cancelled, continuedAsNew), every state
//                                              always present
//   capstan_activity_duration_seconds{activity} timer: each attempt's latency, by activity
//   capstan_activity_retries_total{activity}    counter: attempts after the first
//   capstan_activity_failures_total{activity,kind} counter: failed attempts
//   capstan_log_append_duration_seconds         timer: each append of the engine's store
//   capstan_log_appended_events_total           counter
//   capstan_activities_in_flight, capstan_engine_commits gauges
// The activity series come from FleetRuntime.metered (Workflows); the rest are here.
import Engine
import EventLog
import Foundation
import Metrics
import ServiceLifecycle
import Synchronization

/// The engine's store with each append timed (`capstan_log_append_duration_seconds`), and
/// the finished workflows' snapshots it writes handed to ``FinishedWorkflows``.
final class MeteredStore: EngineStore {
    private let base: EventLogStore
    private let appendLatency = Metrics.Timer(label: "capstan_log_append_duration_seconds", preferredDisplayUnit: .seconds)
    private let appendedEvents = Counter(label: "capstan_log_appended_events_total")
    let finished: FinishedWorkflows

    init(_ base: EventLogStore, finished: FinishedWorkflows) {
        self.base = base
        self.finished = finished
    }

    func append(_ streams: [StreamAppend], stateWrites: [StateWrite]) async throws -> AppendResult {
        let began = ContinuousClock.now
        let result = try await base.append(streams, stateWrites: stateWrites)
        let (seconds, attoseconds) = (ContinuousClock.now - began).components
        appendLatency.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        appendedEvents.increment(by: streams.reduce(0) { $0 + $1.events.count })
        finished.committed(stateWrites)
        return result
    }
    func readStream(_ stream: StreamID) throws -> [RecordedEvent] { try base.readStream(stream) }
    func streamExists(_ stream: StreamID) throws -> Bool { try base.streamExists(stream) }
    func state(forKey key: String) throws -> [UInt8]? { try base.state(forKey: key) }
    func stateEntries(withPrefix prefix: String) throws -> [(key: String, value: [UInt8])] {
        try base.stateEntries(withPrefix: prefix)
    }
    func tail(_ stream: StreamID, after: LogPosition) -> AsyncThrowingStream<RecordedEvent, any Error> {
        base.tail(stream, after: after)
    }
}

/// The finished workflows' statuses (completed, failed, cancelled, continuedAsNew), by id:
/// read from the log's `engine/done/` snapshots once (``load(_:)``), then kept up to date
/// from each commit's state writes (a finished workflow's snapshot is put there once; a
/// manual retry deletes it). The snapshots are decoded on ``counts()``, off the commit path.
final class FinishedWorkflows: Sendable {
    private struct State {
        var statuses: [String: String] = [:]
        /// Writes committed and not yet decoded, in order (nil: deleted).
        var pending: [(key: String, value: [UInt8]?)] = []
    }

    private let state = Mutex(State())

    /// Takes the finished snapshots already in the log.
    func load(_ entries: [(key: String, value: [UInt8])]) {
        state.withLock { $0.pending += entries.map { ($0.key, $0.value) } }
    }

    func committed(_ writes: [StateWrite]) {
        var relevant: [(key: String, value: [UInt8]?)] = []
        for write in writes {
            switch write {
            case .put(let key, let value) where key.hasPrefix(StateKey.finishedPrefix): relevant.append((key, value))
            case .delete(let key) where key.hasPrefix(StateKey.finishedPrefix): relevant.append((key, nil))
            default: break
            }
        }
        guard !relevant.isEmpty else { return }
        state.withLock { $0.pending += relevant }
    }

    /// The finished workflows by status.
    func counts() -> [String: Int] {
        let pending = state.withLock { state in
            defer { state.pending = [] }
            return state.pending
        }
        var decoded: [(String, String?)] = []
        for (key, value) in pending {
            let id = String(key.dropFirst(StateKey.finishedPrefix.count))
            guard let value else {
                decoded.append((id, nil))
                continue
            }
            // A snapshot that does not decode is counted as what `workflow list` would make of it: quarantined.
            let status = (try? WorkflowStatusReport(snapshot: value, key: key))?.view.status.rawValue ?? "quarantined"
            decoded.append((id, status))
        }
        return state.withLock { state in
            for (id, status) in decoded { state.statuses[id] = status }
            var counts: [String: Int] = [:]
            for status in state.statuses.values { counts[status, default: 0] += 1 }
            return counts
        }
    }
}

/// Publishes the engine's workflows by state, in-flight attempts and commits as gauges once a second.
struct EngineGauges: Service {
    /// Every state `capstan_workflows` carries, so each series exists from the start.
    static let states = ["running", "paused", "quarantined", "completed", "failed", "cancelled", "continuedAsNew"]

    let engine: WorkflowEngine
    let finished: FinishedWorkflows

    func run() async throws {
        let workflows = Dictionary(uniqueKeysWithValues: Self.states.map { ($0, Gauge(label: "capstan_workflows", dimensions: [("state", $0)])) })
        let inFlight = Gauge(label: "capstan_activities_in_flight")
        let commits = Gauge(label: "capstan_engine_commits")
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let live = await engine.runningStatusCounts
            var counts = finished.counts()
            counts["running"] = live.running
            counts["paused"] = live.paused
            counts["quarantined", default: 0] += live.quarantined
            for (state, gauge) in workflows { gauge.record(counts[state] ?? 0) }
            inFlight.record(await engine.inFlightCount)
            commits.record(await engine.commitCount)
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
