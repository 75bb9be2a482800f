import ArgumentParser
import CapstanSupport
import Engine
import EventLog
import Fleet
import Foundation
import Workflows

// What every query shares: which namespace and labels (`-n`, `-A`, `-l`), which moment
// (`--at`), and one way to read the fleet and its workflows, now or as they stood then.

/// `-n`, `-A` and `-l` of the list commands.
struct ScopeOptions: ParsableArguments {
    @Option(
        name: [.customShort("n"), .long],
        help: ArgumentHelp("Only this namespace (default: default; workflows: every namespace).", valueName: "namespace"))
    var namespace: String?

    @Flag(name: [.customShort("A"), .customLong("all-namespaces")], help: "Every namespace, with a NAMESPACE column.")
    var allNamespaces = false

    @Option(
        name: [.customShort("l"), .customLong("selector")],
        help: ArgumentHelp("Only objects whose labels match: key=value, key!=value, key, !key; comma-separated.",
                           valueName: "selector"))
    var selector: String?

    func validate() throws {
        if allNamespaces && namespace != nil { throw ValidationError("give -n NAMESPACE or -A, not both") }
        if let selector { _ = try LabelSelector(parsing: selector) }
    }

    /// The namespace to show, nil for all.
    var namespaceFilter: String? { allNamespaces ? nil : (namespace ?? ManifestReader.defaultNamespace) }

    var labelSelector: LabelSelector { (try? LabelSelector(parsing: selector ?? "")) ?? LabelSelector() }
}

/// `--at` of every query.
struct AtOptions: ParsableArguments {
    @Option(
        name: .customLong("at"),
        help: ArgumentHelp(
            "Show the fleet as it stood at a time (RFC 3339, or relative: -2h, -30m, -1d) or a log position.",
            valueName: "time|position"))
    var at: String?

    func validate() throws {
        if let at { _ = try TimeSpec(parsing: at) }
    }
}

/// A Kubernetes label selector (equality-based): every requirement must hold.
struct LabelSelector: Sendable, Equatable {
    enum Requirement: Sendable, Equatable {
        case equals(String, String)
        case notEquals(String, String)
        case exists(String)
        case notExists(String)
    }

    var requirements: [Requirement] = []

    init() {}

    /// - Throws: `ValidationError` naming the requirement that does not parse.
    init(parsing text: String) throws {
        for part in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if text.isEmpty { break }
            func key(_ raw: Substring) throws -> String {
                let key = raw.trimmingCharacters(in: .whitespaces)
                guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || "-_./".contains($0) }) else {
                    throw ValidationError("-l \(text): \"\(part)\" is not a label requirement (key=value, key!=value, key or !key)")
                }
                return key
            }
            if let range = part.range(of: "!=") {
                requirements.append(.notEquals(try key(part[..<range.lowerBound]), String(part[range.upperBound...])))
            } else if let range = part.range(of: "==") ?? part.range(of: "=") {
                requirements.append(.equals(try key(part[..<range.lowerBound]), String(part[range.upperBound...])))
            } else if part.hasPrefix("!") {
                requirements.append(.notExists(try key(part.dropFirst())))
            } else {
                requirements.append(.exists(try key(part[...])))
            }
        }
    }

    func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { requirement in
            switch requirement {
            case .equals(let key, let value): labels[key] == value
            case .notEquals(let key, let value): labels[key] != value
            case .exists(let key): labels[key] != nil
            case .notExists(let key): labels[key] == nil
            }
        }
    }
}

/// A moment of the log: a position, a time, or a time relative to now.
enum TimeSpec: Equatable {
    case position(UInt64)
    case time(nanoseconds: Int64)
    case relative(nanoseconds: Int64)

    /// - Throws: `ValidationError` saying which forms are accepted.
    init(parsing text: String) throws {
        if let position = UInt64(text) {
            self = .position(position)
        } else if let nanoseconds = parseRFC3339(text) {
            self = .time(nanoseconds: nanoseconds)
        } else if text.hasPrefix("-"), text.hasSuffix("d"), let days = Int64(text.dropFirst().dropLast()) {
            self = .relative(nanoseconds: -days * 86_400 * 1_000_000_000)
        } else if text.hasPrefix("-"), let duration = try? GoDuration(parsing: text, allowsNegative: true) {
            self = .relative(nanoseconds: duration.nanoseconds)
        } else {
            throw ValidationError(
                "--at \(text): expected a log position (1234), an RFC 3339 time (2026-12-02T01:00:00Z) or a time "
                    + "before now (-2h, -30m, -1d)")
        }
    }

