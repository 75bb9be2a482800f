public import EventLog
import Foundation

// STORED FORMAT. The Fleet's domain events are JSON payloads (schema version 1) with the
// field names below; other processes (the CLI, the engine's inbox handler, workflows)
// append them and `capstan replay` folds them, so a field is only ever added (optional)
// and a change of meaning takes a new schema version. Documented in docs/ARCHITECTURE.md
// ("Fleet events").
//
// Streams:
//   fleet/desired/<namespace>           desired state: DesiredObjectApplied, DesiredObjectDeleted,
//                                       ClusterUpgradeRequested (one stream per namespace, appended
//                                       with its exact expected revision, so two appliers never
//                                       interleave)
//   fleet/cluster/<namespace>/<name>    observed facts the workflows record: ControlPlaneObserved,
//                                       MachineObserved, MachineConditionChanged, MachineDeleted,
//                                       RemediationDecided, RemediationSkipped, RemediationAllowed,
//                                       ControllerStartedWorkflow (the fleet controller's decisions)

/// Who recorded a change and from what: the user and host that ran `apply`, the file and
/// its SHA-256, and the applier's clock (the projection uses this time, not the commit's,
/// so a rebuild gives the same bytes).
public struct ChangeSource: Hashable, Codable, Sendable {
    public var user: String
    public var host: String
    /// The file as given (`-` for standard input); nil for a command such as `upgrade`.
    public var file: String?
    /// `sha256:<hex>` of the file's bytes.
    public var digest: String?
    public var atNanoseconds: Int64

    public init(user: String, host: String, file: String? = nil, digest: String? = nil, atNanoseconds: Int64) {
        self.user = user
        self.host = host
        self.file = file
        self.digest = digest
        self.atNanoseconds = atNanoseconds
    }

    /// `user@host`
    public var actor: String { "\(user)@\(host)" }
}

/// What happened to an object's desired state.
public enum DesiredChange: String, Hashable, Codable, Sendable {
    case created, configured, unchanged, deleted
}

/// A Fleet domain event (desired state and observed facts).
public enum FleetEvent: Hashable, Sendable {
    /// An object was applied (created or changed).
    case objectApplied(DesiredObject, change: DesiredChange, clusters: [String], source: ChangeSource)
    /// An object's deletion was requested.
    case objectDeleted(ObjectKey, clusters: [String], source: ChangeSource)
    /// `capstan upgrade`: the cluster's control plane and workers are to reach `version`.
    case upgradeRequested(namespace: String, cluster: String, version: KubernetesVersion, source: ChangeSource)
    /// The control plane's installed version and readiness as a workflow read them.
    case controlPlaneObserved(namespace: String, cluster: String, installedVersion: KubernetesVersion?, status: String, ready: Bool, atNanoseconds: Int64)
    /// A machine was created, or its phase, version or template digest changed.
    /// `templateDigest`: the ``MachineTemplateDigest`` it was created from (nil: not recorded;
    /// events from before Capstan recorded it carry none).
    case machineObserved(namespace: String, cluster: String, machine: String, deployment: String, phase: String, version: KubernetesVersion?, atNanoseconds: Int64, templateDigest: String? = nil)
    /// A condition of a machine's node changed (recorded on change, not on every poll).
    case machineConditionChanged(namespace: String, cluster: String, machine: String, type: String, status: String, reason: String?, lastTransitionNanoseconds: Int64, atNanoseconds: Int64)
    /// A machine is gone (its VM and Node deleted).
    case machineDeleted(namespace: String, cluster: String, machine: String, atNanoseconds: Int64)
    /// A health check judged a machine unhealthy and its replacement was started (the Remediate workflow).
    case remediationDecided(namespace: String, cluster: String, check: String, machine: String, reason: String, message: String, workflowID: String, atNanoseconds: Int64)
    /// A health check refused to remediate (`TooManyUnhealthy`): recorded when the refusal begins, not on every evaluation.
    case remediationSkipped(namespace: String, cluster: String, check: String, reason: String, unhealthy: [String], expected: Int, atNanoseconds: Int64)
    /// A health check that had refused allows remediation again.
    case remediationAllowed(namespace: String, cluster: String, check: String, atNanoseconds: Int64)
    /// The fleet controller started a lifecycle workflow to close a gap between desired and
    /// observed state (recorded once the engine accepted the start).
    case workflowStarted(namespace: String, cluster: String, workflowID: String, workflowType: String, reason: String, atNanoseconds: Int64)

