import Engine
import Foundation
import KubeSimKit
import Providers
import Testing
import Workflows

/// Proofs of `capstan serve` against kube-sim over HTTPS, with real `capstan` processes.
@Suite(.serialized) struct ServeProofTests {
    /// Goal: effects happen once across crashes. Method: one cluster (a control plane and one
    /// MachineDeployment of 2 machines) is created at 1.33 and its control plane stepped to
    /// 1.34, 1.35, 1.36 by `capstan serve` while a supervisor SIGKILLs and restarts it at seeded
    /// random instants (at least 20 times during the work); then kube-sim's ledger must show
    /// each VirtualMachine and userdata Secret created once and each control-plane version
    /// applied once, and the fleet must be at the target. The first VM create's answer is
    /// dropped after it is applied, so the 409-verified-as-ours path runs in every run.
    ///
    /// Broken on purpose once (FleetExecutors.createVirtualMachine with a key that changes per
    /// attempt, so the repeated create was not recognised as ours): the run failed (`notOurs`).
    @Test("Serve: crash loop: one cluster created and upgraded 1.33→1.36 under ≥20 SIGKILLs, each effect once")
    func crashLoop() async throws {
        var faults = FaultConfiguration()
        faults.scripted = [.init(kind: .dropResponse, verb: "create", resource: "virtualmachines", count: 1)]
        try await proof(faults: faults, label: "crash loop")
    }

    /// Goal: the same under API faults. Method: as the crash loop, with 5% of management-cluster
    /// requests failing (500) before they apply and 2% of responses dropped after the write
    /// applied (so retries meet their own effects).
    @Test("Serve: faults: 5% of API calls failing and 2% of responses dropped, plus SIGKILLs, each effect once")
    func faults() async throws {
        var faults = FaultConfiguration()
        faults.errorRates = ["*": 0.05]
        faults.dropResponseRate = 0.02
        try await proof(faults: faults, label: "faults")
    }

