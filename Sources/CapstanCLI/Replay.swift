import ArgumentParser
import Engine
import EventLog
import Fleet
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

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
        /// Each workflow's events (its latest run), for comparing a stored snapshot with them.
        var workflowEvents: [String: [RecordedEvent]] = [:]
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
        return Result(
            entries: entries, events: events, through: through ?? last, problems: problems,
            workflowEvents: streams.mapValues(\.events))
    }

    /// Prints the first few problems as warnings and how many more there are (a log of
    /// generated events, such as `capstan log demo` writes, has thousands of streams named
    /// `workflow/…` that no engine wrote).
    static func warn(_ problems: [String], shown: Int = 3) {
        for problem in problems.prefix(shown) { printError("warning: \(problem)") }
        if problems.count > shown { printError("warning: \(problems.count - shown) more workflows cannot be folded (-o json lists them)") }
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

extension Replay {
    /// `capstan replay`: rebuild the projections from the events; with --verify, compare.
    struct Command: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replay",
            abstract: "Rebuild every projection from the log; compare with the stored ones (--verify).",
            discussion: """
                Folds the log from its first event in memory (a scratch copy; the log is only read): the \
                Fleet's projections and each workflow's snapshot, folded by its decider. Reports events/s. \
                --verify compares the result with the stored projections and names the first difference \
                (exit 1). --to POSITION rebuilds the fleet as it was after that position and shows its clusters.

                Examples:
                  capstan replay --verify
                  capstan replay --to 1200
                """)

        @Flag(help: "Compare the rebuilt projections with the stored ones; exit 1 at a difference.")
        var verify = false

        @Option(name: .customLong("to"), help: ArgumentHelp("Rebuild through this log position only.", valueName: "position"))
        var position: UInt64?

        @OptionGroup var common: CommonOptions

        func validate() throws {
            if verify && position != nil {
                throw ValidationError("--verify compares with the stored projections, which cover the whole log: drop --to")
            }
        }

        struct Output: Encodable {
            var events: Int
            var through: UInt64
            var seconds: Double
            var eventsPerSecond: Double
            var entries: Int
            var workflows: Int
            var problems: [String]
            var verified: Bool?
            var differences: Int?
            var firstDifference: String?
        }

        func run() async throws {
            try await reportingFailures {
                let reader = try openReader(common.dataDirectory)
                let last = try reader.lastPosition()
                if let position, position > last.rawValue {
                    throw CommandFailure("--to \(position): the log ends at position \(last.rawValue)")
                }
                let through = position.map { LogPosition($0) } ?? last
                let showProgress = common.output == .text && isatty(STDERR_FILENO) == 1 && through.rawValue >= 200_000
                let began = ContinuousClock.now
                let result = try Replay.run(reader, through: through) { reached in
                    guard showProgress else { return }
                    let percent = Double(reached.rawValue) * 100 / Double(max(1, through.rawValue))
                    FileHandle.standardError.write(Data("\rreplaying: position \(grouped(reached.rawValue)) of \(grouped(through.rawValue)) (\(formatted(percent))%)".utf8))
                }
                if showProgress { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
                let elapsed = ContinuousClock.now - began
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                var output = Output(
                    events: result.events, through: result.through.rawValue, seconds: seconds,
                    eventsPerSecond: seconds > 0 ? Double(result.events) / seconds : 0, entries: result.entries.count,
                    workflows: result.entries.keys.filter { $0.hasPrefix("engine/") }.count, problems: result.problems)
                if verify {
                    let differences = Replay.differences(
                        stored: try Replay.stored(reader), rebuilt: result.entries, workflowEvents: result.workflowEvents)
                    output.verified = differences.isEmpty
                    output.differences = differences.count
                    output.firstDifference = differences.first
                }
                switch common.output {
                case .json, .yaml: try printStructured(output, format: common.output)
                case .text, .wide, .name:
                    print("replayed \(grouped(output.events)) events through position \(grouped(output.through)) in "
                        + "\(formatted(seconds, digits: 2)) s (\(grouped(Int(output.eventsPerSecond))) events/s): "
                        + "\(output.entries) projection entries, \(output.workflows) workflows")
                    Replay.warn(result.problems)
                    if let verified = output.verified {
                        if verified {
                            print("verified: the rebuilt projections equal the stored ones")
                        } else {
                            print("DIFFERENT: \(output.differences ?? 0) entries differ; the first: \(output.firstDifference ?? "")")
                        }
                    } else if position != nil {
                        let clusters = try FleetView.clusters(ProjectionState(entries: result.entries), namespace: nil)
                        print(clusters.isEmpty ? "no clusters at position \(through)" : clusterTable(clusters, showNamespace: true).render(wide: false))
                    }
                }
                if output.verified == false { throw ExitCodes.failure }
            }
        }
    }

    /// Every entry that differs (missing on one side, or another value), by key; values are
    /// compared as JSON values (a snapshot as its header and its decider state), so the key
    /// order of an encoder's dictionaries does not count.
    /// A workflow snapshot is compared as the engine checks one: its record and decider state
    /// equal the fold of its stream (`EngineCore.snapshotEqualsFold`), sets and all.
    static func differences(
        stored: [String: [UInt8]], rebuilt: [String: [UInt8]], workflowEvents: [String: [RecordedEvent]]
    ) -> [String] {
        let core = EngineCore(workflows: knownWorkflows, options: .init(), idIsTaken: { _ in false })
        var differences: [String] = []
        for key in Set(stored.keys).union(rebuilt.keys).sorted() {
            switch (stored[key], rebuilt[key]) {
            case (nil, _): differences.append("\(key): rebuilt from the log, but not stored")
            case (_, nil): differences.append("\(key): stored, but the log does not rebuild it")
            case (let a?, let b?) where key.hasPrefix("engine/"):
                let workflowID = String(key.drop { $0 != "/" }.dropFirst().drop { $0 != "/" }.dropFirst())
                let equal = (try? core.snapshotEqualsFold(snapshot: a, key: key, events: workflowEvents[workflowID] ?? [])) ?? false
                if !equal {
                    let path = firstDifference(json(a), json(b), path: "") ?? "its decider state"
                    differences.append("\(key): the stored snapshot is not the fold of workflow \(workflowID)'s stream (at \(path))")
                }
            case (let a?, let b?):
                if let path = firstDifference(json(a), json(b), path: "") {
                    differences.append("\(key): differs at \(path.isEmpty ? "the value" : path)")
                }
            }
        }
        return differences
    }

    /// The bytes as JSON values: one, or two for a snapshot (header line, decider state).
    private static func json(_ bytes: [UInt8]) -> ManifestValue {
        let parts = bytes.split(separator: 0x0A, maxSplits: 1, omittingEmptySubsequences: false)
        let values = parts.map { part in
            (try? JSONDecoder().decode(ManifestValue.self, from: Data(part))) ?? .string(String(decoding: part, as: UTF8.self))
        }
        return values.count == 1 ? values[0] : .array(values)
    }

    /// The path of the first field that differs, nil when equal.
    private static func firstDifference(_ a: ManifestValue, _ b: ManifestValue, path: String) -> String? {
        if a == b { return nil }
        if let x = a.objectValue, let y = b.objectValue {
            for key in Set(x.keys).union(y.keys).sorted() {
                let next = path.isEmpty ? key : path + "." + key
                guard let left = x[key], let right = y[key] else { return next + " (only on one side)" }
                if let found = firstDifference(left, right, path: next) { return found }
            }
        }
        if let x = a.arrayValue, let y = b.arrayValue, x.count == y.count {
            for (index, pair) in zip(x, y).enumerated() {
                if let found = firstDifference(pair.0, pair.1, path: "\(path)[\(index)]") { return found }
            }
        }
        let show = { (value: ManifestValue) in String(decoding: value.canonicalJSON, as: UTF8.self).prefix(80) }
        return "\(path.isEmpty ? "" : path + ": ")stored \(show(a)), rebuilt \(show(b))"
    }
}
