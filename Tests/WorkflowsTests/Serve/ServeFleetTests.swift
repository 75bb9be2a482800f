import EventLog
import Fleet
import Foundation
import KubeSimKit
import Testing

/// `capstan serve` with desired state: `apply` while serve holds the log goes through the
/// inbox and the serving process records it (FleetInboxService).
@Suite(.serialized) struct ServeFleetTests {
    /// Waits until serve's log says it started (it holds the log's writer lock from then on).
    static func waitStarted(_ supervisor: ServeSupervisor, logPath: String) async throws {
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: logPath, encoding: .utf8), text.contains("serve.started") { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ServeTestError("serve did not start within 120 s:\n\(supervisor.logTail())")
    }

    /// Goal: `apply` while serve runs is recorded. Method: start serve, apply a cluster with the
    /// real CLI, and read the answer and the projection. Broken on purpose once (serve without
    /// FleetInboxService): the apply waited 60 s and exited 1 ("has not recorded it").
    @Test("Serve: inbox: apply while serve runs prints created, via the inbox, and get clusters shows it")
    func applyWhileServing() async throws {
        let work = try makeTemporaryDirectory("serve-inbox")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let sim = try await KubeSim.start(KubeSimConfiguration(stateDirectory: work + "/sim", port: 0, seed: 7))
        let data = work + "/data"
        let logPath = work + "/serve.log"
        let supervisor = ServeSupervisor(
            executable: try builtExecutable("capstan"),
            arguments: ["serve", "--data-dir", data, "--kubeconfig", sim.managementKubeconfigPath, "--log-level", "info"],
            logPath: logPath)
        do {
            try await supervisor.ensureRunning()
            try await Self.waitStarted(supervisor, logPath: logPath)
            try FleetManifests.catalog().write(toFile: work + "/catalog.yaml", atomically: true, encoding: .utf8)
            try FleetManifests.cluster("c1", version: "v1.33.0", deployments: 1, replicas: 1)
                .write(toFile: work + "/fleet.yaml", atomically: true, encoding: .utf8)
            let apply = try await runCapstan(
                ["apply", "-f", "catalog.yaml", "-f", "fleet.yaml", "--data-dir", data, "-o", "json"], in: work)
            #expect(apply.status == 0, "\(apply.stderr)")
            #expect(apply.stdout.contains("\"via\" : \"inbox\""), "\(apply.stdout)")
            #expect(apply.stdout.contains("\"change\" : \"created\""), "\(apply.stdout)")
            let text = try await runCapstan(["apply", "-f", "fleet.yaml", "--data-dir", data], in: work)
            #expect(text.status == 0, "\(text.stderr)")
            #expect(text.stdout.contains("Cluster/c1 unchanged"), "\(text.stdout)")
            let get = try await runCapstan(["get", "clusters", "-o", "json", "--data-dir", data], in: work)
            #expect(get.status == 0, "\(get.stderr)")
            let clusters = try JSONDecoder().decode([ClusterSummary].self, from: Data(get.stdout.utf8))
            #expect(clusters.map(\.name) == ["c1"])
            #expect(clusters.first?.controlPlane.desiredVersion == (try KubernetesVersion(parsing: "v1.33.0")))
        } catch {
            Issue.record("\(error)\nserve log:\n\(supervisor.logTail())")
        }
        #expect(await supervisor.terminate() == 0, "serve exits 0 on SIGTERM")
        await sim.shutdown()
    }
}
