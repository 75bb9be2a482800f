import Engine
import EventLog
import Fleet
import Foundation
import KubeSimKit
import Providers
import Testing
import Workflows

/// Proof of template rollouts inside `capstan serve`: a change to a MachineDeployment's
/// KubevirtMachineTemplate alone (the VM's cpu; the version unchanged) rolls its machines,
/// as CAPI rolls on any template change.
@Suite(.serialized) struct ServeTemplateRolloutProofTests {
    /// Goal: re-applying the same manifests rolls nothing; changing only the VM template's cpu
    /// replaces each machine with one made from the new template (new VMs with 4 cores and the
    /// new template digest label), within maxSurge 1 / maxUnavailable 0, by one RollingUpdate;
    /// then nothing more (no roll loop).
    /// Method: one cluster, v1.33.0, one MachineDeployment of 2 machines; kube-sim's ledger
    /// counts VirtualMachine creates and deletes; its VMs are read back for cores and labels.
    ///
    /// Broken on purpose once (ProvisionMachine not passing the digest to the VM: no label, so
    /// every machine counted as current): phase 2 timed out, no machine replaced.
    @Test("Serve: template: a KubevirtMachineTemplate change alone rolls the machines onto the new template, once")
    func templateRollout() async throws {
        let work = try makeTemporaryDirectory("template-proof")
        defer { try? FileManager.default.removeItem(atPath: work) }
        var configuration = KubeSimConfiguration(stateDirectory: work + "/sim", port: 0, seed: 20261204)
        configuration.delays.virtualMachineReady = .milliseconds(100)
        configuration.delays.nodeJoin = .milliseconds(100)
        configuration.delays.controlPlaneProvision = .milliseconds(200)
        let sim = try await KubeSim.start(configuration)
        let data = work + "/data"
        let supervisor = ServeSupervisor(
            executable: try builtExecutable("capstan"),
            arguments: [
                "serve", "--data-dir", data, "--kubeconfig", sim.managementKubeconfigPath, "--log-level", "info",
                "--poll-interval", "50", "--step-retry-delay", "1",
            ],
            logPath: work + "/serve.log")
        do {
            try await proof(sim: sim, supervisor: supervisor, work: work, data: data)
        } catch {
            Issue.record("\(error)\nserve log:\n\(supervisor.logTail(lines: 60))")
        }
        _ = await supervisor.terminate()
        await sim.shutdown()
    }