    public static let desiredStreamPrefix = "fleet/desired/"
    public static let clusterStreamPrefix = "fleet/cluster/"

    public static func desiredStream(_ namespace: String) -> StreamID { StreamID(desiredStreamPrefix + namespace) }
    public static func clusterStream(namespace: String, cluster: String) -> StreamID {
        StreamID(clusterStreamPrefix + namespace + "/" + cluster)
    }

    /// The stream the event belongs to.
    public var stream: StreamID {
        switch self {
        case .objectApplied(let object, _, _, _): Self.desiredStream(object.key.namespace)
        case .objectDeleted(let key, _, _): Self.desiredStream(key.namespace)
        case .upgradeRequested(let namespace, _, _, _): Self.desiredStream(namespace)
        case .controlPlaneObserved(let namespace, let cluster, _, _, _, _),
            .machineObserved(let namespace, let cluster, _, _, _, _, _, _),
            .machineConditionChanged(let namespace, let cluster, _, _, _, _, _, _),
            .machineDeleted(let namespace, let cluster, _, _),
            .remediationDecided(let namespace, let cluster, _, _, _, _, _, _),
            .remediationSkipped(let namespace, let cluster, _, _, _, _, _),
            .remediationAllowed(let namespace, let cluster, _, _),
            .workflowStarted(let namespace, let cluster, _, _, _, _):
            Self.clusterStream(namespace: namespace, cluster: cluster)
        }
    }

    /// The stored payload's fields (one flat shape; each type uses some of them).
    struct Fields: Codable, Hashable {
        var kind: String?
        var apiVersion: String?
        var namespace: String
        var name: String?
        var object: ManifestValue?
        var change: DesiredChange?
        var clusters: [String]?
        var source: ChangeSource?
        var cluster: String?
        var version: KubernetesVersion?
        var status: String?
        var ready: Bool?
        var machine: String?
        var deployment: String?
        var phase: String?
        var type: String?
        var reason: String?
        var lastTransitionNanoseconds: Int64?
        var atNanoseconds: Int64?
        var check: String?
        var message: String?
        var workflowID: String?
        var machines: [String]?
        var expected: Int?
        var workflowType: String?
        /// MachineObserved (absent in events recorded before it existed, and when nil, so the
        /// payload and id of such an event are what they were).
        var templateDigest: String?
    }

    var typeName: String {
        switch self {
        case .objectApplied: "DesiredObjectApplied"
        case .objectDeleted: "DesiredObjectDeleted"
        case .upgradeRequested: "ClusterUpgradeRequested"
        case .controlPlaneObserved: "ControlPlaneObserved"
        case .machineObserved: "MachineObserved"
        case .machineConditionChanged: "MachineConditionChanged"
        case .machineDeleted: "MachineDeleted"
        case .remediationDecided: "RemediationDecided"
        case .remediationSkipped: "RemediationSkipped"
        case .remediationAllowed: "RemediationAllowed"
        case .workflowStarted: "ControllerStartedWorkflow"
        }
    }

