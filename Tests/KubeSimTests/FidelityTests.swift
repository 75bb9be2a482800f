import Foundation
import KubeSimKit
import Testing

/// Clients nobody here wrote, against the real `kube-sim` binary with the kubeconfig it wrote:
/// the real kubectl and the official Python `kubernetes` client (pip; `.ci/run` installs it).
@Suite("kube-sim fidelity", .serialized)
struct FidelityTests {
    static let kubectl = ProcessRunner.which("kubectl")

    /// python3, when it can import the official client (checked once, before the tests run).
    static let pythonWithClient: String? = {
        guard let python = ProcessRunner.which("python3") else { return nil }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: python)
        probe.arguments = ["-c", "import kubernetes"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { return nil }
        probe.waitUntilExit()
        return probe.terminationStatus == 0 ? python : nil
    }()

    @Test("Fidelity: process: prints its address, writes its files, exits 0 on SIGTERM")
    func processLifecycle() async throws {
        let sim = try await KubeSimProcess()
        defer { sim.removeStateDirectory() }
        print("kube-sim startup (spawn to listening line): \(sim.startup)")
        #expect(sim.url.hasPrefix("https://127.0.0.1:"))
        let kubeconfig = try String(contentsOfFile: sim.kubeconfigPath, encoding: .utf8)
        #expect(kubeconfig.contains("certificate-authority-data: "))
        #expect(kubeconfig.contains("server: \(sim.url)"))
        let attributes = try FileManager.default.attributesOfItem(atPath: sim.kubeconfigPath)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(FileManager.default.fileExists(atPath: "\(sim.stateDirectory)/state/ca.crt"))
        // An open watch must not hold up shutdown.
        let token = kubeconfig.split(separator: "\n").first { $0.contains("token: ") }.map { String($0.split(separator: " ").last!) } ?? ""
        let http = SimHTTP(baseURL: sim.url, token: token, caPath: "\(sim.stateDirectory)/state/ca.crt")
        #expect(try await http.get("/healthz").status == 200)
        async let watch = http.request("GET", "/api/v1/namespaces?watch=true", maxTimeSeconds: 60)
        // Only a registered watch proves anything about shutdown.
        _ = try await http.waitFor("/_sim/watches") { $0.json["resources"]?["namespaces"]?.intValue == 1 }
        let status = await sim.terminate()
        let watched = try await watch
        #expect(watched.body.contains("\"ADDED\""))
        #expect(status == 0)
    }

