// The fleet controller's view of desired state: a fold of the `fleet/desired/<namespace>`
// streams into one value per cluster, with the stream revision of the change behind each
// aspect (created, control-plane version, each MachineDeployment, deleted). Those revisions
// name the workflows the controller starts, so the same change always yields the same id.
public import EventLog
public import Fleet

/// One cluster as its desired state stands, with the revisions of the changes behind it.
public struct DesiredCluster: Hashable, Sendable {
    public struct Deployment: Hashable, Sendable {
        public var name: String
        public var replicas: Int
        /// The template's `version`; nil when the manifest gives none.
        public var version: KubernetesVersion?
        public var strategy: RolloutStrategy
        public var deletionOrder: DeletionOrder
        /// The desired-stream revision of the last change to this MachineDeployment.
        public var revision: UInt64
        /// Its KubevirtMachineTemplate and KubeadmConfigTemplate, as applied; nil when it
        /// references neither.
        public var template: Activities.MachineTemplate?

        /// The desired-stream revision of the last change to the templates it references
        /// (0: none recorded); with ``revision``, it names a rollout of a template change.
        public var templateRevision: UInt64

        public init(
            name: String, replicas: Int, version: KubernetesVersion?, strategy: RolloutStrategy = .default,
            deletionOrder: DeletionOrder = .random, revision: UInt64, template: Activities.MachineTemplate? = nil,
            templateRevision: UInt64 = 0
        ) {
            self.template = template
            self.templateRevision = templateRevision
            self.name = name
            self.replicas = replicas
            self.version = version
            self.strategy = strategy
            self.deletionOrder = deletionOrder
            self.revision = revision
        }

        /// The digest of its current machine template (machines made from another one are
        /// out of date); nil when its template was recorded without one.
        public var templateDigest: String? { Activities.MachineTemplate.digest(of: template) }

        /// Whether a machine made from template digest `machine` is out of date (one with no
        /// digest recorded counts as current).
        public func isTemplateOutOfDate(_ machine: String?) -> Bool {
            MachineTemplateDigest.isOutOfDate(machine, current: templateDigest)
        }

        public var maxSurge: IntOrPercent {
            if case .rollingUpdate(let surge, _) = strategy { return surge }
            return .count(0)
        }
        public var maxUnavailable: IntOrPercent {
            if case .rollingUpdate(_, let unavailable) = strategy { return unavailable }
            return .count(1)
        }
    }

    public var namespace: String
    public var name: String
    /// The Cluster was deleted (its desired objects are gone; what runs must be torn down).
    public var deleted: Bool
    public var paused: Bool
    /// The KamajiControlPlane's name (the TenantControlPlane Kamaji serves the cluster from).
    public var controlPlaneName: String
    public var controlPlaneReplicas: Int
    /// What the control plane should run: the `capstan upgrade` request when newer, else the
    /// applied KamajiControlPlane version (ClusterSummary.ControlPlane.desiredVersion's rule).
    public var version: KubernetesVersion?
    public var catalog: VersionCatalog?
    public var deployments: [Deployment]
    /// The MachineHealthChecks of the cluster (the remediation seam reads them).
    public var healthChecks: [DesiredSpec.HealthCheck]
    /// The revision of the change that created the Cluster.
    public var createdRevision: UInt64
    /// The revision of the change that last moved ``version``.
    public var versionRevision: UInt64
    /// The revision of the Cluster's deletion.
    public var deletedRevision: UInt64?

    public init(
        namespace: String, name: String, deleted: Bool = false, paused: Bool = false, controlPlaneName: String? = nil,
        controlPlaneReplicas: Int = 2, version: KubernetesVersion?, catalog: VersionCatalog? = nil,
        deployments: [Deployment] = [], healthChecks: [DesiredSpec.HealthCheck] = [], createdRevision: UInt64 = 0,
        versionRevision: UInt64 = 0, deletedRevision: UInt64? = nil
    ) {
        self.namespace = namespace
        self.name = name
        self.deleted = deleted
        self.paused = paused
        self.controlPlaneName = controlPlaneName ?? name
        self.controlPlaneReplicas = controlPlaneReplicas
        self.version = version
        self.catalog = catalog
        self.deployments = deployments
        self.healthChecks = healthChecks
        self.createdRevision = createdRevision
        self.versionRevision = versionRevision
        self.deletedRevision = deletedRevision
    }

