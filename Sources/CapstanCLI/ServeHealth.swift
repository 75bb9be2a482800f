import CapstanSupport
import Foundation
import Logging
import Providers
import ServiceLifecycle
import Synchronization

/// What `/healthz` answers: 200 while the engine runs and the management cluster's API
/// answered its last probe (recently); 503 with a short JSON reason otherwise. The body holds
/// no credential: the reasons are Capstan's own words and the client's error, which never
/// quotes a token or key.
enum ServeHealth {
    /// The answer for the engine's state and the last probe, at `now`.
    ///
    /// - Parameters:
    ///   - staleAfter: a probe older than this counts as failed (the prober hangs or stopped).
    static func answer(
        engineRunning: Bool, probe: ManagementProbe.Result?, now: ContinuousClock.Instant, staleAfter: Duration, workflowsRunning: Int
    ) -> (status: Int, body: String) {
        func unavailable(_ reason: String) -> (status: Int, body: String) {
            var json = JSONWriter()
            json.openObject()
            json.field("status", "unavailable")
            json.field("reason", reason)
            json.closeObject()
            return (503, String(decoding: json.bytes, as: UTF8.self) + "\n")
        }
        guard engineRunning else { return unavailable("engine stopped") }
        guard let probe else { return unavailable("management cluster API not probed yet") }
        let age = now - probe.at
        if let failure = probe.failure {
            return unavailable("management cluster API: \(failure) (\(seconds(age)) ago)")
        }
        if age > staleAfter {
            return unavailable("management cluster API: no probe answered for \(seconds(age))")
        }
        var json = JSONWriter()
        json.openObject()
        json.field("status", "ok")
        json.field("workflowsRunning", workflowsRunning)
        json.field("managementCluster", "ok")
        json.closeObject()
        return (200, String(decoding: json.bytes, as: UTF8.self) + "\n")
    }

    private static func seconds(_ duration: Duration) -> String {
        "\(max(0, duration.components.seconds))s"
    }
}

/// Probes the management cluster's API (`GET /readyz`, cheap, no object read) every
/// `interval`, one attempt each (no retries, short timeouts), and keeps the last result.
final class ManagementProbe: Service, Sendable {
    struct Result: Sendable {
        var at: ContinuousClock.Instant
        /// nil: answered 2xx.
        var failure: String?
    }

    private let client: KubernetesClient
    let interval: Duration
    private let logger: Logger
    private let last = Mutex<Result?>(nil)

    init(connection: ClusterConnection, interval: Duration = .seconds(3), logger: Logger) {
        self.client = KubernetesClient(
            connection: connection, retryPolicy: .none, timeouts: HTTPTimeouts(connect: .seconds(2), total: .seconds(3)),
            logger: logger)
        self.interval = interval
        self.logger = logger
    }

    /// The last probe's result (nil before the first answered).
    var result: Result? { last.withLock { $0 } }

    /// A probe older than this counts as failed: three intervals and the probe's own timeout.
    var staleAfter: Duration { interval * 3 + .seconds(3) }

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await probeOnce()
            try? await Task.sleep(for: interval)
        }
    }

    func probeOnce() async {
        var failure: String?
        do { _ = try await client.getRaw(path: "/readyz") } catch {
            // The client's errors name the operation and the status, never a credential; kept short.
            let text = "\(error)"
            failure = text.count > 200 ? String(text.prefix(200)) + "…" : text
        }
        let result = Result(at: .now, failure: failure)
        let before = last.withLock { last in
            defer { last = result }
            return last
        }
        // Transitions only, not every probe.
        if let failure, before == nil || before?.failure == nil {
            logger.warning("health.managementCluster.failed", metadata: ["health.reason": "\(failure)"])
        } else if failure == nil, before?.failure != nil {
            logger.info("health.managementCluster.recovered")
        }
    }
}

/// Whether the engine's `run()` is going: set by ``LivenessTracked`` around it.
final class EngineLiveness: Sendable {
    private let running = Mutex(false)
    var isRunning: Bool { running.withLock { $0 } }
    func set(_ value: Bool) { running.withLock { $0 = value } }
}

/// Runs `base`, recording in `liveness` whether it is running.
struct LivenessTracked<Base: Service>: Service {
    let base: Base
    let liveness: EngineLiveness

    func run() async throws {
        liveness.set(true)
        defer { liveness.set(false) }
        try await base.run()
    }
}
