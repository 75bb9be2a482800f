public import EventLog
import Foundation

/// The keys of the Fleet's projections in the log's `state` database. Every key starts
/// `fleet/`; each is written in the same append as the events it covers.
public enum FleetStateKey {
    /// `fleet/object/<namespace>/<Kind>/<name>` → ``DesiredObject`` (JSON): the applied form.
    public static let objectPrefix = "fleet/object/"
    /// `fleet/requested/<namespace>/<cluster>` → ``RequestedUpgrade``: the last `capstan upgrade`.
    public static let requestedPrefix = "fleet/requested/"
    /// `fleet/observed/<namespace>/<cluster>` → ``ObservedCluster``: what workflows saw.
    public static let observedPrefix = "fleet/observed/"
    /// `fleet/audit/<namespace>/<cluster>/<time ns, 19 digits>-<d|o><revision, 12 digits>` →
    /// ``AuditEntry``: the cluster's timeline, in time order.
    public static let auditPrefix = "fleet/audit/"
    /// Everything above.
    public static let prefix = "fleet/"

    static func requested(_ namespace: String, _ cluster: String) -> String { "\(requestedPrefix)\(namespace)/\(cluster)" }
    static func observed(_ namespace: String, _ cluster: String) -> String { "\(observedPrefix)\(namespace)/\(cluster)" }
}

/// The last `capstan upgrade` of a cluster.
public struct RequestedUpgrade: Hashable, Codable, Sendable {
    public var version: KubernetesVersion
    public var source: ChangeSource
}

/// A cluster as the workflows observed it.
public struct ObservedCluster: Hashable, Codable, Sendable {
    public struct ControlPlane: Hashable, Codable, Sendable {
        public var installedVersion: KubernetesVersion?
        public var status: String
        public var ready: Bool
        public var sinceNanoseconds: Int64
        /// First observed ready; kept for ever after (CAPI's `ControlPlaneInitialized`).
        public var initializedNanoseconds: Int64? = nil

        public init(
            installedVersion: KubernetesVersion?, status: String, ready: Bool, sinceNanoseconds: Int64 = 0,
            initializedNanoseconds: Int64? = nil
        ) {
            self.installedVersion = installedVersion
            self.status = status
            self.ready = ready
            self.sinceNanoseconds = sinceNanoseconds
            self.initializedNanoseconds = initializedNanoseconds
        }
    }

    public struct Condition: Hashable, Codable, Sendable {
        public var status: String
        public var reason: String?
        public var lastTransitionNanoseconds: Int64

        public init(status: String, reason: String? = nil, lastTransitionNanoseconds: Int64 = 0) {
            self.status = status
            self.reason = reason
            self.lastTransitionNanoseconds = lastTransitionNanoseconds
        }
    }

    public struct Machine: Hashable, Codable, Sendable {
        public var deployment: String
        public var phase: String
        public var version: KubernetesVersion?
        public var conditions: [String: Condition]
        public var sinceNanoseconds: Int64
        /// First observed (by a MachineObserved or a condition).
        public var createdNanoseconds: Int64? = nil
        /// The ``MachineTemplateDigest`` it was created from; nil when not recorded (a machine
        /// made before Capstan recorded it counts as current).
        public var templateDigest: String? = nil

        public init(
            deployment: String, phase: String, version: KubernetesVersion?, conditions: [String: Condition] = [:],
            sinceNanoseconds: Int64 = 0, createdNanoseconds: Int64? = nil, templateDigest: String? = nil
        ) {
            self.templateDigest = templateDigest
            self.deployment = deployment
            self.phase = phase
            self.version = version
            self.conditions = conditions
            self.sinceNanoseconds = sinceNanoseconds
            self.createdNanoseconds = createdNanoseconds
        }
    }

    /// One remediation started (kept: the last ``remediationsKept``, enough for the rate limit).
    public struct Remediation: Hashable, Codable, Sendable {
        public var check: String
        public var machine: String
        public var atNanoseconds: Int64
    }

