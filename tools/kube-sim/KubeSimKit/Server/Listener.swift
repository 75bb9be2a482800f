import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// One HTTPS listener on 127.0.0.1: the management cluster's, or one workload cluster's.
///
/// Kamaji gives every control plane an endpoint of its own, so each workload cluster gets a
/// port of its own and is served at `/`, exactly as a real API server: a kubeconfig from the
/// admin Secret then works with any client (`kubectl get --raw /version` reaches that cluster).
final class Listener: Sendable {
    /// The bound port.
    let port: Int
    private let serviceGroup: ServiceGroup
    private let runTask: Task<Void, any Error>

    private init(port: Int, serviceGroup: ServiceGroup, runTask: Task<Void, any Error>) {
        self.port = port
        self.serviceGroup = serviceGroup
        self.runTask = runTask
    }

    /// `https://127.0.0.1:<port>`.
    var url: String { "https://127.0.0.1:\(port)" }

    /// Binds `port` (0: a free one) and serves `responder` (plus `services`, run alongside and
    /// stopped with it); returns once listening.
    ///
    /// - Throws: when the port cannot be bound.
    static func start(
        responder: APIResponder, port: Int, certificates: ServingCertificates, services: [any Service] = [],
        logger: Logger
    ) async throws -> Listener {
        let bound = BoundSignal()
        let app = Application(
            responder: responder,
            server: try .tls(
                .http1(configuration: .init(additionalChannelHandlers: [ConnectionResetHandler()])),
                configuration: TLSChannelConfiguration(
                    tlsConfiguration: certificates.tlsConfiguration(),
                    // Any client certificate passes the handshake; `APIResponder` authenticates it
                    // against the CA per request and answers 401, as kube-apiserver does.
                    customVerificationCallback: { _, promise in promise.succeed(.certificateVerified) })),
            configuration: ApplicationConfiguration(
                address: .hostname("127.0.0.1", port: port), serverName: "kube-sim", backlog: 1024),
            onServerRunning: { channel in bound.resolve(.success(channel.localAddress?.port ?? 0)) },
            logger: logger)
        let serviceGroup = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: app)] + services.map { .init(service: $0) }, gracefulShutdownSignals: [],
                logger: logger))
        let runTask = Task {
            do {
                try await serviceGroup.run()
                bound.resolve(.failure(KubeSimError(message: "kube-sim stopped before it was listening")))
            } catch {
                bound.resolve(.failure(error))
                throw error
            }
        }
        let port = try await bound.wait()
        return Listener(port: port, serviceGroup: serviceGroup, runTask: runTask)
    }

    /// Stops accepting connections and waits for the listener (and its services) to end.
    func shutdown() async {
        await serviceGroup.triggerGracefulShutdown()
        _ = try? await runTask.value
    }
}

/// Resolves once with the bound port or the start failure.
private final class BoundSignal: Sendable {
    private struct State {
        var result: Result<Int, any Error>?
        var waiter: CheckedContinuation<Int, any Error>?
    }
    private let state = Mutex(State())

    func resolve(_ result: Result<Int, any Error>) {
        let waiter: CheckedContinuation<Int, any Error>? = state.withLock { state in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(with: result)
    }

    func wait() async throws -> Int {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<Int, any Error>? = state.withLock { state in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