    private func proof(sim: KubeSim, supervisor: ServeSupervisor, work: String, data: String) async throws {
        let cluster = "t1"
        try FleetManifests.catalog(["v1.33.0"]).write(toFile: work + "/catalog.yaml", atomically: true, encoding: .utf8)
        func apply(cpuCores: Int) async throws {
            try FleetManifests.cluster(cluster, version: "v1.33.0", deployments: 1, replicas: 2, cpuCores: cpuCores)
                .write(toFile: work + "/fleet.yaml", atomically: true, encoding: .utf8)
            let result = try await applyOnceServeCreatedLog(["apply", "-f", "catalog.yaml", "-f", "fleet.yaml", "--data-dir", data], in: work)
            #expect(result.status == 0, "apply: \(result.stderr)")
        }
        func machines(_ names: Set<String>) -> ([ClusterSummary]) -> Bool {
            { fleet in
                guard let summary = fleet.first else { return false }
                return Set(summary.machines.map(\.name)) == names && summary.deployments.first?.readyMachines == names.count
                    && summary.deployments.first?.versions == ["v1.33.0": names.count]
            }
        }
        func vmLedger(_ verb: String) -> [String] {
            sim.ledger.entries().filter {
                $0.actor == "client" && $0.cluster == "management" && $0.resource == "virtualmachines" && $0.verb == verb
            }.map(\.name)
        }
        let management = try KubernetesClient(kubeconfigPath: sim.managementKubeconfigPath)
        func vms() async throws -> [VirtualMachine] {
            try await management.listAll(.virtualMachines, namespace: "default", as: VirtualMachine.self)
                .filter { $0.metadata.deletionTimestamp == nil }
        }
        func rollouts() async throws -> [String] {
            let list = try await runCapstan(["workflow", "list", "--type", RollingUpdate.type, "-o", "json", "--data-dir", data], in: work)
            #expect(list.status == 0, "workflow list: \(list.stderr)")
            let runs = (try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]]) ?? []
            return runs.compactMap { $0["id"] as? String }
        }

        // 1. Created from the template with 2 cores, each VM labelled with its digest.
        try await supervisor.ensureRunning()
        try await apply(cpuCores: 2)
        try await ServeControllerProofTests.waitFleet(data, "2 machines", supervisor: supervisor, machines(["t1-md-0-1", "t1-md-0-2"]))
        let first = try await vms()
        #expect(first.map { $0.spec?.template?.spec?.domain.cpu?.cores } == [2, 2])
        let oldDigests = Set(first.map { $0.metadata.labels?[MachineTemplateDigest.labelKey] })
        #expect(oldDigests.count == 1 && oldDigests.first! != nil, "\(oldDigests)")
        let reader = try EventLogReader(directory: data)
        let stored = try ObservedCluster.stored(reader, namespace: "default", cluster: cluster)
        #expect(Set(stored.machines.values.map(\.templateDigest)) == oldDigests, "the projection records each machine's digest")

        // The same manifests again: nothing to roll (the observation window is two controller passes).
        try await apply(cpuCores: 2)
        try await Task.sleep(for: .seconds(5))
        #expect(try await rollouts().isEmpty)
        #expect(vmLedger("create").count == 2)

        // 2. Only the VM template's cpu changes: each machine replaced, one RollingUpdate.
        try await apply(cpuCores: 4)
        try await ServeControllerProofTests.waitFleet(
            data, "machines replaced", supervisor: supervisor, timeout: .seconds(120), machines(["t1-md-0-3", "t1-md-0-4"]))
        let second = try await vms()
        #expect(second.map { $0.metadata.name ?? "" }.sorted() == ["t1-md-0-3", "t1-md-0-4"])
        #expect(second.map { $0.spec?.template?.spec?.domain.cpu?.cores } == [4, 4])
        let newDigests = Set(second.map { $0.metadata.labels?[MachineTemplateDigest.labelKey] })
        #expect(newDigests.count == 1 && newDigests.isDisjoint(with: oldDigests), "\(newDigests) vs \(oldDigests)")
        #expect(vmLedger("create").sorted() == ["t1-md-0-1", "t1-md-0-2", "t1-md-0-3", "t1-md-0-4"])
        #expect(Set(vmLedger("delete")) == ["t1-md-0-1", "t1-md-0-2"])
        // maxSurge 1, maxUnavailable 0: a new machine first, then an old one goes, one at a time.
        var order: [String] = []
        for entry in sim.ledger.entries()
        where entry.actor == "client" && entry.cluster == "management" && entry.resource == "virtualmachines"
            && ["create", "delete"].contains(entry.verb) && !order.contains("\(entry.verb) \(entry.name)")
        {
            order.append("\(entry.verb) \(entry.name)")
        }
        #expect(order.dropFirst(2) == ["create t1-md-0-3", "delete t1-md-0-1", "create t1-md-0-4", "delete t1-md-0-2"], "\(order)")
        let runs = try await rollouts()
        #expect(runs.count == 1 && runs.first?.hasPrefix("rollout/default/t1/t1-md-0/r") == true, "\(runs)")

        // Settled: no further roll.
        try await Task.sleep(for: .seconds(5))
        #expect(try await rollouts().count == 1)
        #expect(vmLedger("create").count == 4)

        let status = await supervisor.terminate()
        #expect(status == 0, "serve exits 0 on SIGTERM, got \(String(describing: status))")
        let after = try EventLogReader(directory: data)
        #expect(try FleetProjection.rebuild(after) == (try FleetProjection.stored(after)))
    }
}