    var fields: Fields {
        switch self {
        case .objectApplied(let object, let change, let clusters, let source):
            Fields(kind: object.key.kind, apiVersion: object.apiVersion, namespace: object.key.namespace, name: object.key.name,
                   object: object.object, change: change, clusters: clusters, source: source)
        case .objectDeleted(let key, let clusters, let source):
            Fields(kind: key.kind, namespace: key.namespace, name: key.name, change: .deleted, clusters: clusters, source: source)
        case .upgradeRequested(let namespace, let cluster, let version, let source):
            Fields(namespace: namespace, source: source, cluster: cluster, version: version)
        case .controlPlaneObserved(let namespace, let cluster, let version, let status, let ready, let at):
            Fields(namespace: namespace, cluster: cluster, version: version, status: status, ready: ready, atNanoseconds: at)
        case .machineObserved(let namespace, let cluster, let machine, let deployment, let phase, let version, let at, let digest):
            Fields(namespace: namespace, cluster: cluster, version: version, machine: machine, deployment: deployment,
                   phase: phase, atNanoseconds: at, templateDigest: digest)
        case .machineConditionChanged(let namespace, let cluster, let machine, let type, let status, let reason, let since, let at):
            Fields(namespace: namespace, cluster: cluster, status: status, machine: machine, type: type, reason: reason,
                   lastTransitionNanoseconds: since, atNanoseconds: at)
        case .machineDeleted(let namespace, let cluster, let machine, let at):
            Fields(namespace: namespace, cluster: cluster, machine: machine, atNanoseconds: at)
        case .remediationDecided(let namespace, let cluster, let check, let machine, let reason, let message, let workflowID, let at):
            Fields(namespace: namespace, cluster: cluster, machine: machine, reason: reason, atNanoseconds: at, check: check,
                   message: message, workflowID: workflowID)
        case .remediationSkipped(let namespace, let cluster, let check, let reason, let unhealthy, let expected, let at):
            Fields(namespace: namespace, cluster: cluster, reason: reason, atNanoseconds: at, check: check, machines: unhealthy,
                   expected: expected)
        case .remediationAllowed(let namespace, let cluster, let check, let at):
            Fields(namespace: namespace, cluster: cluster, atNanoseconds: at, check: check)
        case .workflowStarted(let namespace, let cluster, let workflowID, let workflowType, let reason, let at):
            Fields(namespace: namespace, cluster: cluster, reason: reason, atNanoseconds: at, workflowID: workflowID,
                   workflowType: workflowType)
        }
    }

