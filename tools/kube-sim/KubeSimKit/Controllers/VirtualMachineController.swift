import Foundation

/// KubeVirt's VirtualMachine controller and the guest's `kubeadm join`, as Capstan sees them.
extension Controllers {
    private var store: ClusterStore { simulation.management }

    func reconcileVirtualMachine(namespace: String, name: String) async {
        guard let vm = store.getIfPresent(.virtualMachines, namespace: namespace, name: name),
            vm["metadata"]?["deletionTimestamp"] == nil
        else { return }
        do {
            guard VirtualMachine.shouldRun(vm) else {
                try stop(vm, namespace: namespace, name: name)
                return
            }
            if vm["status"]?["ready"]?.boolValue != true {
                if let secretName = VirtualMachine.cloudInitSecretName(vm),
                    store.getIfPresent(.secrets, namespace: namespace, name: secretName) == nil
                {
                    // KubeVirt cannot start a VMI whose cloud-init Secret is missing; it waits for it.
                    waitingForSecret.withLock { _ = $0["\(namespace)/\(secretName)", default: []].insert(name) }
                    if store.getIfPresent(.secrets, namespace: namespace, name: secretName) != nil {
                        // Created between the check and the registration: go on now.
                        waitingForSecret.withLock { _ = $0["\(namespace)/\(secretName)"]?.remove(name) }
                        await reconcileVirtualMachine(namespace: namespace, name: name)
                        return
                    }
                    try setStatus(namespace: namespace, name: name, printable: "Provisioning", ready: false)
                    return
                }
                try setStatus(namespace: namespace, name: name, printable: "Starting", ready: false)
                try await pause(\.virtualMachineReady)
                guard let current = store.getIfPresent(.virtualMachines, namespace: namespace, name: name),
                    VirtualMachine.shouldRun(current)
                else { return }
                try startInstance(current, namespace: namespace, name: name)
                try setStatus(namespace: namespace, name: name, printable: "Running", ready: true)
            }
            try await pause(\.nodeJoin)
            joinNode(namespace: namespace, name: name)
        } catch is CancellationError {
            return
        } catch {
            logFailure(error, "virtualmachine \(namespace)/\(name)")
        }
    }

    private func setStatus(namespace: String, name: String, printable: String, ready: Bool) throws {
        try store.mutate(
            .virtualMachines, namespace: namespace, name: name, subresource: "status", options: .controller("kubevirt")
        ) { vm in
            let wasReady = vm["status"]?["ready"]?.boolValue == true
            vm[path: ["status", "printableStatus"]] = .string(printable)
            vm[path: ["status", "ready"]] = .bool(ready)
            vm[path: ["status", "created"]] = .bool(printable != "Stopped" && printable != "Provisioning")
            var conditions = (vm["status"]?["conditions"]?.arrayValue ?? []).filter { $0["type"]?.stringValue != "Ready" }
            conditions.insert(
                [
                    "type": "Ready", "status": .string(ready ? "True" : "False"),
                    "reason": .string(ready ? "" : printable),
                    "lastTransitionTime": wasReady == ready
                        ? (vm["status"]?["conditions"]?.arrayValue?.first { $0["type"]?.stringValue == "Ready" }?["lastTransitionTime"]
                            ?? .string(Timestamp.rfc3339(Date())))
                        : .string(Timestamp.rfc3339(Date())),
                ], at: 0)
            vm[path: ["status", "conditions"]] = .array(conditions)
        }
    }

    /// The VirtualMachineInstance KubeVirt runs for a VM: same name, owned by it, Running and Ready.
    private func startInstance(_ vm: JSON, namespace: String, name: String) throws {
        guard store.getIfPresent(.virtualMachineInstances, namespace: namespace, name: name) == nil else { return }
        let instance: JSON = [
            "metadata": [
                "name": .string(name), "namespace": .string(namespace), "labels": .object(vm.labels.mapValues(JSON.string)),
                "ownerReferences": [
                    [
                        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": .string(name),
                        "uid": .string(vm.uid ?? ""), "controller": true, "blockOwnerDeletion": true,
                    ]
                ],
            ],
            "spec": vm[path: ["spec", "template", "spec"]] ?? [:],
            "status": [
                "phase": "Running", "nodeName": "kube-sim-infra",
                "conditions": [["type": "Ready", "status": "True", "lastTransitionTime": .string(Timestamp.rfc3339(Date()))]],
            ],
        ]
        do {
            _ = try store.create(.virtualMachineInstances, namespace: namespace, body: instance, options: .controller("kubevirt"))
        } catch let error as APIError where error.reason == "AlreadyExists" {}
    }