    /// MachineHealthCheck's `nodeStartupTimeout` (the longest of the cluster's checks; CAPI's
    /// default 10 minutes when none sets it).
    public var nodeStartupTimeoutSeconds: Int {
        let timeouts = healthChecks.compactMap(\.nodeStartupTimeout).map { Int($0.nanoseconds / 1_000_000_000) }
        return timeouts.max() ?? 600
    }

    public var ref: Activities.ClusterRef { Activities.ClusterRef(namespace: namespace, name: name, controlPlane: controlPlaneName) }
}

/// Folds desired-state events into ``DesiredCluster`` values, one namespace at a time, in log
/// order. Pure: the same events give the same clusters and revisions.
public struct DesiredFleet: Sendable {
    struct Namespace: Sendable {
        var objects: [ObjectKey: DesiredObject] = [:]
        var requested: [String: KubernetesVersion] = [:]
        var created: [String: UInt64] = [:]
        var versionRevision: [String: UInt64] = [:]
        var lastVersion: [String: KubernetesVersion] = [:]
        var deploymentRevision: [String: UInt64] = [:]
        /// The revision of each object's last apply (templates: a change rolls machines).
        var objectRevision: [ObjectKey: UInt64] = [:]
        var deleted: [String: UInt64] = [:]
        var controlPlaneName: [String: String] = [:]
        /// The last revision folded.
        var revision: UInt64?
    }

    private(set) var namespaces: [String: Namespace] = [:]

    public init() {}

    /// The namespaces folded so far.
    public var namespaceNames: [String] { namespaces.keys.sorted() }

    /// The revision of `namespace`'s desired stream folded so far (nil: none).
    public func revision(of namespace: String) -> UInt64? { namespaces[namespace]?.revision }

    /// Folds one recorded desired-state event (other events are ignored; an event at or
    /// below the namespace's folded revision too, so a replayed tail is harmless).
    public mutating func fold(_ recorded: RecordedEvent) throws {
        guard recorded.streamID.rawValue.hasPrefix(FleetEvent.desiredStreamPrefix), let event = try FleetEvent.decode(recorded)
        else { return }
        fold(event, revision: recorded.revision.rawValue)
    }

    /// Folds one desired-state event recorded at `revision` of its namespace's stream.
    public mutating func fold(_ event: FleetEvent, revision: UInt64) {
        let namespace: String
        switch event {
        case .objectApplied(let object, _, _, _): namespace = object.key.namespace
        case .objectDeleted(let key, _, _): namespace = key.namespace
        case .upgradeRequested(let name, _, _, _): namespace = name
        default: return
        }
        var space = namespaces[namespace] ?? Namespace()
        if let last = space.revision, revision <= last { return }
        space.revision = revision
        var touched: [String] = []
        switch event {
        case .objectApplied(let object, _, let clusters, _):
            let existed = space.objects[object.key] != nil
            if space.objects[object.key] != object { space.objectRevision[object.key] = revision }
            space.objects[object.key] = object
            touched = clusters
            switch object.key.kind {
            case "Cluster":
                if !existed {
                    space.created[object.key.name] = revision
                    space.deleted[object.key.name] = nil
                    space.versionRevision[object.key.name] = nil
                    space.lastVersion[object.key.name] = nil
                }
                if case .cluster(let spec)? = object.desiredSpec, let ref = spec.controlPlaneRef {
                    space.controlPlaneName[object.key.name] = ref.name
                }
                touched.append(object.key.name)
            case "MachineDeployment":
                space.deploymentRevision[object.key.name] = revision
            default:
                break
            }
        case .objectDeleted(let key, let clusters, _):
            space.objects[key] = nil
            space.objectRevision[key] = revision
            touched = clusters
            if key.kind == "Cluster" {
                space.deleted[key.name] = revision
                space.requested[key.name] = nil
            }
        case .upgradeRequested(_, let cluster, let version, _):
            space.requested[cluster] = version
            touched = [cluster]
        default:
            break
        }
        for cluster in Set(touched) {
            let version = Self.desiredVersion(space, namespace: namespace, cluster: cluster)
            if let version, version != space.lastVersion[cluster] {
                space.lastVersion[cluster] = version
                space.versionRevision[cluster] = revision
            }
        }
        namespaces[namespace] = space
    }

