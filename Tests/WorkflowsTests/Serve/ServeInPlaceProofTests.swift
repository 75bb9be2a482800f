import Engine
import EventLog
import Fleet
import Foundation
import KubeSimKit
import Providers
import Testing
import Workflows

/// Proof of in-place upgrades inside `capstan serve`: manifests applied with the real CLI, the
/// controller choosing InPlaceUpgrade for a patch release, kube-sim's update extension
/// (Runtime SDK shape) over HTTPS, and the fallback to replacement when the extension declines.
@Suite(.serialized) struct ServeInPlaceProofTests {
    /// Goal: a worker patch release (v1.33.0 → v1.33.2) is applied in place: no VirtualMachine
    /// created or deleted, each Node's kubelet moved by the extension; then, with the extension
    /// declining, the next patch (→ v1.33.3) replaces each machine instead, the extension's
    /// reason recorded in the workflow's output.
    /// Method: one cluster, control plane v1.33.3, one MachineDeployment of 2 machines created
    /// at its own version v1.33.0 (as CAPI creates them); `serve --update-extension-url` at
    /// kube-sim's management endpoint; `PUT /_sim/extension {"declineAll":true}` between the
    /// two; kube-sim's ledger counts VirtualMachine creates and deletes and the extension's
    /// Node updates.
    ///
    /// Broken on purpose once (the controller's in-place branch disabled, so every patch went
    /// through RollingUpdate): phase 1 failed, no InPlaceUpgrade workflow listed.
    @Test("Serve: in place: a worker patch release is applied in place by the update extension; declined, the next one replaces the machines")
    func inPlace() async throws {
        let work = try makeTemporaryDirectory("inplace-proof")
        defer { try? FileManager.default.removeItem(atPath: work) }
        var configuration = KubeSimConfiguration(stateDirectory: work + "/sim", port: 0, seed: 20261203)
        configuration.delays.virtualMachineReady = .milliseconds(100)
        configuration.delays.nodeJoin = .milliseconds(100)
        configuration.delays.controlPlaneProvision = .milliseconds(200)
        let sim = try await KubeSim.start(configuration)
        let data = work + "/data"
        let supervisor = ServeSupervisor(
            executable: try builtExecutable("capstan"),
            arguments: [
                "serve", "--data-dir", data, "--kubeconfig", sim.managementKubeconfigPath, "--log-level", "info",
                "--poll-interval", "50", "--step-retry-delay", "1", "--update-extension-url", sim.url,
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
        let cluster = "p1"
        try FleetManifests.catalog(["v1.33.0", "v1.33.2", "v1.33.3"])
            .write(toFile: work + "/catalog.yaml", atomically: true, encoding: .utf8)
        func write(workers: String) throws {
            try FleetManifests.cluster(cluster, version: "v1.33.3", deployments: 1, replicas: 2, workerVersion: workers)
                .write(toFile: work + "/fleet.yaml", atomically: true, encoding: .utf8)
        }
        func apply() async throws {
            let result = try await applyOnceServeCreatedLog(["apply", "-f", "catalog.yaml", "-f", "fleet.yaml", "--data-dir", data], in: work)
            #expect(result.status == 0, "apply: \(result.stderr)")
        }
        func workers(_ version: String) -> ([ClusterSummary]) -> Bool {
            { fleet in
                guard let summary = fleet.first, summary.controlPlane.installedVersion?.description == "v1.33.3" else { return false }
                return summary.deployments.first?.versions == [version: 2] && summary.deployments.first?.readyMachines == 2
            }
        }
        func vmLedger(_ verb: String) -> [String] {
            sim.ledger.entries().filter {
                $0.actor == "client" && $0.cluster == "management" && $0.resource == "virtualmachines" && $0.verb == verb
            }.map(\.name)
        }
        func inPlaceRuns() async throws -> [[String: Any]] {
            let list = try await runCapstan(["workflow", "list", "--type", InPlaceUpgrade.type, "-o", "json", "--data-dir", data], in: work)
            #expect(list.status == 0, "workflow list: \(list.stderr)")
            return (try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]]) ?? []
        }
        func output(of run: [String: Any]) async throws -> InPlaceUpgrade.Output {
            let id = try #require(run["id"] as? String)
            let record = try await FleetDriver(dataDirectory: data).waitFinished(id)
            #expect(record.status == .completed, "\(id): \(record.status) \(record.result ?? "")")
            return try JSONDecoder().decode(InPlaceUpgrade.Output.self, from: Data((record.result ?? "").utf8))
        }

        // 0. Created at the MachineDeployment's own version, below the control plane's.
        try write(workers: "v1.33.0")
        try await supervisor.ensureRunning()
        try await apply()
        try await ServeControllerProofTests.waitFleet(data, "workers at v1.33.0", supervisor: supervisor, workers("v1.33.0"))
        #expect(vmLedger("create").sorted() == ["p1-md-0-1", "p1-md-0-2"])

        // 1. A patch release: in place, no machine made or removed.
        try write(workers: "v1.33.2")
        try await apply()
        try await ServeControllerProofTests.waitFleet(data, "workers at v1.33.2", supervisor: supervisor, workers("v1.33.2"))
        let first = try await inPlaceRuns()
        #expect(first.count == 1, "\(first)")
        let firstOutput = try await output(of: try #require(first.first))
        #expect(firstOutput.results.map(\.outcome) == [.inPlace, .inPlace], "\(firstOutput)")
        #expect(vmLedger("create").count == 2, "a machine was replaced: \(vmLedger("create"))")
        #expect(vmLedger("delete").isEmpty)
        let updates = sim.ledger.entries().filter { $0.actor == "controller/update-extension" && $0.resource == "nodes" }
        #expect(Set(updates.map(\.name)) == ["p1-md-0-1", "p1-md-0-2"], "\(updates.map(\.name))")

        // 2. The extension declines: the next patch replaces each machine, reason recorded.
        let management = try KubernetesClient(kubeconfigPath: sim.managementKubeconfigPath)
        _ = try await management.send(
            method: "PUT", path: "/_sim/extension", body: Array(#"{"declineAll":true}"#.utf8),
            contentType: "application/json", idempotent: true)
        try write(workers: "v1.33.3")
        try await apply()
        try await ServeControllerProofTests.waitFleet(data, "workers at v1.33.3", supervisor: supervisor, workers("v1.33.3"))
        let second = try await inPlaceRuns()
        #expect(second.count == 2, "\(second)")
        let latest = try #require(second.first { ($0["id"] as? String) != (first.first?["id"] as? String) })
        let secondOutput = try await output(of: latest)
        #expect(secondOutput.results.map(\.outcome) == [.replaced, .replaced], "\(secondOutput)")
        #expect(secondOutput.results.allSatisfy { $0.reason?.contains("decline") == true }, "\(secondOutput.results.map(\.reason))")
        #expect(vmLedger("create").count == 4, "\(vmLedger("create"))")
        #expect(Set(vmLedger("delete")) == ["p1-md-0-1", "p1-md-0-2"])

        let status = await supervisor.terminate()
        #expect(status == 0, "serve exits 0 on SIGTERM, got \(String(describing: status))")
        let reader = try EventLogReader(directory: data)
        #expect(try FleetProjection.rebuild(reader) == (try FleetProjection.stored(reader)))
    }
}
