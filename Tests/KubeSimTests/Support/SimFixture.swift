import Foundation
import KubeSimKit

/// An in-process kube-sim on a free port with a temporary state directory.
struct SimFixture: Sendable {
    let sim: KubeSim
    let http: SimHTTP
    let directory: String

    /// Starts kube-sim, runs `body`, and always shuts it down and removes the directory.
    static func with<T: Sendable>(
        seed: UInt64 = 1, delays: ControllerDelays = .immediate,
        configure: @Sendable (inout KubeSimConfiguration) -> Void = { _ in },
        _ body: @Sendable (SimFixture) async throws -> T
    ) async throws -> T {
        let directory = try ProcessRunner.temporaryDirectory("state")
        var configuration = KubeSimConfiguration(stateDirectory: directory, port: 0, seed: seed)
        configuration.delays = delays
        configure(&configuration)
        let sim = try await KubeSim.start(configuration)
        let fixture = SimFixture(
            sim: sim, http: SimHTTP(baseURL: sim.url, token: sim.managementToken, caPath: sim.caCertificatePath),
            directory: directory)
        do {
            let result = try await body(fixture)
            await sim.shutdown()
            try? FileManager.default.removeItem(atPath: directory)
            return result
        } catch {
            await sim.shutdown()
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// Creates a TenantControlPlane and waits until it is Ready; returns a client for its cluster.
    func readyControlPlane(namespace: String = "default", name: String, version: String) async throws -> SimHTTP {
        let created = try await http.post(
            "/apis/kamaji.clastix.io/v1alpha1/namespaces/\(namespace)/tenantcontrolplanes",
            [
                "apiVersion": "kamaji.clastix.io/v1alpha1", "kind": "TenantControlPlane",
                "metadata": ["name": .string(name)], "spec": ["kubernetes": ["version": .string(version)]],
            ])
        guard created.status == 201 else { throw KubeSimTestError("creating TCP \(name): \(created.status) \(created.body)") }
        _ = try await http.waitFor("/apis/kamaji.clastix.io/v1alpha1/namespaces/\(namespace)/tenantcontrolplanes/\(name)") {
            $0.json[path: ["status", "kubernetesResources", "version", "status"]]?.stringValue == "Ready"
        }
        return try http.workload(kubeconfigPath: sim.workloadKubeconfigPath(namespace: namespace, name: name))
    }

    /// Creates a VirtualMachine (runStrategy Always) with a userdata Secret holding a kubeadm
    /// JoinConfiguration for the cluster `join` reaches (its endpoint, pinned by its CA's hash
    /// unless `caCertHashes` says otherwise; `[]` writes `unsafeSkipCAVerification: true`) that
    /// names `kubelet` as `kubernetesVersion`.
    func createMachine(
        namespace: String = "default", name: String, join: SimHTTP, kubelet: String, caCertHashes: [String]? = nil
    ) async throws {
        let hashes: [String]
        if let caCertHashes { hashes = caCertHashes } else { hashes = [try await join.caCertHash()] }
        let discovery = hashes.isEmpty
            ? "        unsafeSkipCAVerification: true\n"
            : "        caCertHashes:\n" + hashes.map { "        - \"\($0)\"\n" }.joined()
        let userdata = """
            #cloud-config
            write_files:
            - path: /run/kubeadm/kubeadm-join-config.yaml
              content: |
                apiVersion: kubeadm.k8s.io/v1beta4
                kind: JoinConfiguration
                kubernetesVersion: \(kubelet)
                discovery:
                  bootstrapToken:
                    apiServerEndpoint: "\(join.endpoint)"
                    token: "abcdef.0123456789abcdef"

            """ + discovery
        let secret = try await http.post(
            "/api/v1/namespaces/\(namespace)/secrets",
            ["metadata": ["name": .string("\(name)-userdata")], "stringData": ["userdata": .string(userdata)]])
        guard secret.status == 201 else { throw KubeSimTestError("creating secret: \(secret.status) \(secret.body)") }
        let vm = try await http.post(
            "/apis/kubevirt.io/v1/namespaces/\(namespace)/virtualmachines",
            [
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                "metadata": ["name": .string(name)],
                "spec": [
                    "runStrategy": "Always",
                    "template": [
                        "spec": [
                            "domain": ["cpu": ["cores": 2], "memory": ["guest": "4Gi"]],
                            "volumes": [["name": "cloudinitvolume", "cloudInitConfigDrive": ["secretRef": ["name": .string("\(name)-userdata")]]]],
                        ]
                    ],
                ],
            ])
        guard vm.status == 201 else { throw KubeSimTestError("creating VM: \(vm.status) \(vm.body)") }
    }

    /// Ledger entries matching the query (`?resource=...&name=...`).
    func ledger(_ query: String = "") async throws -> [JSON] {
        let reply = try await http.get("/_sim/ledger\(query.isEmpty ? "" : "?" + query)")
        return reply.json["entries"]?.arrayValue ?? []
    }
}
