import Foundation

/// Kamaji's TenantControlPlane reconciler, as far as Capstan can see it.
extension Controllers {
    private var store: ClusterStore { simulation.management }

    func reconcileControlPlane(namespace: String, name: String) async {
        guard let tcp = store.getIfPresent(.tenantControlPlanes, namespace: namespace, name: name),
            tcp["metadata"]?["deletionTimestamp"] == nil,
            let specText = tcp["spec"]?["kubernetes"]?["version"]?.stringValue, let target = KubeVersion(specText)
        else { return }
        let installedText = tcp[path: ["status", "kubernetesResources", "version", "version"]]?.stringValue
        let installed = installedText.flatMap(KubeVersion.init)
        do {
            if let installed {
                if target == installed {
                    try await complete(namespace: namespace, name: name, target: target)
                    return
                }
                if target < installed {
                    try refuse(namespace: namespace, name: name, "unable to downgrade from the installed \(installed) to \(target)")
                    return
                }
                if target.minorsAbove(installed) > 1 {
                    try refuse(
                        namespace: namespace, name: name,
                        "upgrade plan is not available: the installed version \(installed) can only move to v\(installed.major).\(installed.minor + 1), not \(target)")
                    return
                }
                try setPhase(namespace: namespace, name: name, "Upgrading")
                try await pause(\.controlPlaneUpgrade)
            } else {
                try setPhase(namespace: namespace, name: name, "Provisioning")
                try await pause(\.controlPlaneProvision)
            }
            // Level-based: finish only if the spec still asks for what this pass worked on.
            guard let current = store.getIfPresent(.tenantControlPlanes, namespace: namespace, name: name),
                current["spec"]?["kubernetes"]?["version"]?.stringValue.flatMap(KubeVersion.init) == target
            else { return }
            try await complete(namespace: namespace, name: name, target: target)
        } catch is CancellationError {
            return
        } catch {
            logFailure(error, "tenantcontrolplane \(namespace)/\(name)")
        }
    }

    private func setPhase(namespace: String, name: String, _ phase: String) throws {
        try store.mutate(
            .tenantControlPlanes, namespace: namespace, name: name, subresource: "status", options: .controller("kamaji")
        ) { tcp in
            tcp[path: ["status", "kubernetesResources", "version", "status"]] = .string(phase)
        }
    }

    private func refuse(namespace: String, name: String, _ message: String) throws {
        try store.mutate(
            .tenantControlPlanes, namespace: namespace, name: name, subresource: "status", options: .controller("kamaji")
        ) { tcp in
            tcp[path: ["status", "conditions"]] = [
                [
                    "type": "Ready", "status": "False", "reason": "UpgradePlanNotAvailable", "message": .string(message),
                    "lastTransitionTime": .string(Timestamp.rfc3339(Date())),
                ]
            ]
        }
    }

