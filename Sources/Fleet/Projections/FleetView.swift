public import EventLog
import Foundation

/// One cluster as `capstan get clusters` shows it: desired (applied, requested) beside observed.
public struct ClusterSummary: Hashable, Codable, Sendable {
    public struct ControlPlane: Hashable, Codable, Sendable {
        public var name: String?
        /// What the cluster should run: the requested upgrade when newer, else the applied version.
        public var desiredVersion: KubernetesVersion?
        public var appliedVersion: KubernetesVersion?
        public var requestedVersion: KubernetesVersion?
        public var installedVersion: KubernetesVersion?
        public var status: String?
        public var ready: Bool
        public var replicas: Int?
        /// When it was first observed ready (CAPI's `ControlPlaneInitialized`): health checks
        /// judge start-up timeouts and conditions only from then.
        public var initializedNanoseconds: Int64? = nil
    }

    public struct Deployment: Hashable, Codable, Sendable {
        public var name: String
        /// The MachineDeployment's `metadata.labels`.
        public var labels: [String: String] = [:]
        public var desiredVersion: KubernetesVersion?
        public var replicas: Int
        /// Observed machines by version (`v1.33.4` → 3).
        public var versions: [String: Int]
        public var machines: Int
        public var readyMachines: Int
    }

    public struct Machine: Hashable, Codable, Sendable {
        public var name: String
        public var deployment: String
        public var phase: String
        public var version: KubernetesVersion?
        public var conditions: [String: ObservedCluster.Condition]
        /// When it was first observed (the node start-up clock).
        public var createdNanoseconds: Int64? = nil
    }

    public var namespace: String
    public var name: String
    /// The Cluster's `metadata.labels`.
    public var labels: [String: String] = [:]
    public var paused: Bool
    public var versionCatalog: String
    public var controlPlane: ControlPlane
    public var deployments: [Deployment]
    public var machines: [Machine]
    /// Remediations started in this cluster, oldest first (the health checks' rate limit).
    public var remediations: [ObservedCluster.Remediation]? = nil
    /// Health checks refusing remediation now (`TooManyUnhealthy`).
    public var shortCircuitedChecks: [String]? = nil
}

/// Reads the fleet from the projections (no engine needed).
public enum FleetView {
    /// Every applied cluster, sorted by namespace and name.
    ///
    /// - Throws: reader errors; a projection that does not decode.
    public static func clusters(_ reader: EventLogReader, namespace: String? = nil) throws -> [ClusterSummary] {
        try clusters(ProjectionState(reader: reader), namespace: namespace)
    }

    /// Every applied cluster in `state`, sorted by namespace and name.
    ///
    /// - Throws: what `state` throws; a projection that does not decode.
    public static func clusters(_ state: ProjectionState, namespace: String? = nil) throws -> [ClusterSummary] {
        let prefix = FleetStateKey.objectPrefix + (namespace.map { $0 + "/" } ?? "")
        var objects: [ObjectKey: DesiredObject] = [:]
        for (_, value) in try state.entries(prefix) {
            let object = try JSONDecoder().decode(DesiredObject.self, from: Data(value))
            objects[object.key] = object
        }
        var summaries: [ClusterSummary] = []
        for (key, object) in objects.sorted(by: { $0.key < $1.key }) where key.kind == "Cluster" {
            guard case .cluster(let cluster)? = object.typed(report: { _, _, _ in }) else { continue }
            var controlPlane = ClusterSummary.ControlPlane(ready: false)
            if let ref = cluster.controlPlaneRef,
                case .controlPlane(let spec)? = objects[ObjectKey(kind: ref.kind, namespace: key.namespace, name: ref.name)]?
                    .typed(report: { _, _, _ in })
            {
                controlPlane.name = ref.name
                controlPlane.appliedVersion = spec.version
                controlPlane.replicas = spec.replicas
            }
            if let bytes = try state.value(FleetStateKey.requested(key.namespace, key.name)) {
                controlPlane.requestedVersion = try JSONDecoder().decode(RequestedUpgrade.self, from: Data(bytes)).version
            }
            controlPlane.desiredVersion = [controlPlane.appliedVersion, controlPlane.requestedVersion].compactMap { $0 }.max()
            var observed = ObservedCluster()
            if let bytes = try state.value(FleetStateKey.observed(key.namespace, key.name)) {
                observed = try JSONDecoder().decode(ObservedCluster.self, from: Data(bytes))
            }
            controlPlane.installedVersion = observed.controlPlane?.installedVersion
            controlPlane.status = observed.controlPlane?.status
            controlPlane.ready = observed.controlPlane?.ready ?? false
            controlPlane.initializedNanoseconds = observed.controlPlane?.initializedNanoseconds
            let machines = observed.machines.sorted { $0.key < $1.key }.map {
                ClusterSummary.Machine(name: $0.key, deployment: $0.value.deployment, phase: $0.value.phase,
                                       version: $0.value.version, conditions: $0.value.conditions,
                                       createdNanoseconds: $0.value.createdNanoseconds)
            }
            var deployments: [ClusterSummary.Deployment] = []
            for (mdKey, md) in objects.sorted(by: { $0.key < $1.key }) where mdKey.kind == "MachineDeployment" && mdKey.namespace == key.namespace {
                guard case .machineDeployment(let spec)? = md.typed(report: { _, _, _ in }), spec.clusterName == key.name else { continue }
                let own = machines.filter { $0.deployment == mdKey.name }
                var versions: [String: Int] = [:]
                for machine in own { versions[machine.version.map(\.description) ?? "unknown", default: 0] += 1 }
                let ready = own.filter { $0.conditions["Ready"]?.status == "True" }.count
                deployments.append(.init(name: mdKey.name, labels: md.labels, desiredVersion: spec.version, replicas: spec.replicas,
                                         versions: versions, machines: own.count, readyMachines: ready))
            }
            summaries.append(ClusterSummary(
                namespace: key.namespace, name: key.name, labels: object.labels, paused: cluster.paused,
                versionCatalog: cluster.versionCatalog, controlPlane: controlPlane, deployments: deployments, machines: machines,
                remediations: observed.remediations, shortCircuitedChecks: observed.shortCircuited))
        }
        return summaries
    }

    /// A cluster's audit timeline, oldest first.
    ///
    /// - Throws: reader errors; an entry that does not decode.
    public static func audit(_ reader: EventLogReader, namespace: String, cluster: String) throws -> [AuditEntry] {
        try audit(ProjectionState(reader: reader), namespace: namespace, cluster: cluster)
    }

    /// A cluster's audit timeline in `state`, oldest first.
    ///
    /// - Throws: what `state` throws; an entry that does not decode.
    public static func audit(_ state: ProjectionState, namespace: String, cluster: String) throws -> [AuditEntry] {
        try state.entries("\(FleetStateKey.auditPrefix)\(namespace)/\(cluster)/").map {
            try JSONDecoder().decode(AuditEntry.self, from: Data($0.value))
        }
    }
}