    private func stop(_ vm: JSON, namespace: String, name: String) throws {
        _ = try? store.delete(.virtualMachineInstances, namespace: namespace, name: name, options: .controller("kubevirt"))
        try setStatus(namespace: namespace, name: name, printable: "Stopped", ready: false)
        guard let cluster = workloadCluster(of: vm, namespace: namespace) else { return }
        try cluster.store.mutate(.nodes, namespace: nil, name: name, subresource: "status", options: .controller("kubelet")) {
            node in NodeStatus.setReady(&node, ready: false, reason: "NodeStatusUnknown")
        }
    }

    /// The workload cluster the guest joined (or would join): the one listening at the
    /// `apiServerEndpoint` its kubeadm JoinConfiguration names. Labels play no part, as on a real guest.
    private func workloadCluster(of vm: JSON, namespace: String) -> WorkloadCluster? {
        guard let join = joinConfiguration(of: vm, namespace: namespace) else { return nil }
        return simulation.workload(endpoint: join.apiServerEndpoint)
    }

    /// The guest runs `kubeadm join` with the JoinConfiguration in its userdata: the Node
    /// appears in the cluster at its `apiServerEndpoint`, or the join is refused (CA pin, skew
    /// rules) and the VM shows a `Failure` condition. Without a JoinConfiguration no Node is made.
    func joinNode(namespace: String, name: String) {
        guard let vm = store.getIfPresent(.virtualMachines, namespace: namespace, name: name),
            vm["status"]?["ready"]?.boolValue == true,
            let join = joinConfiguration(of: vm, namespace: namespace)
        else { return }
        guard let cluster = simulation.workload(endpoint: join.apiServerEndpoint),
            let controlPlane = KubeVersion(cluster.version.withLock { $0 })
        else {
            // kubeadm keeps retrying discovery: joins once a control plane listens there (it drains this set).
            waitingForCluster.withLock { _ = $0[join.apiServerEndpoint, default: []].insert("\(namespace)/\(name)") }
            if simulation.workload(endpoint: join.apiServerEndpoint) != nil {
                waitingForCluster.withLock { _ = $0[join.apiServerEndpoint]?.remove("\(namespace)/\(name)") }
                joinNode(namespace: namespace, name: name)
            }
            return
        }
        if let refusal = join.discoveryRefusal(caPublicKeyHash: cluster.certificates.caPublicKeyHash) {
            do {
                try setJoinFailure(namespace: namespace, name: name, message: "kubeadm join refused: \(refusal)")
            } catch {
                logFailure(error, "node join \(namespace)/\(name)")
            }
            return
        }
        do {
            if let node = cluster.store.getIfPresent(.nodes, namespace: nil, name: name) {
                if !(node[path: ["status", "conditions"]]?.arrayValue ?? []).contains(where: {
                    $0["type"]?.stringValue == "Ready" && $0["reason"]?.stringValue == "NodeStatusUnknown"
                }) { return }
                try cluster.store.mutate(.nodes, namespace: nil, name: name, subresource: "status", options: .controller("kubelet")) {
                    node in NodeStatus.setReady(&node, ready: true, reason: "KubeletReady")
                }
                return
            }
            let kubelet = kubeletVersion(of: vm, namespace: namespace) ?? controlPlane
            if let refusal = SkewRules.joinRefusal(kubelet: kubelet, controlPlane: controlPlane) {
                try setJoinFailure(namespace: namespace, name: name, message: "kubeadm join refused: \(refusal)")
                return
            }
            _ = try cluster.store.create(
                .nodes, namespace: nil, body: VirtualMachine.node(for: vm, kubelet: kubelet),
                options: .controller("kubelet"))
            try setJoinFailure(namespace: namespace, name: name, message: nil)
        } catch let error as APIError where error.reason == "AlreadyExists" {
            return
        } catch {
            logFailure(error, "node join \(namespace)/\(name)")
        }
    }

    private func setJoinFailure(namespace: String, name: String, message: String?) throws {
        try store.mutate(
            .virtualMachines, namespace: namespace, name: name, subresource: "status", options: .controller("kubevirt")
        ) { vm in
            var conditions = (vm["status"]?["conditions"]?.arrayValue ?? []).filter { $0["type"]?.stringValue != "Failure" }
            if let message {
                conditions.append([
                    "type": "Failure", "status": "True", "reason": "KubeadmJoinFailed", "message": .string(message),
                    "lastTransitionTime": .string(Timestamp.rfc3339(Date())),
                ])
            }
            vm[path: ["status", "conditions"]] = .array(conditions)
        }
    }

