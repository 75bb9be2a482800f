public import EventLog
import Foundation

/// The desired state an apply starts from: the applied objects of the namespaces concerned
/// and each namespace's desired-stream revision (the expected revision of the append).
public struct DesiredSnapshot: Sendable {
    public var objects: [ObjectKey: DesiredObject] = [:]
    /// nil: the namespace has no desired stream yet.
    public var revisions: [String: StreamRevision?] = [:]

    public init() {}

    /// Reads the applied objects of `namespaces` from the projections.
    ///
    /// - Throws: reader errors; a stored object that does not decode.
    public static func load(_ reader: EventLogReader, namespaces: Set<String>) throws -> DesiredSnapshot {
        var snapshot = DesiredSnapshot()
        for namespace in namespaces.sorted() {
            snapshot.revisions[namespace] = .some(try reader.streamRevision(FleetEvent.desiredStream(namespace)))
            for (_, value) in try reader.stateEntries(withPrefix: "\(FleetStateKey.objectPrefix)\(namespace)/") {
                let object = try JSONDecoder().decode(DesiredObject.self, from: Data(value))
                snapshot.objects[object.key] = object
            }
        }
        return snapshot
    }
}

/// A file given to `apply` or `delete`.
public struct ManifestFile: Hashable, Codable, Sendable {
    /// As given on the command line (`-` for standard input).
    public var name: String
    public var text: String

    public init(name: String, text: String) {
        self.name = name
        self.text = text
    }

    public var digest: String { fileDigest(Array(text.utf8)) }
}

/// What an apply or delete will do, computed before anything is written.
public struct DesiredStatePlan: Sendable {
    public struct Item: Hashable, Sendable {
        public var key: ObjectKey
        public var change: DesiredChange
        public var file: String
        /// Fields present that Capstan does not act on.
        public var notActedOn: [String]
    }

    public var items: [Item]
    /// The events to append, in order.
    public var events: [FleetEvent]
    /// Each namespace's desired-stream revision the plan was made from.
    public var revisions: [String: StreamRevision?]

    /// True when applying it appends nothing (every object unchanged).
    public var isEmpty: Bool { events.isEmpty }
}

/// Plans `apply` and `delete`: validates everything first (per object and across objects,
/// against what is already applied) and refuses the whole input when anything is wrong.
public enum DesiredStatePlanner {
    /// Reads the files; the namespaces their objects live in, or every error found.
    public static func read(_ files: [ManifestFile]) -> (manifests: [Manifest], errors: [ManifestError]) {
        var manifests: [Manifest] = []
        var errors: [ManifestError] = []
        for file in files {
            let (read, problems) = ManifestReader.read(file.text, file: file.name)
            manifests += read
            errors += problems
        }
        var seen: [ObjectKey: Manifest] = [:]
        for manifest in manifests {
            let key = ObjectKey(kind: manifest.kind.kind, namespace: manifest.namespace, name: manifest.name)
            if let first = seen[key] {
                errors.append(manifest.error(.duplicate, "\(key) in namespace \(key.namespace) is also defined in \(first.file) document \(first.document)"))
            } else {
                seen[key] = manifest
            }
        }
        return (manifests, errors)
    }

    /// Plans applying `files` onto `current`.
    ///
    /// - Returns: the plan, or every problem found (then nothing may be written).
    public static func planApply(_ files: [ManifestFile], current: DesiredSnapshot, source: ChangeSource) -> Result<DesiredStatePlan, ManifestErrors> {
        let (manifests, readErrors) = read(files)
        guard readErrors.isEmpty else { return .failure(ManifestErrors(errors: readErrors)) }
        var after = current.objects
        var byKey: [ObjectKey: Manifest] = [:]
        for manifest in manifests {
            let object = DesiredObject(manifest)
            after[object.key] = object
            byKey[object.key] = manifest
        }
        var validator = Validator(after: after, before: current.objects, inputs: byKey)
        validator.run()
        guard validator.errors.isEmpty else { return .failure(ManifestErrors(errors: validator.errors)) }

        let digests = Dictionary(files.map { ($0.name, $0.digest) }, uniquingKeysWith: { first, _ in first })
        var items: [DesiredStatePlan.Item] = []
        var events: [FleetEvent] = []
        let membership = ClusterMembership(after)
        for manifest in manifests {
            let object = DesiredObject(manifest)
            let change: DesiredChange
            if let old = current.objects[object.key] {
                change = old == object ? .unchanged : .configured
            } else {
                change = .created
            }
            items.append(.init(key: object.key, change: change, file: manifest.file, notActedOn: manifest.notActedOn))
            guard change != .unchanged else { continue }
            var fileSource = source
            fileSource.file = manifest.file
            fileSource.digest = digests[manifest.file]
            events.append(.objectApplied(object, change: change, clusters: membership.clusters(of: object.key), source: fileSource))
        }
        return .success(DesiredStatePlan(items: items, events: events, revisions: current.revisions))
    }