    private static func desiredVersion(_ space: Namespace, namespace: String, cluster: String) -> KubernetesVersion? {
        var applied: KubernetesVersion?
        if case .cluster(let spec)? = space.objects[ObjectKey(kind: "Cluster", namespace: namespace, name: cluster)]?.desiredSpec,
            let ref = spec.controlPlaneRef,
            case .controlPlane(let controlPlane)? = space.objects[ObjectKey(kind: ref.kind, namespace: namespace, name: ref.name)]?
                .desiredSpec
        {
            applied = controlPlane.version
        }
        return [applied, space.requested[cluster]].compactMap { $0 }.max()
    }

    /// Every cluster known to the desired state, present or deleted, by namespace and name.
    public var clusters: [DesiredCluster] {
        var result: [DesiredCluster] = []
        for (namespace, space) in namespaces.sorted(by: { $0.key < $1.key }) {
            let names = Set(space.created.keys).union(space.deleted.keys)
            for name in names.sorted() {
                if let cluster = Self.cluster(namespace, name, space) { result.append(cluster) }
            }
        }
        return result
    }

    private static func cluster(_ namespace: String, _ name: String, _ space: Namespace) -> DesiredCluster? {
        guard let created = space.created[name] else { return nil }
        let object = space.objects[ObjectKey(kind: "Cluster", namespace: namespace, name: name)]
        guard let object, case .cluster(let spec)? = object.desiredSpec else {
            // Deleted: only what the teardown needs.
            return DesiredCluster(
                namespace: namespace, name: name, deleted: true, controlPlaneName: space.controlPlaneName[name],
                version: nil, createdRevision: created, deletedRevision: space.deleted[name])
        }
        var cluster = DesiredCluster(
            namespace: namespace, name: name, paused: spec.paused, controlPlaneName: spec.controlPlaneRef?.name ?? name,
            version: desiredVersion(space, namespace: namespace, cluster: name), createdRevision: created,
            versionRevision: space.versionRevision[name] ?? created)
        if let ref = spec.controlPlaneRef,
            case .controlPlane(let controlPlane)? = space.objects[ObjectKey(kind: ref.kind, namespace: namespace, name: ref.name)]?.desiredSpec
        {
            cluster.controlPlaneReplicas = controlPlane.replicas ?? 2
        }
        if case .versionCatalog(let catalog)? =
            space.objects[ObjectKey(kind: "VersionCatalog", namespace: namespace, name: spec.versionCatalog)]?.desiredSpec
        {
            cluster.catalog = catalog
        }
        for (key, object) in space.objects.sorted(by: { $0.key < $1.key }) {
            switch object.desiredSpec {
            case .machineDeployment(let md)? where md.clusterName == name:
                let strategy: RolloutStrategy =
                    md.strategy == .onDelete ? .onDelete : .rollingUpdate(maxSurge: md.maxSurge, maxUnavailable: md.maxUnavailable)
                let templateRevision = [md.infrastructureRef, md.bootstrapConfigRef].compactMap { ref in
                    ref.flatMap { space.objectRevision[ObjectKey(kind: $0.kind, namespace: namespace, name: $0.name)] }
                }.max() ?? 0
                cluster.deployments.append(
                    DesiredCluster.Deployment(
                        name: key.name, replicas: md.replicas, version: md.version, strategy: strategy,
                        deletionOrder: DeletionOrder(rawValue: md.deletionOrder.rawValue) ?? .random,
                        revision: space.deploymentRevision[key.name] ?? created,
                        template: Activities.MachineTemplate.resolve(md, namespace: namespace, objects: space.objects),
                        templateRevision: templateRevision))
            case .healthCheck(let check)? where check.clusterName == name:
                cluster.healthChecks.append(check)
            default:
                break
            }
        }
        return cluster
    }
}