    /// The kubelet version a VM boots with: the annotation, else the cloud-init userdata.
    func kubeletVersion(of vm: JSON, namespace: String) -> KubeVersion? {
        if let annotated = vm.annotation(Controllers.kubeletVersionAnnotation) { return KubeVersion(annotated) }
        return userdata(of: vm, namespace: namespace).flatMap(VirtualMachine.kubeletVersion(inUserdata:))
    }

    /// The kubeadm JoinConfiguration in the VM's cloud-init userdata, if any.
    func joinConfiguration(of vm: JSON, namespace: String) -> KubeadmJoinConfiguration? {
        userdata(of: vm, namespace: namespace).flatMap(KubeadmJoinConfiguration.init(userdata:))
    }

    /// The cloud-init userdata: the volume's inline text, else its Secret's `userdata`
    /// (or `userData`, or CAPI's `value`).
    private func userdata(of vm: JSON, namespace: String) -> String? {
        if let inline = VirtualMachine.inlineUserdata(vm) { return inline }
        guard let secretName = VirtualMachine.cloudInitSecretName(vm),
            let secret = store.getIfPresent(.secrets, namespace: namespace, name: secretName)
        else { return nil }
        let encoded = secret["data"]?["userdata"]?.stringValue ?? secret["data"]?["userData"]?.stringValue ?? secret["data"]?["value"]?.stringValue
        return encoded.flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
    }

    /// Deleting a VM removes its instance, and its Node (and the pods bound to it) from the workload cluster.
    func removeNode(of vm: JSON) {
        let namespace = vm.namespace ?? ""
        let name = vm.name ?? ""
        _ = try? store.delete(.virtualMachineInstances, namespace: namespace, name: name, options: .controller("kubevirt"))
        guard let cluster = workloadCluster(of: vm, namespace: namespace) else { return }
        for pod in cluster.store.list(.pods, namespace: nil, fields: try? FieldSelector(parsing: "spec.nodeName=\(name)")).items {
            _ = try? cluster.store.delete(.pods, namespace: pod.namespace, name: pod.name ?? "", options: .controller("pod-gc"))
        }
        _ = try? cluster.store.delete(.nodes, namespace: nil, name: name, options: .controller("kubevirt"))
    }
}

/// Reading KubeVirt VirtualMachine objects.
enum VirtualMachine {
    static func shouldRun(_ vm: JSON) -> Bool {
        if let strategy = vm["spec"]?["runStrategy"]?.stringValue {
            return ["Always", "RerunOnFailure", "Once"].contains(strategy)
        }
        return vm["spec"]?["running"]?.boolValue == true
    }

    private static func cloudInitVolumes(_ vm: JSON) -> [JSON] {
        (vm[path: ["spec", "template", "spec", "volumes"]]?.arrayValue ?? []).compactMap {
            $0["cloudInitNoCloud"] ?? $0["cloudInitConfigDrive"]
        }
    }

    static func cloudInitSecretName(_ vm: JSON) -> String? {
        cloudInitVolumes(vm).lazy.compactMap { $0["secretRef"]?["name"]?.stringValue }.first
    }

    static func inlineUserdata(_ vm: JSON) -> String? {
        for volume in cloudInitVolumes(vm) {
            if let text = volume["userData"]?.stringValue { return text }
            if let encoded = volume["userDataBase64"]?.stringValue, let data = Data(base64Encoded: encoded) {
                return String(decoding: data, as: UTF8.self)
            }
        }
        return nil
    }

    /// The first `kubernetesVersion`, `kubeletVersion` or `kubelet-version` value in the text
    /// (`kubernetesVersion: v1.33.2` as in a kubeadm config, quoted or not).
    static func kubeletVersion(inUserdata text: String) -> KubeVersion? {
        for line in text.split(whereSeparator: \.isNewline) {
            for key in ["kubeletVersion", "kubelet-version", "kubernetesVersion"] {
                guard let range = line.range(of: key) else { continue }
                var rest = line[range.upperBound...].drop { $0 == "\"" || $0 == "'" || $0 == " " }
                guard rest.first == ":" || rest.first == "=" else { continue }
                rest = rest.dropFirst().drop { $0 == " " || $0 == "\"" || $0 == "'" }
                let token = rest.prefix { !$0.isWhitespace && $0 != "\"" && $0 != "'" && $0 != "," }
                if let version = KubeVersion(String(token)) { return version }
            }
        }
        return nil
    }

