import CapstanSupport
import Engine
import Fleet
import Foundation
import Providers

extension FleetExecutors {
    /// The annotation holding when a drain of the Node began (nanoseconds since the epoch), so
    /// the drain timeout counts from the first pass across retries and restarts.
    static let drainStartedAnnotation = "capstan.io/drain-started"
    /// Cluster API's label naming a machine's MachineDeployment.
    static let deploymentNameLabel = "cluster.x-k8s.io/deployment-name"

    static func userdataSecretName(_ machine: String) -> String { "\(machine)-userdata" }

    // MARK: bootstrap and VM

    func ensureBootstrap(_ input: Activities.BootstrapInput, key: IdempotencyKey) async throws -> Activities.BootstrapOutput {
        let kamaji = KamajiProvider(client: management)
        guard let controlPlane = try await kamaji.controlPlane(name: input.cluster.controlPlane, namespace: input.cluster.namespace),
            let endpoint = controlPlane.status?.controlPlaneEndpoint, !endpoint.isEmpty
        else {
            throw ActivityFailure(
                kind: Activities.FailureKind.notReady,
                message: "bootstrap \(input.machine): TenantControlPlane \(input.cluster.namespace)/\(input.cluster.controlPlane) has no endpoint yet")
        }
        let workload = try await workloads.client(for: input.cluster)
        // kubeadm join discovery pins the tenant CA (the one the admin kubeconfig trusts), so the
        // node refuses an API server at that endpoint signed by any other CA.
        let join = KubeadmJoin(
            apiServerEndpoint: endpoint, token: tokens.draw(),
            caCertHashes: try KubeadmJoin.caCertHashes(trustedBy: workload.connection), nodeName: input.machine,
            kubeletVersion: input.kubeletVersion,
            extras: try await resolvedExtras(input.bootstrap ?? KubeadmConfigExtras(), namespace: input.cluster.namespace))
        let name = Self.userdataSecretName(input.machine)
        let token = try await management.ensureMachineBootstrap(
            userdataSecretName: name, namespace: input.cluster.namespace, join: join, clusterName: input.cluster.name,
            key: key, workload: workload, tokenExpiration: rfc3339(clock.now() + tokenLifetime))
        return Activities.BootstrapOutput(userdataSecretName: name, tokenID: token.id)
    }

    /// The template's files with each `contentFrom.secret` read from its Secret in the
    /// machine's namespace (CABPK reads them at bootstrap too). The content is never logged.
    private func resolvedExtras(_ extras: KubeadmConfigExtras, namespace: String) async throws -> KubeadmConfigExtras {
        var resolved = extras
        for (index, file) in extras.files.enumerated() {
            guard file.content == nil, let source = file.contentFrom else { continue }
            let secret = try await management.getIfPresent(.secrets, name: source.name, namespace: namespace, as: Secret.self)
            guard let bytes = secret?.data?[source.key] else {
                throw ActivityFailure(
                    kind: Activities.FailureKind.notReady,
                    message: "bootstrap file \(file.path): Secret \(namespace)/\(source.name) "
                        + (secret == nil ? "does not exist" : "has no key \(source.key)"))
            }
            resolved.files[index].content = bytes.exposedString
        }
        return resolved
    }

    func createVirtualMachine(
        _ input: Activities.VirtualMachineInput, key: IdempotencyKey
    ) async throws -> Activities.VirtualMachineCreated {
        var spec = KubeVirtProvider.MachineSpec(
            name: input.machine, namespace: input.cluster.namespace, clusterName: input.cluster.name,
            cpuCores: input.cpuCores, memory: input.memory, bootstrapSecretName: input.userdataSecretName,
            labels: [Self.deploymentNameLabel: input.deployment].merging(
                input.templateDigest.map { [MachineTemplateDigest.labelKey: $0] } ?? [:], uniquingKeysWith: { first, _ in first }),
            template: input.virtualMachine)
        if let image = input.image {
            spec.image = image
            spec.imageOverride = true
        }
        let outcome = try await KubeVirtProvider(client: management).ensureVirtualMachine(spec, key: key)
        return Activities.VirtualMachineCreated(created: outcome.wasCreatedNow)
    }

    func readVirtualMachine(_ input: Activities.MachineRef) async throws -> Activities.VirtualMachineObservation {
        guard
            let vm = try await KubeVirtProvider(client: management).virtualMachine(
                name: input.machine, namespace: input.cluster.namespace)
        else { return Activities.VirtualMachineObservation(exists: false, ready: false) }
        return Activities.VirtualMachineObservation(exists: true, ready: vm.isReady, printableStatus: vm.status?.printableStatus)
    }