    public var controlPlane: ControlPlane?
    public var machines: [String: Machine] = [:]
    /// Remediations started, oldest first.
    public var remediations: [Remediation]? = nil
    /// Health checks refusing remediation now (`TooManyUnhealthy` recorded, not yet allowed again).
    public var shortCircuited: [String]? = nil

    public static let remediationsKept = 32

    public init(controlPlane: ControlPlane? = nil, machines: [String: Machine] = [:]) {
        self.controlPlane = controlPlane
        self.machines = machines
    }

    /// The stored observation of a cluster (empty when nothing was recorded yet).
    ///
    /// - Throws: reader errors; a projection that does not decode.
    public static func stored(_ reader: EventLogReader, namespace: String, cluster: String) throws -> ObservedCluster {
        guard let bytes = try reader.state(forKey: FleetStateKey.observed(namespace, cluster)) else { return ObservedCluster() }
        return try JSONDecoder().decode(ObservedCluster.self, from: Data(bytes))
    }
}

/// One line of a cluster's audit timeline: what changed, by whom, when.
public struct AuditEntry: Hashable, Codable, Sendable {
    public var atNanoseconds: Int64
    public var event: String
    public var summary: String
    /// `user@host` for desired state; the workflow or `observed` for facts.
    public var actor: String
}

/// Folds Fleet events into the projections: the same pure function whether the events are
/// being appended (its writes go into that append) or the log is being replayed.
public enum FleetProjection {
    /// The state writes that `events` (with their stream revisions) make, reading the current
    /// projections through `read`. Later events of the list see the writes of earlier ones.
    ///
    /// - Throws: what `read` throws; a stored projection that does not decode.
    public static func writes(
        for events: [(event: FleetEvent, revision: StreamRevision, actor: String)],
        read: (String) throws -> [UInt8]?
    ) throws -> [StateWrite] {
        var overlay: [String: [UInt8]?] = [:]
        var order: [String] = []
        func current(_ key: String) throws -> [UInt8]? {
            if let pending = overlay[key] { return pending }
            return try read(key)
        }
        func set(_ key: String, _ value: [UInt8]?) {
            if overlay[key] == nil { order.append(key) }
            overlay[key] = .some(value)
        }
        for (event, revision, actor) in events {
            let audit = auditEntry(event, actor: actor)
            switch event {
            case .objectApplied(let object, _, let clusters, let source):
                set(object.key.stateKey, FleetEvent.encode(object))
                for cluster in clusters {
                    set(auditKey(object.key.namespace, cluster, source.atNanoseconds, "d", revision), FleetEvent.encode(audit))
                }
            case .objectDeleted(let key, let clusters, let source):
                set(key.stateKey, nil)
                for cluster in clusters {
                    set(auditKey(key.namespace, cluster, source.atNanoseconds, "d", revision), FleetEvent.encode(audit))
                }
                if key.kind == "Cluster" {
                    set(FleetStateKey.requested(key.namespace, key.name), nil)
                }
            case .upgradeRequested(let namespace, let cluster, let version, let source):
                set(FleetStateKey.requested(namespace, cluster), FleetEvent.encode(RequestedUpgrade(version: version, source: source)))
                set(auditKey(namespace, cluster, source.atNanoseconds, "d", revision), FleetEvent.encode(audit))
            case .controlPlaneObserved(let namespace, let cluster, _, _, _, let at),
                .machineObserved(let namespace, let cluster, _, _, _, _, let at, _),
                .machineConditionChanged(let namespace, let cluster, _, _, _, _, _, let at),
                .machineDeleted(let namespace, let cluster, _, let at),
                .remediationDecided(let namespace, let cluster, _, _, _, _, _, let at),
                .remediationSkipped(let namespace, let cluster, _, _, _, _, let at),
                .remediationAllowed(let namespace, let cluster, _, let at):
                let key = FleetStateKey.observed(namespace, cluster)
                var observed = ObservedCluster()
                if let bytes = try current(key) {
                    observed = try JSONDecoder().decode(ObservedCluster.self, from: Data(bytes))
                }
                fold(event, into: &observed)
                set(key, FleetEvent.encode(observed))
                set(auditKey(namespace, cluster, at, "o", revision), FleetEvent.encode(audit))
            case .workflowStarted(let namespace, let cluster, _, _, _, let at):
                set(auditKey(namespace, cluster, at, "o", revision), FleetEvent.encode(audit))
            }
        }
        return order.map { key in
            if case .some(.some(let value)) = overlay[key] { return .put(key: key, value: value) }
            return .delete(key: key)
        }
    }