    /// The Node a VM registers: named as the VM, with its kubelet version, Ready.
    static func node(for vm: JSON, kubelet: KubeVersion) -> JSON {
        let name = vm.name ?? ""
        let domain = vm[path: ["spec", "template", "spec", "domain"]]
        let cpu = domain?["cpu"]
        let cores = (cpu?["cores"]?.intValue ?? 1) * (cpu?["sockets"]?.intValue ?? 1) * (cpu?["threads"]?.intValue ?? 1)
        let memory = domain?["memory"]?["guest"]?.scalarText ?? domain?["resources"]?["requests"]?["memory"]?.scalarText ?? "4Gi"
        let capacity: JSON = ["cpu": .string(String(cores)), "memory": .string(memory), "pods": "110"]
        let hash = name.utf8.reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 }
        let address = "10.\(hash >> 16 & 0xFF).\(hash >> 8 & 0xFF).\(max(1, hash & 0xFF))"
        var node: JSON = [
            "metadata": [
                "name": .string(name),
                "labels": [
                    "kubernetes.io/hostname": .string(name), "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                ],
                "annotations": ["kube-sim.capstan.dev/virtual-machine": .string("\(vm.namespace ?? "")/\(name)")],
            ],
            "spec": [:],
            "status": [
                "nodeInfo": [
                    "kubeletVersion": .string(kubelet.description), "kubeProxyVersion": "",
                    "containerRuntimeVersion": "containerd://1.7.24", "osImage": "kube-sim", "operatingSystem": "linux",
                    "architecture": "amd64", "kernelVersion": "6.1.0", "machineID": .string(name),
                    "systemUUID": .string(vm.uid ?? ""), "bootID": .string(vm.uid ?? ""),
                ],
                "addresses": [["type": "InternalIP", "address": .string(address)], ["type": "Hostname", "address": .string(name)]],
                "capacity": capacity, "allocatable": capacity,
            ],
        ]
        NodeStatus.setReady(&node, ready: true, reason: "KubeletReady")
        return node
    }
}

/// What kube-sim reads of a kubeadm `JoinConfiguration` (`discovery.bootstrapToken`), written
/// in the userdata as CABPK writes it (`/run/kubeadm/kubeadm-join-config.yaml`).
struct KubeadmJoinConfiguration: Equatable {
    /// `host:port` of the API server to join.
    var apiServerEndpoint: String
    /// `sha256:<hex>` pins of the cluster CA's SubjectPublicKeyInfo.
    var caCertHashes: [String]
    var unsafeSkipCAVerification: Bool

    /// Reads the first `apiServerEndpoint:` and the `caCertHashes:` list after it; nil when the
    /// text names no endpoint.
    init?(userdata text: String) {
        func value(_ line: Substring) -> String {
            let afterColon = line.drop { $0 != ":" }.dropFirst()
            return afterColon.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
        }
        var endpoint: String?
        var hashes: [String] = []
        var skip = false
        var inHashes = false
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if inHashes {
                if trimmed.hasPrefix("- ") {
                    hashes.append(
                        String(trimmed.dropFirst(2)).trimmingCharacters(in: .whitespaces)
                            .trimmingCharacters(in: CharacterSet(charactersIn: "\"'")))
                    continue
                }
                inHashes = false
            }
            if trimmed.hasPrefix("apiServerEndpoint:"), endpoint == nil { endpoint = value(Substring(trimmed)) }
            if trimmed.hasPrefix("caCertHashes:") {
                let inline = value(Substring(trimmed))
                if inline.hasPrefix("[") {
                    hashes += inline.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).split(separator: ",").map {
                        $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
                    }.filter { !$0.isEmpty }
                } else {
                    inHashes = true
                }
            }
            if trimmed.hasPrefix("unsafeSkipCAVerification:") { skip = value(Substring(trimmed)) == "true" }
        }
        guard let endpoint, !endpoint.isEmpty else { return nil }
        self.apiServerEndpoint = endpoint
        self.caCertHashes = hashes
        self.unsafeSkipCAVerification = skip
    }

    /// Why kubeadm's token discovery refuses this cluster, or nil: a pin list that does not
    /// name the cluster CA's key, or no pins without `unsafeSkipCAVerification: true`.
    func discoveryRefusal(caPublicKeyHash: String) -> String? {
        if caCertHashes.isEmpty {
            return unsafeSkipCAVerification
                ? nil
                : "token-based discovery without caCertHashes can be unsafe; set unsafeSkipCAVerification to true in your kubeadm config file"
        }
        if caCertHashes.contains(where: { $0.lowercased() == caPublicKeyHash }) { return nil }
        return "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"\(caPublicKeyHash)\" are pinned"
    }
}
