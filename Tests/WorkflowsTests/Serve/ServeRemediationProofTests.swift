import Engine
import EventLog
import Fleet
import Foundation
import KubeSimKit
import Providers
import Testing
import Workflows

/// Proof of remediation inside `capstan serve`: manifests applied with the real CLI, the
/// fleet controller's health-check step, the Remediate workflow, against kube-sim over HTTPS.
@Suite(.serialized) struct ServeRemediationProofTests {
    /// Goal: a Node made NotReady is replaced after its MachineHealthCheck timeout (one new VM,
    /// the old one deleted); with too many unhealthy none is replaced and `TooManyUnhealthy`
    /// is recorded once; when enough recover, remediation resumes.
    /// Method: one cluster of one MachineDeployment of 3 machines, a v1beta1 MHC with
    /// `timeout: 2s` and `maxUnhealthy: 40%` (1 of 3); Nodes flipped with kube-sim's
    /// `/_sim/node-readiness`; kube-sim's ledger counts the VirtualMachine creates and deletes.
    ///
    /// Broken on purpose once (HealthChecks.evaluate taking the unhealthy machines as
    /// candidates even when the trigger refuses): the second phase replaced both machines and
    /// failed on the VM-create count (6, not 4) and the RemediationDecided count.
    @Test("Serve: remediation: a NotReady node is replaced after its timeout; with too many unhealthy none is, TooManyUnhealthy recorded once")
    func remediation() async throws {
        let work = try makeTemporaryDirectory("remediation-proof")
        defer { try? FileManager.default.removeItem(atPath: work) }
        var configuration = KubeSimConfiguration(stateDirectory: work + "/sim", port: 0, seed: 20261202)
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
        let cluster = "r1"
        try FleetManifests.catalog().write(toFile: work + "/catalog.yaml", atomically: true, encoding: .utf8)
        let manifests = FleetManifests.cluster(cluster, version: "v1.33.0", deployments: 1, replicas: 3)
            .replacingOccurrences(of: "    timeout: 5m\n", with: "    timeout: 2s\n")
        #expect(manifests.contains("timeout: 2s"))
        try manifests.write(toFile: work + "/fleet.yaml", atomically: true, encoding: .utf8)
        try await supervisor.ensureRunning()
        // serve creates the log as it starts; an apply before that finds nothing to append to
        // (seen under load: "its databases are not created yet"), so it is tried again, bounded.
        let arguments = ["apply", "-f", "catalog.yaml", "-f", "fleet.yaml", "--data-dir", data]
        let apply = try await applyOnceServeCreatedLog(arguments, in: work)
        // Required: without the fleet applied, every wait below would run to its 900 s bound.
        try #require(apply.status == 0, "apply: \(apply.stderr)")
        try await ServeControllerProofTests.waitFleet(data, "v1.33.0 provisioned", supervisor: supervisor) {
            ServeControllerProofTests.atVersion($0, names: [cluster], version: "v1.33.0", replicas: 3)
        }
        let management = try KubernetesClient(kubeconfigPath: sim.managementKubeconfigPath)
        func setReady(_ nodes: String..., ready: Bool) async throws {
            let names = nodes.map { "\"\($0)\"" }.joined(separator: ",")
            _ = try await management.send(
                method: "POST", path: "/_sim/node-readiness",
                body: Array(#"{"cluster":"default/\#(cluster)","nodes":[\#(names)],"ready":\#(ready)}"#.utf8),
                contentType: "application/json", idempotent: true)
        }
        func audit(_ event: String) throws -> [AuditEntry] {
            try FleetView.audit(try EventLogReader(directory: data), namespace: "default", cluster: cluster).filter { $0.event == event }
        }
        func vmLedger(_ verb: String) -> [String] {
            sim.ledger.entries().filter {
                $0.actor == "client" && $0.cluster == "management" && $0.resource == "virtualmachines" && $0.verb == verb
            }.map(\.name)
        }
        let driver = FleetDriver(dataDirectory: data)

        // 1. One Node NotReady: replaced after its 2 s timeout, replacement first (maxSurge 1).
        try await setReady("\(cluster)-md-0-2", ready: false)
        let firstID = HealthChecks.workflowID(namespace: "default", cluster: cluster, machine: "\(cluster)-md-0-2")
        let first = try await driver.waitFinished(firstID)
        #expect(first.status == .completed, "\(firstID): \(first.status) \(first.result ?? "")")
        try await ServeControllerProofTests.waitFleet(data, "3 ready machines without md-0-2", supervisor: supervisor) { fleet in
            guard let summary = fleet.first else { return false }
            return summary.deployments.first?.readyMachines == 3 && !summary.machines.contains { $0.name == "\(cluster)-md-0-2" }
        }
        #expect(vmLedger("create").sorted() == ["r1-md-0-1", "r1-md-0-2", "r1-md-0-3", "r1-md-0-4"])
        #expect(vmLedger("delete") == ["r1-md-0-2"])
        let decided = try audit("RemediationDecided")
        #expect(decided.count == 1)
        #expect(decided.first?.summary.contains("r1-md-0-2 UnhealthyNode") == true, "\(decided)")

        // 2. Two of three NotReady: 40% of 3 allows 1, so none is replaced; TooManyUnhealthy once.
        // In one call, so both carry one lastTransitionTime (whole seconds): two calls that
        // straddle a second let one cross the timeout alone and be remediated (seen under load).
        try await setReady("\(cluster)-md-0-1", "\(cluster)-md-0-3", ready: false)
        let deadline = ContinuousClock.now + .seconds(300)  // a hang guard, not a timing claim
        while try audit("RemediationSkipped").isEmpty {
            guard ContinuousClock.now < deadline else { throw ServeTestError("no RemediationSkipped recorded") }
            try await Task.sleep(for: .milliseconds(100))
        }
        // Many more controller passes (50 ms apart) over machines long past their timeout.
        try await Task.sleep(for: .seconds(3))
        let skipped = try audit("RemediationSkipped")
        #expect(skipped.count == 1, "recorded on change, not per pass: \(skipped.map(\.summary))")
        #expect(skipped.first?.summary.contains("TooManyUnhealthy: ") == true, "\(skipped)")
        #expect(vmLedger("create").count == 4, "a machine was replaced while too many were unhealthy: \(vmLedger("create"))")
        #expect(try audit("RemediationDecided").count == 1)

        // 3. One recovers: remediation is allowed again and the other is replaced.
        try await setReady("\(cluster)-md-0-1", ready: true)
        let secondID = HealthChecks.workflowID(namespace: "default", cluster: cluster, machine: "\(cluster)-md-0-3")
        let second = try await driver.waitFinished(secondID)
        #expect(second.status == .completed, "\(secondID): \(second.status) \(second.result ?? "")")
        #expect(try audit("RemediationAllowed").count == 1)
        #expect(vmLedger("create").sorted() == ["r1-md-0-1", "r1-md-0-2", "r1-md-0-3", "r1-md-0-4", "r1-md-0-5"])
        #expect(Set(vmLedger("delete")) == ["r1-md-0-2", "r1-md-0-3"])

        try await supervisor.waitForCurrentLog("[Workflows] controller.started")
        let status = await supervisor.terminate()
        #expect(status == 0, "serve exits 0 on SIGTERM, got \(String(describing: status))")
        // The projections are what a fold of the log gives.
        let reader = try EventLogReader(directory: data)
        #expect(try FleetProjection.rebuild(reader) == (try FleetProjection.stored(reader)))
    }
}
