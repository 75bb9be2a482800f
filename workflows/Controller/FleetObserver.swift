// What the fleet controller sees of one cluster: the TenantControlPlane, the VirtualMachines
// labelled `cluster.x-k8s.io/cluster-name`, and the workload cluster's Nodes, read through
// the executors' clients; and the Fleet events that record what CHANGED since the stored
// observation (``changes(from:to:namespace:cluster:at:)``, pure).
public import Engine
import Foundation
public import Fleet
import Providers

/// One reading of a cluster.
public struct ClusterObservation: Hashable, Sendable {
    public struct Machine: Hashable, Sendable {
        public var deployment: String
        /// Provisioning (VM not running yet), Provisioned (running, no Node), Running (its Node
        /// joined), Deleting (the VM is going).
        public var phase: String
        public var version: KubernetesVersion?
        /// The Node's conditions by type (nil: the Node was not read this time).
        public var conditions: [String: ObservedCluster.Condition]?
        /// The VM's `capstan.dev/machine-template-hash` label (nil: none).
        public var templateDigest: String?

        public init(
            deployment: String, phase: String, version: KubernetesVersion?, conditions: [String: ObservedCluster.Condition]?,
            templateDigest: String? = nil
        ) {
            self.deployment = deployment
            self.phase = phase
            self.version = version
            self.conditions = conditions
            self.templateDigest = templateDigest
        }
    }

    /// nil: no TenantControlPlane.
    public var controlPlane: ObservedCluster.ControlPlane?
    public var machines: [String: Machine]

    public init(controlPlane: ObservedCluster.ControlPlane?, machines: [String: Machine]) {
        self.controlPlane = controlPlane
        self.machines = machines
    }

    /// The events that bring `stored` to this reading: only what changed.
    public func changes(from stored: ObservedCluster, namespace: String, cluster: String, at: Timestamp) -> [FleetEvent] {
        var events: [FleetEvent] = []
        let now = at.nanoseconds
        let controlPlane = self.controlPlane
            ?? ObservedCluster.ControlPlane(installedVersion: nil, status: FleetController.absent, ready: false)
        if stored.controlPlane.map({ ($0.installedVersion, $0.status, $0.ready) != (controlPlane.installedVersion, controlPlane.status, controlPlane.ready) })
            ?? true
        {
            events.append(.controlPlaneObserved(
                namespace: namespace, cluster: cluster, installedVersion: controlPlane.installedVersion, status: controlPlane.status,
                ready: controlPlane.ready, atNanoseconds: now))
        }
        for (name, machine) in machines.sorted(by: { $0.key < $1.key }) {
            let before = stored.machines[name]
            let version = machine.version ?? before?.version
            let digest = machine.templateDigest ?? before?.templateDigest
            if before == nil || before?.phase != machine.phase || before?.version != version || before?.deployment != machine.deployment
                || before?.templateDigest != digest
            {
                events.append(.machineObserved(
                    namespace: namespace, cluster: cluster, machine: name, deployment: machine.deployment, phase: machine.phase,
                    version: version, atNanoseconds: now, templateDigest: digest))
            }
            for (type, condition) in (machine.conditions ?? [:]).sorted(by: { $0.key < $1.key }) where before?.conditions[type] != condition {
                events.append(.machineConditionChanged(
                    namespace: namespace, cluster: cluster, machine: name, type: type, status: condition.status,
                    reason: condition.reason, lastTransitionNanoseconds: condition.lastTransitionNanoseconds, atNanoseconds: now))
            }
        }
        for name in stored.machines.keys.sorted() where machines[name] == nil {
            events.append(.machineDeleted(namespace: namespace, cluster: cluster, machine: name, atNanoseconds: now))
        }
        return events
    }
}

/// Reads clusters from the management cluster and their workload clusters.
public struct FleetObserver: Sendable {
    let management: KubernetesClient
    let workloads: WorkloadClients

    public init(executors: FleetExecutors) {
        self.management = executors.management
        self.workloads = executors.workloads
    }

    /// Reads the cluster. The Nodes are read only once the control plane has an admin
    /// kubeconfig; when they cannot be read, machines carry no conditions (nil), so a stored
    /// observation is not overwritten by a guess.
    ///
    /// - Throws: `KubernetesError` when the management cluster cannot be read.
    public func observe(_ cluster: Activities.ClusterRef) async throws -> ClusterObservation {
        let tcp = try await KamajiProvider(client: management).controlPlane(name: cluster.controlPlane, namespace: cluster.namespace)
        let controlPlane = tcp.map { tcp in
            ObservedCluster.ControlPlane(
                installedVersion: tcp.installedVersion.flatMap { try? KubernetesVersion(reported: $0) },
                status: tcp.versionStatus ?? "Unknown", ready: tcp.installedVersion.map { tcp.isRunning(version: $0) } ?? false)
        }
        let vms = try await management.listAll(
            .virtualMachines, namespace: cluster.namespace,
            options: ListOptions(labelSelector: "\(Workflows.clusterNameLabel)=\(cluster.name)"), as: VirtualMachine.self)
        var nodes: [String: Node]?
        if tcp?.adminKubeconfigSecretName != nil, !vms.isEmpty {
            nodes = try? await workloads.with(cluster) { workload in
                let listed = try await workload.client.listAll(.nodes, namespace: nil, as: Node.self)
                return Dictionary(listed.map { ($0.metadata.name ?? "", $0) }, uniquingKeysWith: { first, _ in first })
            }
        }
        var machines: [String: ClusterObservation.Machine] = [:]
        for vm in vms {
            guard let name = vm.metadata.name else { continue }
            let deployment = vm.metadata.labels?[FleetExecutors.deploymentNameLabel] ?? ""
            let node = nodes?[name]
            var phase = vm.isReady ? "Provisioned" : "Provisioning"
            if node != nil { phase = "Running" }
            if vm.metadata.deletionTimestamp != nil { phase = "Deleting" }
            var conditions: [String: ObservedCluster.Condition]?
            if let nodes {
                conditions = [:]
                for condition in nodes[name]?.status?.conditions ?? [] {
                    conditions?[condition.type] = ObservedCluster.Condition(
                        status: condition.status, reason: condition.reason,
                        lastTransitionNanoseconds: condition.lastTransitionTime.flatMap(Activities.timestamp(rfc3339:))?.nanoseconds ?? 0)
                }
            }
            machines[name] = ClusterObservation.Machine(
                deployment: deployment, phase: phase,
                version: node?.kubeletVersion.flatMap { try? KubernetesVersion(reported: $0) }, conditions: conditions,
                templateDigest: vm.metadata.labels?[MachineTemplateDigest.labelKey])
        }
        return ClusterObservation(controlPlane: controlPlane, machines: machines)
    }
}