    /// Deletes the VM, then its userdata Secret (which holds the join token).
    func deleteVirtualMachine(_ input: Activities.MachineRef) async throws -> Activities.Deleted {
        let outcome = try await KubeVirtProvider(client: management).deleteVirtualMachine(
            name: input.machine, namespace: input.cluster.namespace)
        _ = try await management.deleteOnce(
            .secrets, name: Self.userdataSecretName(input.machine), namespace: input.cluster.namespace)
        return Activities.Deleted(alreadyGone: outcome == .alreadyGone)
    }

    // MARK: Node

    func readNode(_ input: Activities.MachineRef) async throws -> Activities.NodeObservation {
        let machine = input.machine
        guard let node = try await workloads.with(input.cluster, { try await $0.node(named: machine) }) else {
            return Activities.NodeObservation(exists: false)
        }
        let health = WorkloadCluster.NodeHealth(node)
        return Activities.NodeObservation(
            exists: true, ready: health.ready, readySince: health.readyLastTransitionTime, reason: health.readyReason,
            kubeletVersion: health.kubeletVersion, providerID: health.providerID, unschedulable: health.unschedulable)
    }

    func setProviderID(_ input: Activities.MachineRef) async throws -> Activities.ProviderIDSet {
        let machine = input.machine
        do {
            let node = try await workloads.with(input.cluster) { try await $0.setProviderID(nodeName: machine) }
            return Activities.ProviderIDSet(providerID: node.spec?.providerID ?? "kubevirt://\(machine)")
        } catch let error as KubernetesError where error.code == .conflict && error.httpStatus == nil {
            // The Node carries another providerID: it never changes once set, so retrying cannot help.
            throw ActivityFailure(kind: Activities.FailureKind.conflict, message: "node.setProviderID: \(error)", retryable: false)
        }
    }

    /// One drain pass: cordon, evict what may be evicted. Done, or timed out: an output. Pods
    /// left and time remaining: a retryable `drainPending` failure, so the engine's backoff
    /// paces the passes (a budget's 429 is such a case).
    func drainNode(_ input: Activities.DrainInput) async throws -> Activities.DrainOutput {
        let machine = input.machine
        let now = clock.now()
        let result = try await workloads.with(input.cluster) { workload -> Result<Activities.DrainOutput, ActivityFailure> in
            guard let node = try await workload.node(named: machine) else {
                return .success(Activities.DrainOutput(drained: true, timedOut: false))
            }
            let started: Timestamp
            if let recorded = node.metadata.annotations?[Self.drainStartedAnnotation].flatMap(Int64.init) {
                started = Timestamp(nanoseconds: recorded)
            } else {
                started = now
                let patch: JSONValue = [
                    "metadata": ["annotations": [Self.drainStartedAnnotation: .string(String(now.nanoseconds))]]
                ]
                _ = try await workload.client.mergePatch(.nodes, name: machine, patch, namespace: nil, as: Node.self)
            }
            let report = try await workload.drain(nodeName: machine)
            let blocked = report.blocked.map { "\($0.namespace)/\($0.pod)" }
            if report.isComplete {
                return .success(Activities.DrainOutput(drained: true, timedOut: false, skipped: report.skipped))
            }
            if input.timeoutSeconds > 0, now.duration(since: started) >= .seconds(input.timeoutSeconds) {
                return .success(
                    Activities.DrainOutput(drained: false, timedOut: true, blocked: blocked, skipped: report.skipped))
            }
            let reasons = report.blocked.prefix(3).map { "\($0.namespace)/\($0.pod): \($0.message)" }
            return .failure(
                ActivityFailure(
                    kind: Activities.FailureKind.drainPending,
                    message: "drain \(machine): \(report.evicted.count) evicted, \(report.terminating.count) terminating, "
                        + "\(report.blocked.count) blocked" + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: "; ")))")))
        }
        return try result.get()
    }

    func deleteNode(_ input: Activities.MachineRef) async throws -> Activities.Deleted {
        let machine = input.machine
        do {
            let outcome = try await workloads.with(input.cluster) {
                try await $0.client.deleteOnce(.nodes, name: machine, namespace: nil)
            }
            return Activities.Deleted(alreadyGone: outcome == .alreadyGone)
        } catch let error as KubernetesError where error.code == .notFound {
            // No workload client because the control plane itself is gone: so is every Node.
            let kamaji = KamajiProvider(client: management)
            if try await kamaji.controlPlane(name: input.cluster.controlPlane, namespace: input.cluster.namespace) == nil {
                return Activities.Deleted(alreadyGone: true)
            }
            throw error
        }
    }
}

/// RFC 3339 in UTC with whole seconds (Kubernetes' `metav1.Time`).
func rfc3339(_ time: Timestamp) -> String { CapstanSupport.rfc3339(nanoseconds: time.nanoseconds) }