    /// Plans deleting the objects of `files` (or `keys`): objects not applied are reported
    /// in `missing` (kubectl's NotFound).
    public static func planDelete(_ keys: [ObjectKey], files: [String: String] = [:], current: DesiredSnapshot, source: ChangeSource)
        -> (plan: DesiredStatePlan, missing: [ObjectKey])
    {
        var items: [DesiredStatePlan.Item] = []
        var events: [FleetEvent] = []
        var missing: [ObjectKey] = []
        var seen = Set<ObjectKey>()
        let membership = ClusterMembership(current.objects)
        for key in keys where seen.insert(key).inserted {
            guard current.objects[key] != nil else {
                missing.append(key)
                continue
            }
            items.append(.init(key: key, change: .deleted, file: files[key.description] ?? "-", notActedOn: []))
            events.append(.objectDeleted(key, clusters: membership.clusters(of: key), source: source))
        }
        return (DesiredStatePlan(items: items, events: events, revisions: current.revisions), missing)
    }

    /// A Cluster and what it owns, in teardown order (workers and health checks, then the
    /// control plane and the infrastructure, the Cluster last), as CAPI's owner references
    /// would cascade. Shared templates stay.
    public static func clusterTeardown(namespace: String, name: String, current: DesiredSnapshot) -> [ObjectKey]? {
        let clusterKey = ObjectKey(kind: "Cluster", namespace: namespace, name: name)
        guard let cluster = current.objects[clusterKey] else { return nil }
        var keys: [ObjectKey] = []
        for (key, object) in current.objects.sorted(by: { $0.key < $1.key })
        where key.namespace == namespace && ["MachineHealthCheck", "MachineDeployment"].contains(key.kind)
            && object.spec("clusterName")?.stringValue == name
        {
            keys.append(key)
        }
        keys.sort { ($0.kind == "MachineHealthCheck" ? 0 : 1, $0.name) < ($1.kind == "MachineHealthCheck" ? 0 : 1, $1.name) }
        for field in ["controlPlaneRef", "infrastructureRef"] {
            if let ref = ObjectReference(cluster.spec(field)) {
                let key = ObjectKey(kind: ref.kind, namespace: ref.namespace ?? namespace, name: ref.name)
                if current.objects[key] != nil { keys.append(key) }
            }
        }
        keys.append(clusterKey)
        return keys
    }

    /// The clusters `key` belongs to in `objects` (see ``ClusterMembership``). One call
    /// builds the index: callers asking for many keys build a ``ClusterMembership`` once.
    static func clusters(of key: ObjectKey, in objects: [ObjectKey: DesiredObject]) -> [String] {
        ClusterMembership(objects).clusters(of: key)
    }
}

/// Every problem found in an input: nothing of it may be written.
public struct ManifestErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ManifestError]
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// Which clusters each object belongs to, indexed once: a Cluster is its own; a
/// MachineDeployment or MachineHealthCheck names its `clusterName`; a control plane or
/// infrastructure cluster belongs to the Clusters whose `controlPlaneRef`/`infrastructureRef`
/// name it; a machine or bootstrap template to the `clusterName` of the MachineDeployments
/// that use it; a VersionCatalog to the Clusters whose annotation (else `default`) names it,
/// all within one namespace. (Asked object by object with a scan each, a 1,000-cluster apply
/// took O(objects²) to record and O(clusters × objects²) to validate: hours.)
struct ClusterMembership {
    private let objects: [ObjectKey: DesiredObject]
    private var owners: [ObjectKey: Set<String>] = [:]

    init(_ objects: [ObjectKey: DesiredObject]) {
        self.objects = objects
        for object in objects.values {
            let namespace = object.key.namespace
            switch object.key.kind {
            case "Cluster":
                for field in ["controlPlaneRef", "infrastructureRef"] {
                    guard let ref = ObjectReference(object.spec(field)), ["KamajiControlPlane", "KubevirtCluster"].contains(ref.kind)
                    else { continue }
                    owners[ObjectKey(kind: ref.kind, namespace: namespace, name: ref.name), default: []].insert(object.key.name)
                }
                let catalog = object.annotations[versionCatalogAnnotation]?.stringValue ?? "default"
                owners[ObjectKey(kind: "VersionCatalog", namespace: namespace, name: catalog), default: []].insert(object.key.name)
            case "MachineDeployment":
                guard let cluster = object.spec("clusterName")?.stringValue else { continue }
                for field in ["template.spec.infrastructureRef", "template.spec.bootstrap.configRef"] {
                    guard let ref = ObjectReference(object.spec(field)),
                        ["KubevirtMachineTemplate", "KubeadmConfigTemplate"].contains(ref.kind)
                    else { continue }
                    owners[ObjectKey(kind: ref.kind, namespace: namespace, name: ref.name), default: []].insert(cluster)
                }
            default:
                break
            }
        }
    }

    func clusters(of key: ObjectKey) -> [String] {
        switch key.kind {
        case "Cluster":
            return [key.name]
        case "MachineDeployment", "MachineHealthCheck":
            return (objects[key]?.spec("clusterName")?.stringValue).map { [$0] } ?? []
        case "KamajiControlPlane", "KubevirtCluster", "KubevirtMachineTemplate", "KubeadmConfigTemplate", "VersionCatalog":
            return (owners[key] ?? []).sorted()
        default:
            return []
        }
    }
}