    /// The last position at or before this moment.
    ///
    /// - Throws: `CommandFailure` for a position past the log's end; reader errors.
    func resolve(_ reader: EventLogReader, now: Int64) throws -> LogPosition {
        switch self {
        case .position(let raw):
            let last = try reader.lastPosition()
            guard raw <= last.rawValue else {
                throw CommandFailure("--at \(raw): the log ends at position \(last.rawValue)")
            }
            return LogPosition(raw)
        case .time(let nanoseconds): return try reader.position(atTimeNanoseconds: nanoseconds)
        case .relative(let nanoseconds): return try reader.position(atTimeNanoseconds: now + nanoseconds)
        }
    }
}

/// The current wall-clock time in nanoseconds since the epoch (the CLI's only clock).
func wallNanoseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000_000) }

/// The fleet and its workflows as a query sees them: the stored projections (now), or the
/// projections rebuilt from the log through a position (`--at`).
struct FleetSnapshot {
    let reader: EventLogReader
    let state: ProjectionState
    /// The last position the answer covers.
    let position: LogPosition
    /// Whether this is a rebuilt past (`--at`), not the stored present.
    let isPast: Bool
    /// "Now" for ages: the wall clock, or the time of the position shown.
    let nowNanoseconds: Int64

    /// Opens the log of `directory` as it stands, or as it stood at `at`.
    ///
    /// - Throws: `CommandFailure` for no log or a bad `--at`; reader and replay errors.
    static func open(_ directory: String, at: String?) throws -> FleetSnapshot {
        let reader = try openReader(directory)
        let now = wallNanoseconds()
        guard let at else { return try present(reader) }
        let position = try TimeSpec(parsing: at).resolve(reader, now: now)
        let replay = try Replay.run(reader, through: position)
        Replay.warn(replay.problems)
        var shownTime = now
        if position.rawValue > 0, let event = try reader.readAll(after: LogPosition(position.rawValue - 1), maxCount: 1).first {
            shownTime = event.recordedAtNanoseconds
        }
        return FleetSnapshot(
            reader: reader, state: ProjectionState(entries: replay.entries), position: position, isPast: true,
            nowNanoseconds: shownTime)
    }

    /// The stored present of an open reader (a watch reads it again after every commit).
    static func present(_ reader: EventLogReader) throws -> FleetSnapshot {
        FleetSnapshot(
            reader: reader, state: ProjectionState(reader: reader), position: try reader.lastPosition(), isPast: false,
            nowNanoseconds: wallNanoseconds())
    }

    func clusters(namespace: String?) throws -> [ClusterSummary] { try FleetView.clusters(state, namespace: namespace) }

    /// Every workflow run the engine recorded (running first, then finished), by id.
    func workflows() throws -> [WorkflowStatusReport] {
        var reports: [String: WorkflowStatusReport] = [:]
        for prefix in [StateKey.finishedPrefix, StateKey.runningPrefix] {
            for (key, value) in try state.entries(prefix) {
                let report = try WorkflowStatusReport(snapshot: value, key: key)
                reports[report.record.workflowID] = report
            }
        }
        return reports.values.sorted { $0.record.workflowID < $1.record.workflowID }
    }

    /// One workflow, or a `CommandFailure` that says how to find the ids.
    func workflow(_ workflowID: String) throws -> WorkflowStatusReport {
        guard let report = try WorkflowStatusReport.read(workflowID: workflowID, state: state.value) else {
            throw CommandFailure(
                "no workflow \(workflowID) in \(reader.directory)\(isPast ? " at position \(position)" : "") "
                    + "(list them with `capstan workflow list`)")
        }
        return report
    }
}

/// The cluster a workflow works on: its unique key `cluster/<namespace>/<name>`, else its
/// input's `cluster` reference; nil when it names none.
func workflowCluster(_ record: WorkflowRecord) -> (namespace: String, name: String)? {
    if let key = record.uniqueKey, key.hasPrefix("cluster/") {
        let parts = key.split(separator: "/", maxSplits: 2).map(String.init)
        if parts.count == 3 { return (parts[1], parts[2]) }
    }
    struct Input: Decodable {
        struct Cluster: Decodable {
            var namespace: String
            var name: String
        }
        var cluster: Cluster?
    }
    guard let input = try? JSONDecoder().decode(Input.self, from: Data(record.input.utf8)), let cluster = input.cluster else {
        return nil
    }
    return (cluster.namespace, cluster.name)
}

/// Every workflow type the CLI can fold (what `serve` runs, and the chains), by type.
let knownWorkflows: [WorkflowDefinition] = {
    var byType: [String: WorkflowDefinition] = [:]
    for definition in FleetRuntime.workflows + [WorkflowDefinition(ChainedUpgrade.self), WorkflowDefinition(ScaleMachineDeployment.self)] {
        byType[definition.type] = byType[definition.type] ?? definition
    }
    return byType.values.sorted { $0.type < $1.type }
}()
