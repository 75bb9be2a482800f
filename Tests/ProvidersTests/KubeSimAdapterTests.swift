import Foundation
import KubeSimKit
import Providers
import Testing

/// The adapters end to end against kube-sim: Kamaji control plane, bootstrap Secret, KubeVirt VM,
/// the workload cluster's Node, cordon and drain, and the in-place update extension.
@Suite struct KubeSimAdapterTests {
    /// Provisions control plane `name` at `version` and one machine `vm` joined to it.
    private func provision(
        _ client: KubernetesClient, name: String, version: String, machine: String, kubelet: String,
        template: JSONValue? = nil, extras: KubeadmConfigExtras = KubeadmConfigExtras()
    ) async throws -> WorkloadCluster {
        let kamaji = KamajiProvider(client: client)
        let created = try await kamaji.ensureControlPlane(
            name: name, namespace: "default", version: version, key: IdempotencyKey("\(name)/create-cp"))
        #expect(created.wasCreatedNow)
        let ready = try await eventually("control plane \(name) Ready") {
            let current = try await kamaji.controlPlane(name: name, namespace: "default")
            return current?.isRunning(version: version) == true ? current : nil
        }
        #expect(ready.adminKubeconfigSecretName == "\(name)-admin-kubeconfig")
        let workload = WorkloadCluster(client: try await kamaji.workloadClient(name: name, namespace: "default"))

        // An earlier attempt wrote the userdata Secret with token T1, then crashed before the token
        // Secret; the retry brings a fresh T2, yet T1 must be the token the workload cluster accepts.
        var generator = SystemRandomNumberGenerator()
        let firstToken = BootstrapToken.generate(using: &generator)
        let retryToken = BootstrapToken.generate(using: &generator)
        // The tenant CA's pin, as kubeadm computes it; kube-sim refuses a join without the right one.
        let pins = try KubeadmJoin.caCertHashes(trustedBy: workload.client.connection)
        #expect(pins.count == 1)
        #expect(pins == [try await Self.opensslPin(workload.client.connection)])
        func join(_ token: BootstrapToken) -> KubeadmJoin {
            KubeadmJoin(
                apiServerEndpoint: ready.status?.controlPlaneEndpoint ?? "127.0.0.1:6443", token: token,
                caCertHashes: pins, nodeName: machine, kubeletVersion: kubelet, extras: extras)
        }
        let bootstrapKey = IdempotencyKey("\(machine)/bootstrap")
        try await client.ensureBootstrapSecret(
            name: "\(machine)-userdata", namespace: "default", join: join(firstToken), clusterName: name,
            key: bootstrapKey)
        let token = try await client.ensureMachineBootstrap(
            userdataSecretName: "\(machine)-userdata", namespace: "default", join: join(retryToken),
            clusterName: name, key: bootstrapKey, workload: workload.client, tokenExpiration: "2030-01-01T00:00:00Z")
        #expect(token == firstToken)
        let tokenSecret = try await workload.client.get(
            .secrets, name: "bootstrap-token-\(firstToken.id)", namespace: "kube-system", as: Secret.self)
        #expect(tokenSecret.data?["token-secret"] == firstToken.secret)
        #expect(
            try await workload.client.getIfPresent(
                .secrets, name: "bootstrap-token-\(retryToken.id)", namespace: "kube-system", as: Secret.self) == nil)
        // Repeating the whole step changes nothing.
        #expect(
            try await client.ensureMachineBootstrap(
                userdataSecretName: "\(machine)-userdata", namespace: "default", join: join(retryToken),
                clusterName: name, key: bootstrapKey, workload: workload.client, tokenExpiration: "2030-01-01T00:00:00Z")
                == firstToken)
        let kubevirt = KubeVirtProvider(client: client)
        let spec = KubeVirtProvider.MachineSpec(
            name: machine, namespace: "default", clusterName: name, cpuCores: 2, memory: "4Gi",
            bootstrapSecretName: "\(machine)-userdata", template: template)
        try await kubevirt.ensureVirtualMachine(spec, key: IdempotencyKey("\(machine)/vm"))
        let again = try await kubevirt.ensureVirtualMachine(spec, key: IdempotencyKey("\(machine)/vm"))
        #expect(!again.wasCreatedNow)
        let vm = try await eventually("VM \(machine) ready") {
            let current = try await kubevirt.virtualMachine(name: machine, namespace: "default")
            return current?.isReady == true ? current : nil
        }
        #expect(vm.status?.printableStatus == "Running")
        _ = try await eventually("Node \(machine) joined") { try await workload.node(named: machine) }
        return workload
    }

    /// kubeadm's documented recipe, by openssl: an oracle independent of Providers' own code.
    /// (Async: the child is awaited through its termination handler, never by blocking a
    /// cooperative thread.)
    static func opensslPin(_ connection: ClusterConnection) async throws -> String {
        guard case .pem(let bytes) = connection.certificateAuthority else {
            throw KubernetesError(code: .invalidRequest, operation: "test", detail: "the workload kubeconfig has no inline CA")
        }
        let base = NSTemporaryDirectory() + "capstan-ca-\(UUID().uuidString)"
        try Data(bytes.exposedString.utf8).write(to: URL(fileURLWithPath: base + ".crt"))
        _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: base + ".crt")
            try? FileManager.default.removeItem(atPath: base + ".out")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [
            "-c", "openssl x509 -pubkey -noout -in \"$1\" | openssl pkey -pubin -outform der | sha256sum", "sh",
            base + ".crt",
        ]
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".out"))
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        let output = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
        let hex = output.split(separator: " ").first.map(String.init) ?? ""
        guard status == 0, hex.count == 64 else {
            throw KubernetesError(code: .invalidRequest, operation: "test", detail: "openssl failed (\(status))")
        }
        return "sha256:" + hex
    }

    @Test("Adapters: provision: Kamaji, bootstrap Secret, KubeVirt VM, Node with providerID")
    func provisionMachine() async throws {
        try await withKubeSim { _, client in
            let workload = try await provision(
                client, name: "c1", version: "v1.33.0", machine: "c1-md-0", kubelet: "v1.33.0")
            let node = try await workload.setProviderID(nodeName: "c1-md-0")
            #expect(node.spec?.providerID == "kubevirt://c1-md-0")
            // Repeating sends nothing and succeeds.
            #expect(try await workload.setProviderID(nodeName: "c1-md-0").spec?.providerID == "kubevirt://c1-md-0")
            let health = try await workload.nodeHealth()
            #expect(health.map(\.name) == ["c1-md-0"])
            #expect(health.first?.ready == "True")
            #expect(health.first?.readyLastTransitionTime != nil)
            #expect(health.first?.kubeletVersion == "v1.33.0")

            let secret = try await client.get(.secrets, name: "c1-md-0-userdata", namespace: "default", as: Secret.self)
            #expect(secret.data?["userdata"]?.exposedString.contains("kind: JoinConfiguration") == true)
            #expect(secret.type == "cluster.x-k8s.io/secret")

            let kubevirt = KubeVirtProvider(client: client)
            let halted = try await kubevirt.setRunStrategy(.halted, name: "c1-md-0", namespace: "default", key: IdempotencyKey("c1-md-0/halt"))
            #expect(halted.spec?.runStrategy == .halted)
            #expect(try await kubevirt.deleteVirtualMachine(name: "c1-md-0", namespace: "default") == .deleted)
            #expect(try await kubevirt.deleteVirtualMachine(name: "c1-md-0", namespace: "default") == .alreadyGone)
        }
    }

    @Test("Adapters: provision from CAPK's machine template with KubeadmConfigTemplate additions: the VM is the template, the Node joins")
    func provisionFromTemplate() async throws {
        try await withKubeSim { _, client in
            _ = try await provision(
                client, name: "c2", version: "v1.33.0", machine: "c2-md-0", kubelet: "v1.33.0",
                template: MachineTemplateTests.capkTemplate, extras: MachineTemplateTests.extras)
            // As stored by the server: the template's fields Capstan has no model of survive the trip.
            let stored = try await client.get(.virtualMachines, name: "c2-md-0", namespace: "default", as: RawObject.self)
            #expect(stored.json.value(at: "spec.template.spec.domain.devices.networkInterfaceMultiqueue") == true)
            #expect(stored.metadata.labels?["team"] == "storage")
            #expect(stored.json.value(at: "spec.template.spec.volumes")?.arrayValue?.last?.value(at: "cloudInitNoCloud.secretRef.name") == "c2-md-0-userdata")
            let secret = try await client.get(.secrets, name: "c2-md-0-userdata", namespace: "default", as: Secret.self)
            let userdata = try #require(secret.data?["userdata"]?.exposedString)
            #expect(userdata.contains("sysctl -w net.ipv4.ip_forward=1"))
            #expect(userdata.contains("/etc/motd"))
        }
    }

    @Test("Adapters: Kamaji: one-minor upgrade reported done only when installed and Ready")
    func controlPlaneUpgrade() async throws {
        try await withKubeSim { _, client in
            let kamaji = KamajiProvider(client: client)
            try await kamaji.ensureControlPlane(name: "up", namespace: "default", version: "v1.33.0", key: IdempotencyKey("up/cp"))
            _ = try await eventually("control plane Ready") {
                try await kamaji.controlPlane(name: "up", namespace: "default")?.isRunning(version: "v1.33.0") == true ? true : nil
            }
            let asked = try await kamaji.setVersion("v1.34.0", name: "up", namespace: "default", key: IdempotencyKey("up/step-1"))
            #expect(asked.spec?.kubernetes.version == "v1.34.0")
            let done = try await eventually("upgrade to v1.34.0") {
                let current = try await kamaji.controlPlane(name: "up", namespace: "default")
                return current?.isRunning(version: "v1.34.0") == true ? current : nil
            }
            #expect(done.installedVersion == "v1.34.0")
            // Repeating the step changes nothing.
            let repeated = try await kamaji.setVersion("v1.34.0", name: "up", namespace: "default", key: IdempotencyKey("up/step-1"))
            #expect(repeated.metadata.resourceVersion != nil)
        }
    }

    /// Goal: a drain blocked by a PodDisruptionBudget reports the block (429), and completes once the budget allows.
    @Test("Adapters: drain: eviction blocked by a budget, then complete")
    func drainWithBudget() async throws {
        try await withKubeSim { _, client in
            let workload = try await provision(client, name: "d1", version: "v1.33.0", machine: "d1-md-0", kubelet: "v1.33.0")
            let tenant = workload.client
            for index in 0..<2 {
                let pod = RawObject(
                    apiVersion: "v1", kind: "Pod", metadata: ObjectMeta(name: "web-\(index)", namespace: "default", labels: ["app": "web"]),
                    fields: ["spec": ["nodeName": "d1-md-0", "containers": [["name": "c", "image": "nginx"]]]])
                _ = try await tenant.create(.pods, pod, as: RawObject.self)
            }
            let daemon = RawObject(
                apiVersion: "v1", kind: "Pod",
                metadata: {
                    var meta = ObjectMeta(name: "agent", namespace: "default")
                    meta.ownerReferences = [OwnerReference(apiVersion: "apps/v1", kind: "DaemonSet", name: "agent", uid: "u-1", controller: true)]
                    return meta
                }(),
                fields: ["spec": ["nodeName": "d1-md-0", "containers": [["name": "c", "image": "agent"]]]])
            _ = try await tenant.create(.pods, daemon, as: RawObject.self)
            let budget = RawObject(
                apiVersion: "policy/v1", kind: "PodDisruptionBudget", metadata: ObjectMeta(name: "web", namespace: "default"),
                fields: ["spec": ["minAvailable": 2, "selector": ["matchLabels": ["app": "web"]]]])
            _ = try await tenant.create(.podDisruptionBudgets, budget, as: RawObject.self)

            let blocked = try await workload.drain(nodeName: "d1-md-0")
            #expect(blocked.evicted.isEmpty)
            #expect(blocked.blocked.map(\.pod).sorted() == ["web-0", "web-1"])
            #expect(blocked.skipped == ["default/agent"])
            #expect(!blocked.isComplete)
            #expect(try await workload.node(named: "d1-md-0")?.isCordoned == true)

            let relaxed: JSONValue = ["spec": ["minAvailable": 0]]
            _ = try await tenant.mergePatch(.podDisruptionBudgets, name: "web", relaxed, namespace: "default", as: RawObject.self)
            let evicting = try await workload.drain(nodeName: "d1-md-0")
            #expect(evicting.evicted.sorted() == ["default/web-0", "default/web-1"])
            let finished = try await eventually("drain complete") {
                let report = try await workload.drain(nodeName: "d1-md-0")
                return report.isComplete ? report : nil
            }
            #expect(finished.skipped == ["default/agent"])
            try await workload.setUnschedulable(false, nodeName: "d1-md-0")
            #expect(try await workload.node(named: "d1-md-0")?.isCordoned == false)
        }
    }

    @Test("Adapters: in-place update: CanUpdateMachine patches, UpdateMachine polled to done")
    func inPlaceUpdate() async throws {
        try await withKubeSim { sim, client in
            _ = try await provision(client, name: "ip", version: "v1.33.2", machine: "ip-md-0", kubelet: "v1.33.0")
            let extensionClient = UpdateExtensionClient(connection: client.connection, handlerName: "kube-sim")
            func machine(_ version: String) -> InPlaceUpdate.MachineObjects {
                InPlaceUpdate.MachineObjects(
                    machine: [
                        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                        "metadata": ["name": "ip-md-0", "namespace": "default"],
                        "spec": ["clusterName": "ip", "version": .string(version), "providerID": "kubevirt://ip-md-0"],
                    ],
                    infrastructureMachine: [
                        "apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "KubevirtMachine",
                        "metadata": ["name": "ip-md-0", "namespace": "default"], "spec": [:],
                    ])
            }
            let key = IdempotencyKey("ip/in-place")
            let can = try await extensionClient.canUpdateMachine(
                .init(current: machine("v1.33.0"), desired: machine("v1.33.2")), key: key)
            #expect(can.offersInPlaceUpdate)
            let patch = String(decoding: can.machinePatch?.patch?.bytes ?? [], as: UTF8.self)
            #expect(patch.contains("/spec/version"))
            #expect(patch.contains("v1.33.2"))
            let minor = try await extensionClient.canUpdateMachine(
                .init(current: machine("v1.33.0"), desired: machine("v1.34.0")), key: key)
            #expect(!minor.offersInPlaceUpdate)

            var polls = 0
            let done = try await eventually("in-place update done") {
                polls += 1
                let answer = try await extensionClient.updateMachine(.init(desired: machine("v1.33.2")), key: key)
                #expect(!answer.isFailure)
                return answer.isDone ? answer : nil
            }
            #expect(done.isDone)
            let node = try await KamajiProvider(client: client).workloadClient(name: "ip", namespace: "default")
                .get(.nodes, name: "ip-md-0", namespace: nil, as: Node.self)
            #expect(node.kubeletVersion == "v1.33.2")
            _ = sim
        }
    }
}
