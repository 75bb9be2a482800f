import Engine
import EventLog
import Fleet
import Foundation

/// Rebuilds the projections the queries read from the events alone: the Fleet's (the same
/// fold `FleetProjection.writes` makes on every append) and the engine's workflow snapshots
/// (each workflow stream folded with its registered decider), through a position.
enum Replay {
    struct Result {
        /// `fleet/…`, `engine/run/…` and `engine/done/…` entries, as the stored state holds them.
        var entries: [String: [UInt8]]
        var events: Int
        var through: LogPosition
        /// Workflows that could not be folded (unknown type, a history that does not decode).
        var problems: [String]
    }

    /// The key prefixes a replay rebuilds (and `replay --verify` compares).
    static let prefixes = [FleetStateKey.prefix, StateKey.runningPrefix, StateKey.finishedPrefix]

    /// One scan of positions 1…`through` (the whole log when nil); `progress` is called
    /// every 65,536 events with the position reached.
    ///
    /// - Throws: reader errors; a Fleet event that does not decode.
    static func run(_ reader: EventLogReader, through: LogPosition? = nil, progress: ((LogPosition) -> Void)? = nil) throws
        -> Result
    {
        var entries: [String: [UInt8]] = [:]
        var streams: [String: (run: Int, events: [RecordedEvent])] = [:]
        var events = 0
        var last = LogPosition.start
        try reader.scan(after: .start, through: through) { recorded in
            events += 1
            last = recorded.position
            if events & 0xFFFF == 0 { progress?(recorded.position) }
            let stream = recorded.streamID.rawValue
            if stream.hasPrefix(FleetStateKey.prefix) {
                guard let event = try FleetEvent.decode(recorded) else { return true }
                let writes = try FleetProjection.writes(for: [(event, recorded.revision, recorded.metadata.actor)]) {
                    entries[$0]
                }
                for write in writes {
                    switch write {
                    case .put(let key, let value): entries[key] = value
                    case .delete(let key): entries[key] = nil
                    }
                }
            } else if stream.hasPrefix("workflow/") {
                let name = stream.dropFirst("workflow/".count)
                let workflowID = String(name[..<(name.firstIndex(of: "@") ?? name.endIndex)])
                let run = name.range(of: "@run").flatMap { Int(name[$0.upperBound...]) } ?? 1
                if let current = streams[workflowID], current.run > run { return true }
                if streams[workflowID]?.run != run { streams[workflowID] = (run, []) }
                streams[workflowID]?.events.append(recorded)
            }
            return true
        }
        let core = EngineCore(workflows: knownWorkflows, options: .init(), idIsTaken: { _ in false })
        var problems: [String] = []
        for (workflowID, stream) in streams.sorted(by: { $0.key < $1.key }) {
            do {
                let snapshot = try core.foldedSnapshot(stream.events)
                let running = StateKey.running(workflowID)
                let report = try WorkflowStatusReport(snapshot: snapshot, key: running)
                entries[report.record.isFinished ? StateKey.finished(workflowID) : running] = snapshot
            } catch {
                problems.append("workflow \(workflowID) cannot be folded: \(error)")
            }
        }
        return Result(entries: entries, events: events, through: through ?? last, problems: problems)
    }

    /// The stored entries under ``prefixes``.
    static func stored(_ reader: EventLogReader) throws -> [String: [UInt8]] {
        var entries: [String: [UInt8]] = [:]
        for prefix in prefixes {
            for (key, value) in try reader.stateEntries(withPrefix: prefix) { entries[key] = value }
        }
        return entries
    }
}