    /// The event to append, with a deterministic id (a digest of type and payload, so the
    /// same request handled on either path carries the same id).
    public func proposedEvent(actor: String) -> ProposedEvent {
        let payload = Self.encode(fields)
        let digest = sha256(Array(typeName.utf8) + [0] + payload)
        let high = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let low = digest.dropFirst(8).prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return ProposedEvent(id: EventID(high: high, low: low), type: typeName, schemaVersion: 1,
                             metadata: EventMetadata(actor: actor), payload: payload)
    }

    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Plain structs of strings, numbers and ManifestValue: encoding cannot fail.
        return Array(try! encoder.encode(value))
    }

    /// Reads a recorded Fleet event; nil for an event of another type.
    ///
    /// - Throws: ``ManifestError`` `.invalidValue` naming the position when the payload is damaged.
    public static func decode(type: String, schemaVersion: UInt16, payload: [UInt8], position: LogPosition? = nil) throws -> FleetEvent? {
        let known = ["DesiredObjectApplied", "DesiredObjectDeleted", "ClusterUpgradeRequested", "ControlPlaneObserved",
                     "MachineObserved", "MachineConditionChanged", "MachineDeleted", "RemediationDecided", "RemediationSkipped",
                     "RemediationAllowed", "ControllerStartedWorkflow"]
        guard known.contains(type) else { return nil }
        let context = "fleet event \(type) at position \(position.map { "\($0)" } ?? "?")"
        guard schemaVersion == 1 else { throw decodeError(context, "unknown schema version \(schemaVersion)") }
        let f: Fields
        do { f = try JSONDecoder().decode(Fields.self, from: Data(payload)) } catch {
            throw decodeError(context, "payload does not decode: \(error)")
        }
        func need<T>(_ value: T?, _ name: String) throws -> T {
            guard let value else { throw decodeError(context, "field \(name) is missing") }
            return value
        }
        switch type {
        case "DesiredObjectApplied":
            let key = ObjectKey(kind: try need(f.kind, "kind"), namespace: f.namespace, name: try need(f.name, "name"))
            let object = DesiredObject(key: key, apiVersion: try need(f.apiVersion, "apiVersion"), object: try need(f.object, "object"))
            return .objectApplied(object, change: f.change ?? .configured, clusters: f.clusters ?? [], source: try need(f.source, "source"))
        case "DesiredObjectDeleted":
            let key = ObjectKey(kind: try need(f.kind, "kind"), namespace: f.namespace, name: try need(f.name, "name"))
            return .objectDeleted(key, clusters: f.clusters ?? [], source: try need(f.source, "source"))
        case "ClusterUpgradeRequested":
            return .upgradeRequested(namespace: f.namespace, cluster: try need(f.cluster, "cluster"),
                                     version: try need(f.version, "version"), source: try need(f.source, "source"))
        case "ControlPlaneObserved":
            return .controlPlaneObserved(namespace: f.namespace, cluster: try need(f.cluster, "cluster"), installedVersion: f.version,
                                         status: f.status ?? "Unknown", ready: f.ready ?? false, atNanoseconds: f.atNanoseconds ?? 0)
        case "MachineObserved":
            return .machineObserved(namespace: f.namespace, cluster: try need(f.cluster, "cluster"), machine: try need(f.machine, "machine"),
                                    deployment: f.deployment ?? "", phase: f.phase ?? "Unknown", version: f.version,
                                    atNanoseconds: f.atNanoseconds ?? 0, templateDigest: f.templateDigest)
        case "MachineConditionChanged":
            return .machineConditionChanged(namespace: f.namespace, cluster: try need(f.cluster, "cluster"),
                                            machine: try need(f.machine, "machine"), type: try need(f.type, "type"),
                                            status: f.status ?? "Unknown", reason: f.reason,
                                            lastTransitionNanoseconds: f.lastTransitionNanoseconds ?? 0, atNanoseconds: f.atNanoseconds ?? 0)
        case "RemediationDecided":
            return .remediationDecided(namespace: f.namespace, cluster: try need(f.cluster, "cluster"), check: try need(f.check, "check"),
                                       machine: try need(f.machine, "machine"), reason: try need(f.reason, "reason"),
                                       message: f.message ?? "", workflowID: try need(f.workflowID, "workflowID"),
                                       atNanoseconds: f.atNanoseconds ?? 0)
        case "RemediationSkipped":
            return .remediationSkipped(namespace: f.namespace, cluster: try need(f.cluster, "cluster"), check: try need(f.check, "check"),
                                       reason: try need(f.reason, "reason"), unhealthy: f.machines ?? [], expected: f.expected ?? 0,
                                       atNanoseconds: f.atNanoseconds ?? 0)
        case "RemediationAllowed":
            return .remediationAllowed(namespace: f.namespace, cluster: try need(f.cluster, "cluster"), check: try need(f.check, "check"),
                                       atNanoseconds: f.atNanoseconds ?? 0)
        case "ControllerStartedWorkflow":
            return .workflowStarted(namespace: f.namespace, cluster: try need(f.cluster, "cluster"),
                                    workflowID: try need(f.workflowID, "workflowID"), workflowType: try need(f.workflowType, "workflowType"),
                                    reason: f.reason ?? "", atNanoseconds: f.atNanoseconds ?? 0)
        default:
            return .machineDeleted(namespace: f.namespace, cluster: try need(f.cluster, "cluster"), machine: try need(f.machine, "machine"),
                                   atNanoseconds: f.atNanoseconds ?? 0)
        }
    }

    public static func decode(_ recorded: RecordedEvent) throws -> FleetEvent? {
        try decode(type: recorded.type, schemaVersion: recorded.schemaVersion, payload: recorded.payload, position: recorded.position)
    }

    private static func decodeError(_ context: String, _ reason: String) -> ManifestError {
        ManifestError(.invalidValue, file: "log", reason: "\(context): \(reason)")
    }
}