    @Test("Fidelity: process: a bad flag exits with a message naming it")
    func badFlag() async throws {
        let result = try await ProcessRunner.run(
            try KubeSimProcess.executablePath(), ["--state-dir", "/tmp/unused-kube-sim", "--faults", #"{"dropResponseRate": 3}"#])
        #expect(result.status != 0)
        #expect(result.stderr.contains("dropResponseRate"))
    }

    @Test(
        "Fidelity: kubectl: api-resources, apply --server-side, get, get -o json, delete",
        .enabled(if: FidelityTests.kubectl != nil, "kubectl is not on PATH (the machine image normally has it)"))
    func kubectlWorks() async throws {
        let kubectl = try #require(FidelityTests.kubectl)
        let sim = try await KubeSimProcess(arguments: ["--control-plane-provision-ms", "0", "--vm-ready-ms", "0", "--node-join-ms", "0"])
        defer { sim.removeStateDirectory() }
        let cache = "\(sim.stateDirectory)/kubectl-cache"
        func run(_ arguments: [String], stdin: String? = nil, kubeconfig: String? = nil) async throws -> ProcessResult {
            try await ProcessRunner.run(
                kubectl, ["--kubeconfig", kubeconfig ?? sim.kubeconfigPath, "--cache-dir", cache] + arguments, stdin: stdin,
                environment: ["HOME": sim.stateDirectory, "KUBECONFIG": ""])
        }
        let resources = try await run(["api-resources"])
        #expect(resources.status == 0, "\(resources.stderr)")
        #expect(resources.stdout.contains("tenantcontrolplanes"))
        #expect(resources.stdout.contains("kamaji.clastix.io/v1alpha1"))
        #expect(resources.stdout.contains("virtualmachines"))

        let manifest = """
            apiVersion: kamaji.clastix.io/v1alpha1
            kind: TenantControlPlane
            metadata:
              name: demo
              namespace: default
            spec:
              kubernetes:
                version: v1.33.0
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: settings
              namespace: default
            data:
              mode: fast
            """
        let applied = try await run(["apply", "--server-side", "-f", "-"], stdin: manifest)
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(applied.stdout.contains("serverside-applied"))

        let listed = try await run(["get", "tcp"])
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(listed.stdout.contains("demo"))
        let json = try await run(["get", "configmap", "settings", "-o", "json", "--show-managed-fields"])
        #expect(json.status == 0, "\(json.stderr)")
        let object = try JSON.parse(json.stdout)
        #expect(object["data"]?["mode"]?.stringValue == "fast")
        #expect(object[path: ["metadata", "managedFields"]]?.arrayValue?.first?["manager"]?.stringValue == "kubectl")

        let reapplied = try await run(["apply", "--server-side", "-f", "-"], stdin: manifest.replacingOccurrences(of: "fast", with: "slow"))
        #expect(reapplied.status == 0, "\(reapplied.stderr)")
        let changed = try await run(["get", "configmap", "settings", "-o", "jsonpath={.data.mode}"])
        #expect(changed.stdout == "slow")

        let missing = try await run(["get", "configmap", "nope"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("NotFound") || missing.stderr.contains("not found"))

        let deleted = try await run(["delete", "configmap", "settings"])
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(deleted.stdout.contains("deleted"))

        // The workload cluster, through the kubeconfig kube-sim wrote for it.
        let workloadConfig = "\(sim.stateDirectory)/state/clusters/default/demo.kubeconfig"
        let clock = ContinuousClock()
        let start = clock.now
        while !FileManager.default.fileExists(atPath: workloadConfig), clock.now - start < .seconds(30) {
            try await Task.sleep(for: .milliseconds(50))
        }
        let nodes = try await run(["get", "namespaces", "-o", "json"], kubeconfig: workloadConfig)
        #expect(nodes.status == 0, "\(nodes.stderr)")
        #expect(nodes.stdout.contains("kube-system"))

        // The admin kubeconfig Kamaji puts in the Secret, as a user would take it: `get --raw
        // /version` reaches the workload cluster (it got the management API's 401 while the
        // clusters were served under a path prefix of the management port).
        let encoded = try await run(["get", "secret", "demo-admin-kubeconfig", "-o", #"jsonpath={.data.admin\.conf}"#])
        #expect(encoded.status == 0, "\(encoded.stderr)")
        let adminConf = "\(sim.stateDirectory)/admin.conf"
        try #require(Data(base64Encoded: encoded.stdout)).write(to: URL(fileURLWithPath: adminConf))
        let version = try await run(["get", "--raw", "/version"], kubeconfig: adminConf)
        #expect(version.status == 0, "\(version.stderr)")
        #expect(try JSON.parse(version.stdout)["gitVersion"]?.stringValue == "v1.33.0")
        let management = try await run(["get", "--raw", "/version"])
        #expect(try JSON.parse(management.stdout)["gitVersion"]?.stringValue == "v1.33.4")

        // admin.conf authenticates with a client certificate, as Kamaji's does: kubectl presents
        // it and the cluster reads its CN and O (`kubectl auth whoami`).
        let adminText = try String(contentsOfFile: adminConf, encoding: .utf8)
        #expect(adminText.contains("client-certificate-data: ") && !adminText.contains("token: "))
        let whoami = try await run(["auth", "whoami", "-o", "json"], kubeconfig: adminConf)
        #expect(whoami.status == 0, "\(whoami.stderr)")
        let userInfo = try JSON.parse(whoami.stdout)[path: ["status", "userInfo"]]
        #expect(userInfo?["username"]?.stringValue == "kubernetes-admin")
        #expect(userInfo?["groups"]?.arrayValue?.compactMap(\.stringValue).contains("kubeadm:cluster-admins") == true)
        // The same file with the management cluster's server and CA: the certificate is not
        // its CA's, so kubectl gets 401 (after a handshake that succeeded).
        let managementText = try String(contentsOfFile: sim.kubeconfigPath, encoding: .utf8)
        func field(_ text: String, _ key: String) -> String? {
            text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .first { $0.hasPrefix("\(key): ") }.map { String($0.dropFirst(key.count + 2)) }
        }
        var crossed = adminText
        for key in ["server", "certificate-authority-data"] {
            let workloadValue = try #require(field(adminText, key))
            let managementValue = try #require(field(managementText, key))
            crossed = crossed.replacingOccurrences(of: workloadValue, with: managementValue)
        }
        let crossedPath = "\(sim.stateDirectory)/crossed.conf"
        _ = FileManager.default.createFile(atPath: crossedPath, contents: Data(crossed.utf8), attributes: [.posixPermissions: 0o600])
        let refused = try await run(["get", "namespaces"], kubeconfig: crossedPath)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("Unauthorized") || refused.stderr.contains("must be logged in"), "\(refused.stderr)")
        #expect(await sim.terminate() == 0)
    }

    static let pythonScript = #"""
        import sys
        from kubernetes import client, config
        from kubernetes.client.rest import ApiException

        config.load_kube_config(config_file=sys.argv[1])
        core = client.CoreV1Api()
        names = [n.metadata.name for n in core.list_namespace().items]
        assert "default" in names, names

        cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py1", labels={"from": "python"}), data={"a": "1"})
        created = core.create_namespaced_config_map("default", cm)
        assert created.metadata.uid, created
        try:
            core.create_namespaced_config_map("default", cm)
            raise SystemExit("second create should conflict")
        except ApiException as error:
            assert error.status == 409, error.status

        core.patch_namespaced_config_map("py1", "default", {"data": {"a": "2"}})
        assert core.read_namespaced_config_map("py1", "default").data["a"] == "2"
        listed = core.list_namespaced_config_map("default", label_selector="from=python")
        assert [i.metadata.name for i in listed.items] == ["py1"], listed.items

        custom = client.CustomObjectsApi()
        custom.create_namespaced_custom_object("kubevirt.io", "v1", "default", "virtualmachines",
            {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "vm-py"},
             "spec": {"runStrategy": "Halted"}})
        vms = custom.list_namespaced_custom_object("kubevirt.io", "v1", "default", "virtualmachines")
        assert [i["metadata"]["name"] for i in vms["items"]] == ["vm-py"], vms

        core.delete_namespaced_config_map("py1", "default")
        try:
            core.read_namespaced_config_map("py1", "default")
            raise SystemExit("read after delete should be 404")
        except ApiException as error:
            assert error.status == 404, error.status
        print("python client ok")
        """#

    @Test(
        "Fidelity: python kubernetes client: list, create, patch, delete",
        .enabled(
            if: FidelityTests.pythonWithClient != nil,
            "python3 cannot import kubernetes; .ci/run installs it with `python3 -m pip install kubernetes`"))
    func pythonClientWorks() async throws {
        let python = try #require(FidelityTests.pythonWithClient)
        let sim = try await KubeSimProcess()
        defer { sim.removeStateDirectory() }
        let script = "\(sim.stateDirectory)/client_check.py"
        try Data(FidelityTests.pythonScript.utf8).write(to: URL(fileURLWithPath: script))
        let result = try await ProcessRunner.run(python, [script, sim.kubeconfigPath])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("python client ok"))
        #expect(await sim.terminate() == 0)
    }
}