    private func proof(faults: FaultConfiguration, label: String) async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["CAPSTAN_PROOF_SEED"] ?? "") ?? 20261201
        let work = try makeTemporaryDirectory("serve-proof")
        defer { try? FileManager.default.removeItem(atPath: work) }
        var configuration = KubeSimConfiguration(stateDirectory: work + "/sim", port: 0, seed: seed)
        // Long enough that kills land in every phase; short enough for a modest run.
        configuration.delays.virtualMachineReady = .milliseconds(1000)
        configuration.delays.nodeJoin = .milliseconds(500)
        configuration.delays.controlPlaneProvision = .milliseconds(2500)
        configuration.delays.controlPlaneUpgrade = .milliseconds(3000)
        configuration.delays.jitter = 0.2
        configuration.faults = faults
        let sim = try await KubeSim.start(configuration)
        let data = work + "/data"
        let supervisor = ServeSupervisor(
            executable: try builtExecutable("capstan"),
            arguments: ["serve", "--data-dir", data, "--kubeconfig", sim.managementKubeconfigPath, "--log-level", "info"],
            logPath: work + "/serve.log")
        do {
            try await runCrashLoop(sim: sim, supervisor: supervisor, data: data, seed: seed, label: label)
        } catch {
            Issue.record("\(label), seed \(seed): \(error)\nserve log:\n\(supervisor.logTail())")
        }
        _ = await supervisor.terminate()
        await sim.shutdown()
    }

    private func runCrashLoop(
        sim: KubeSim, supervisor: ServeSupervisor, data: String, seed: UInt64, label: String
    ) async throws {
        let cluster = Activities.ClusterRef(namespace: "default", name: "c1")
        let driver = FleetDriver(dataDirectory: data)
        try await supervisor.ensureRunning()
        // The work lasts at least ~13 s of kube-sim delays; lifetimes of 200-600 ms (mean 400)
        // give ~30 kills in it, so the >= 20 floor holds on a quiet, fast machine too.
        // Each lifetime counts from the moment serve runs its services: on a loaded machine a
        // start-up outlasted the lifetimes counted from the spawn, no kill-free window was
        // left, and CreateCluster's 300 s control-plane wait expired unread (seen at load 10+).
        let chaos = Task {
            try await supervisor.chaos(seed: seed, lifetimeMilliseconds: 200...600, afterLogLine: "[Workflows] controller.started")
        }

        let create = CreateCluster.Input(
            runID: "c1/create", cluster: cluster, version: "v1.33.0", controlPlaneReplicas: 2,
            deployments: [CreateCluster.Deployment(name: "md-0", replicas: 2)], nodeStartupTimeoutSeconds: 300,
            controlPlaneTimeoutSeconds: 300, pollIntervalMilliseconds: 100)
        try await driver.start(create.runID, type: CreateCluster.type, input: Activities.encode(create))
        let created = try await driver.waitFinished(create.runID)
        #expect(created.status == .completed, "CreateCluster: \(created.result ?? "")")
        let steps = ["v1.34.0", "v1.35.0", "v1.36.0"]
        for version in steps {
            let id = "c1/upgrade/\(version)"
            let step = ControlPlaneUpgradeStep.Input(
                cluster: cluster, version: version, timeoutSeconds: 300, pollIntervalMilliseconds: 100)
            try await driver.start(
                id, type: ControlPlaneUpgradeStep.type, input: Activities.encode(step), uniqueKey: "upgrade/default/c1")
            let record = try await driver.waitFinished(id)
            #expect(record.status == .completed, "step \(version): \(record.result ?? "")")
        }
        chaos.cancel()
        _ = try? await chaos.value
        let kills = await supervisor.kills
        #expect(kills >= 20, "only \(kills) SIGKILLs landed during the work (seed \(seed))")
        // The last restart must be running its services: SIGTERM during start-up ends it with 15.
        try await supervisor.waitForCurrentLog("[Workflows] controller.started")
        let status = await supervisor.terminate()
        #expect(status == 0, "serve exits 0 on SIGTERM")

        let entries = sim.ledger.entries().filter { $0.actor == "client" && $0.cluster == "management" }
        let vmCreates = entries.filter { $0.resource == "virtualmachines" && $0.verb == "create" }
        #expect(vmCreates.count == 2, "VM creates: \(vmCreates.map(\.name))")
        #expect(Set(vmCreates.map(\.name)).count == vmCreates.count, "a VirtualMachine was created twice")
        let userdata = entries.filter { $0.resource == "secrets" && $0.verb == "create" && $0.name.hasSuffix("-userdata") }
        #expect(userdata.count == 2 && Set(userdata.map(\.name)).count == 2, "userdata creates: \(userdata.map(\.name))")
        let controlPlane = entries.filter { $0.resource == "tenantcontrolplanes" && $0.name == "c1" }
        #expect(controlPlane.filter { $0.verb == "create" }.count == 1)
        for version in steps {
            let applied = controlPlane.filter { entry in
                entry.changes.contains { $0.path == "spec.kubernetes.version" && $0.to == version }
            }
            #expect(applied.count == 1, "version \(version) applied \(applied.count) times")
        }
        print("serve proof (\(label)): seed \(seed), \(kills) SIGKILLs, \(await supervisor.starts) starts, \(sim.ledger.count) ledger entries")

        let management = try KubernetesClient(kubeconfigPath: sim.managementKubeconfigPath)
        let tcp = try await KamajiProvider(client: management).controlPlane(name: "c1", namespace: "default")
        #expect(tcp?.isRunning(version: "v1.36.0") == true)
        let workload = WorkloadCluster(
            client: try await KamajiProvider(client: management).workloadClient(name: "c1", namespace: "default"))
        let nodes = try await workload.nodeHealth()
        #expect(nodes.count == 2 && nodes.allSatisfy { $0.ready == "True" && $0.providerID == "kubevirt://\($0.name)" })
    }
}
