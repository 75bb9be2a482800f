import Foundation
import KubeSimKit
import Providers
import Testing

/// Runs `body` against a fresh in-process kube-sim (HTTPS, its own CA and token) and stops it after.
///
/// One simulator per test keeps faults and objects from leaking between tests.
func withKubeSim<T>(
    delays: ControllerDelays = .immediate, retryPolicy: RetryPolicy = RetryPolicy(maxAttempts: 6, baseDelay: .milliseconds(5), maxDelay: .milliseconds(100)),
    _ body: (KubeSim, KubernetesClient) async throws -> T
) async throws -> T {
    let directory = TemporaryDirectory()
    var configuration = KubeSimConfiguration(stateDirectory: directory.path, port: 0, seed: 42)
    configuration.delays = delays
    let sim = try await KubeSim.start(configuration)
    do {
        let client = try KubernetesClient(kubeconfigPath: sim.managementKubeconfigPath, retryPolicy: retryPolicy)
        let result = try await body(sim, client)
        await sim.shutdown()
        return result
    } catch {
        await sim.shutdown()
        throw error
    }
}

/// kube-sim's `/_sim` controls, driven over the same HTTPS client.
struct SimControls {
    let client: KubernetesClient

    func setFaults(_ json: String) async throws {
        _ = try await client.send(
            method: "PUT", path: "/_sim/faults", body: Array(json.utf8), contentType: "application/json", idempotent: true)
    }

    struct LedgerEntry: Decodable, Sendable {
        var seq: Int
        var verb: String
        var resource: String
        var namespace: String?
        var name: String
        var actor: String
        var cluster: String
    }

    private struct LedgerPage: Decodable { var entries: [LedgerEntry] }

    func ledger(_ query: String) async throws -> [LedgerEntry] {
        let response = try await client.getRaw(path: "/_sim/ledger?\(query)")
        return try JSONDecoder().decode(LedgerPage.self, from: Data(response.body)).entries
    }

    func post(_ path: String, _ json: String) async throws {
        _ = try await client.send(
            method: "POST", path: path, body: Array(json.utf8), contentType: "application/json", idempotent: true)
    }
}

/// Polls `condition` every 20 ms until it holds; generous bound for a loaded 2-core machine.
func eventually<T>(
    _ what: String, timeout: Duration = .seconds(60), _ condition: () async throws -> T?
) async throws -> T {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if let value = try await condition() { return value }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out waiting for \(what)")
    throw CancellationError()
}