    /// Installs `target`: the workload cluster exists and serves that version, its admin
    /// kubeconfig is in the Secret Kamaji names, and the status says Ready at that version.
    private func complete(namespace: String, name: String, target: KubeVersion) async throws {
        let (cluster, created) = try await simulation.ensureWorkload(namespace: namespace, name: name, version: target.description)
        if created { cluster.store.setAdmission { attempt in try Admission.workload(attempt) } }
        let previous = cluster.version.withLock { version in
            defer { version = target.description }
            return version
        }
        let secretName = "\(name)-admin-kubeconfig"
        let kubeconfig = simulation.kubeconfig(for: cluster)
        try kubeconfig.write(to: simulation.workloadKubeconfigPath(namespace: namespace, name: name))
        let secret: JSON = [
            "metadata": [
                "name": .string(secretName), "namespace": .string(namespace),
                "labels": ["kamaji.clastix.io/name": .string(name), "kamaji.clastix.io/component": "admin-kubeconfig"],
            ],
            "type": "Opaque",
            "data": [
                "admin.conf": .string(Data(kubeconfig.yaml.utf8).base64EncodedString()),
                "super-admin.conf": .string(
                    Data(simulation.kubeconfig(for: cluster, superAdmin: true).yaml.utf8).base64EncodedString()),
            ],
        ]
        if store.getIfPresent(.secrets, namespace: namespace, name: secretName) == nil {
            _ = try? store.create(.secrets, namespace: namespace, body: secret, options: .controller("kamaji"))
        } else {
            try store.mutate(.secrets, namespace: namespace, name: secretName, options: .controller("kamaji")) { existing in
                existing["data"] = secret["data"]
            }
        }
        // The cluster's own endpoint, as Kamaji reports it (host:port of its API server).
        let endpoint = kubeconfig.server.replacingOccurrences(of: "https://", with: "")
        try store.mutate(
            .tenantControlPlanes, namespace: namespace, name: name, subresource: "status", options: .controller("kamaji")
        ) { tcp in
            let specText = tcp["spec"]?["kubernetes"]?["version"]?.stringValue ?? target.description
            let replicas = tcp["spec"]?["controlPlane"]?["deployment"]?["replicas"]?.intValue ?? 2
            tcp[path: ["status", "kubernetesResources", "version"]] = ["version": .string(specText), "status": "Ready"]
            tcp[path: ["status", "kubernetesResources", "deployment"]] = [
                "name": .string(name), "namespace": .string(namespace), "replicas": .int(replicas),
                "readyReplicas": .int(replicas), "updatedReplicas": .int(replicas), "availableReplicas": .int(replicas),
            ]
            tcp[path: ["status", "kubeconfig", "admin", "secretName"]] = .string(secretName)
            tcp[path: ["status", "controlPlaneEndpoint"]] = .string(endpoint)
            tcp[path: ["status", "conditions"]] = [
                [
                    "type": "Ready", "status": "True", "reason": "Ready", "message": "",
                    "lastTransitionTime": .string(Timestamp.rfc3339(Date())),
                ]
            ]
        }
        if previous != target.description { markKubeletsOutsideWindow(cluster, apiServer: target) }
        if created { joinWaitingMachines(endpoint: endpoint) }
    }

    /// After a control-plane upgrade, kubelets now outside the skew window stop being Ready.
    private func markKubeletsOutsideWindow(_ cluster: WorkloadCluster, apiServer: KubeVersion) {
        for node in cluster.store.list(.nodes, namespace: nil).items {
            guard let kubelet = node[path: ["status", "nodeInfo", "kubeletVersion"]]?.stringValue.flatMap(KubeVersion.init),
                SkewRules.runningSkewProblem(kubelet: kubelet, apiServer: apiServer) != nil
            else { continue }
            do {
                try cluster.store.mutate(
                    .nodes, namespace: nil, name: node.name ?? "", subresource: "status", options: .controller("kubelet")
                ) { node in NodeStatus.setReady(&node, ready: false, reason: "KubeletVersionSkew") }
            } catch {
                logFailure(error, "node \(node.name ?? "") skew")
            }
        }
    }

    /// VMs whose kubeadm join named this cluster's endpoint before it listened join now.
    private func joinWaitingMachines(endpoint: String) {
        let waiting = waitingForCluster.withLock { $0.removeValue(forKey: endpoint) } ?? []
        for key in waiting.sorted() {
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            joinNode(namespace: parts[0], name: parts[1])
        }
    }

    func tearDownCluster(_ tcp: JSON) async {
        let namespace = tcp.namespace ?? ""
        let name = tcp.name ?? ""
        await simulation.removeWorkload(namespace: namespace, name: name)
        try? FileManager.default.removeItem(atPath: simulation.workloadKubeconfigPath(namespace: namespace, name: name))
        _ = try? store.delete(.secrets, namespace: namespace, name: "\(name)-admin-kubeconfig", options: .controller("kamaji"))
    }
}