    static func fold(_ event: FleetEvent, into observed: inout ObservedCluster) {
        switch event {
        case .controlPlaneObserved(_, _, let version, let status, let ready, let at):
            let since = observed.controlPlane.flatMap { $0.status == status && $0.installedVersion == version ? $0.sinceNanoseconds : nil } ?? at
            let initialized = observed.controlPlane?.initializedNanoseconds ?? (ready ? at : nil)
            observed.controlPlane = .init(
                installedVersion: version, status: status, ready: ready, sinceNanoseconds: since, initializedNanoseconds: initialized)
        case .machineObserved(_, _, let machine, let deployment, let phase, let version, let at, let digest):
            var entry = observed.machines[machine]
                ?? .init(deployment: deployment, phase: phase, version: version, conditions: [:], sinceNanoseconds: at, createdNanoseconds: at)
            if entry.phase != phase { entry.sinceNanoseconds = at }
            entry.deployment = deployment
            entry.phase = phase
            entry.version = version ?? entry.version
            entry.templateDigest = digest ?? entry.templateDigest
            observed.machines[machine] = entry
        case .machineConditionChanged(_, _, let machine, let type, let status, let reason, let since, let at):
            var entry = observed.machines[machine]
                ?? .init(deployment: "", phase: "Unknown", version: nil, conditions: [:], sinceNanoseconds: at, createdNanoseconds: at)
            entry.conditions[type] = .init(status: status, reason: reason, lastTransitionNanoseconds: since)
            observed.machines[machine] = entry
        case .machineDeleted(_, _, let machine, _):
            observed.machines[machine] = nil
        case .remediationDecided(_, _, let check, let machine, _, _, _, let at):
            var recent = observed.remediations ?? []
            recent.append(.init(check: check, machine: machine, atNanoseconds: at))
            observed.remediations = Array(recent.suffix(ObservedCluster.remediationsKept))
        case .remediationSkipped(_, _, let check, _, _, _, _):
            observed.shortCircuited = (Set(observed.shortCircuited ?? []).union([check])).sorted()
        case .remediationAllowed(_, _, let check, _):
            let remaining = (observed.shortCircuited ?? []).filter { $0 != check }
            observed.shortCircuited = remaining.isEmpty ? nil : remaining
        default:
            break
        }
    }

    static func auditKey(_ namespace: String, _ cluster: String, _ at: Int64, _ side: String, _ revision: StreamRevision) -> String {
        "\(FleetStateKey.auditPrefix)\(namespace)/\(cluster)/\(padded(UInt64(max(at, 0)), 19))-\(side)\(padded(revision.rawValue, 12))"
    }

    static func padded(_ value: UInt64, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }

    static func auditEntry(_ event: FleetEvent, actor: String) -> AuditEntry {
        switch event {
        case .objectApplied(let object, let change, _, let source):
            let file = source.file.map { " from \($0) (\(source.digest ?? "?"))" } ?? ""
            return AuditEntry(atNanoseconds: source.atNanoseconds, event: event.typeName,
                              summary: "\(object.key) \(change.rawValue)\(file)", actor: source.actor)
        case .objectDeleted(let key, _, let source):
            return AuditEntry(atNanoseconds: source.atNanoseconds, event: event.typeName, summary: "\(key) deletion requested",
                              actor: source.actor)
        case .upgradeRequested(_, let cluster, let version, let source):
            return AuditEntry(atNanoseconds: source.atNanoseconds, event: event.typeName,
                              summary: "upgrade of \(cluster) to \(version) requested", actor: source.actor)
        case .controlPlaneObserved(_, _, let version, let status, let ready, let at):
            return AuditEntry(atNanoseconds: at, event: event.typeName,
                              summary: "control plane \(version.map { "\($0)" } ?? "no version") \(status)\(ready ? ", ready" : "")", actor: actor)
        case .machineObserved(_, _, let machine, _, let phase, let version, let at, _):
            return AuditEntry(atNanoseconds: at, event: event.typeName,
                              summary: "machine \(machine) \(phase)\(version.map { " at \($0)" } ?? "")", actor: actor)
        case .machineConditionChanged(_, _, let machine, let type, let status, let reason, _, let at):
            return AuditEntry(atNanoseconds: at, event: event.typeName,
                              summary: "machine \(machine) \(type)=\(status)\(reason.map { " (\($0))" } ?? "")", actor: actor)
        case .machineDeleted(_, _, let machine, let at):
            return AuditEntry(atNanoseconds: at, event: event.typeName, summary: "machine \(machine) deleted", actor: actor)
        case .remediationDecided(_, _, let check, let machine, let reason, let message, let workflowID, let at):
            return AuditEntry(atNanoseconds: at, event: event.typeName,
                              summary: "MachineHealthCheck \(check): machine \(machine) \(reason) (\(message)): replaced by \(workflowID)",
                              actor: actor)
        case .remediationSkipped(_, _, let check, let reason, let unhealthy, let expected, let at):
            return AuditEntry(atNanoseconds: at, event: event.typeName,
                              summary: "MachineHealthCheck \(check): remediation skipped, \(reason): \(unhealthy.count) of \(expected) unhealthy (\(unhealthy.joined(separator: ", ")))",
                              actor: actor)
        case .remediationAllowed(_, _, let check, let at):
            return AuditEntry(atNanoseconds: at, event: event.typeName, summary: "MachineHealthCheck \(check): remediation allowed again",
                              actor: actor)
        case .workflowStarted(_, _, let workflowID, let workflowType, let reason, let at):
            return AuditEntry(atNanoseconds: at, event: event.typeName, summary: "started \(workflowType) \(workflowID): \(reason)",
                              actor: actor)
        }
    }

    /// Rebuilds every Fleet projection by folding the log from the start through `through`
    /// (the whole log when nil): what `capstan replay --verify` compares with the stored ones.
    ///
    /// - Throws: reader errors; a Fleet event that does not decode.
    public static func rebuild(_ reader: EventLogReader, through: LogPosition? = nil) throws -> [String: [UInt8]] {
        var state: [String: [UInt8]] = [:]
        try reader.scan(after: .start, through: through) { recorded in
            guard recorded.streamID.rawValue.hasPrefix(FleetStateKey.prefix),
                let event = try FleetEvent.decode(recorded)
            else { return true }
            let writes = try Self.writes(for: [(event, recorded.revision, recorded.metadata.actor)]) { state[$0] }
            for write in writes {
                switch write {
                case .put(let key, let value): state[key] = value
                case .delete(let key): state[key] = nil
                }
            }
            return true
        }
        return state
    }

    /// The stored Fleet projections, as ``rebuild(_:through:)`` returns them.
    public static func stored(_ reader: EventLogReader) throws -> [String: [UInt8]] {
        var state: [String: [UInt8]] = [:]
        for (key, value) in try reader.stateEntries(withPrefix: FleetStateKey.prefix) { state[key] = value }
        return state
    }
}
