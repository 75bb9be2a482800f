import Foundation
import Hummingbird
import HummingbirdTLS
public import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A running kube-sim: a simulated management cluster (KubeVirt VirtualMachines, Kamaji
/// TenantControlPlanes, Secrets), its workload clusters and the in-place update extension,
/// served over HTTPS on 127.0.0.1.
///
/// ```swift
/// let sim = try await KubeSim.start(KubeSimConfiguration(stateDirectory: dir, seed: 42))
/// // use sim.managementKubeconfigPath ...
/// await sim.shutdown()
/// ```
public final class KubeSim: Sendable {
    /// The bound TCP port.
    public let port: Int
    /// `https://127.0.0.1:<port>`.
    public let url: String
    /// `<state dir>/management.kubeconfig`.
    public let managementKubeconfigPath: String
    /// `<state dir>/ca.crt`: the CA that signed the serving certificate.
    public let caCertificatePath: String
    /// The CA certificate, PEM.
    public let caCertificatePEM: String
    /// The management cluster's bearer token (also in the kubeconfig); `/_sim` needs it.
    public let managementToken: String
    /// Every change applied so far.
    public var ledger: Ledger { simulation.ledger }
    /// The seed this run uses (given, or drawn).
    public var seed: UInt64 { simulation.random.seed }

    let simulation: Simulation
    private let serviceGroup: ServiceGroup
    private let runTask: Task<Void, any Error>

    private init(
        port: Int, simulation: Simulation, serviceGroup: ServiceGroup, runTask: Task<Void, any Error>
    ) {
        self.port = port
        self.url = "https://127.0.0.1:\(port)"
        self.managementKubeconfigPath = simulation.stateDirectory + "/management.kubeconfig"
        self.caCertificatePath = simulation.stateDirectory + "/ca.crt"
        self.caCertificatePEM = simulation.certificates.caCertificatePEM
        self.managementToken = simulation.managementToken
        self.simulation = simulation
        self.serviceGroup = serviceGroup
        self.runTask = runTask
    }

    /// Starts the server and the simulated controllers; returns once it is listening and the
    /// management kubeconfig is written.
    ///
    /// - Throws: when the port cannot be bound or the state directory cannot be written.
    public static func start(_ configuration: KubeSimConfiguration, logger: Logger? = nil) async throws -> KubeSim {
        let logger = logger ?? {
            var logger = Logger(label: "kube-sim")
            let level = ProcessInfo.processInfo.environment["KUBE_SIM_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
            logger.logLevel = level ?? .warning
            return logger
        }()
        try FileManager.default.createDirectory(
            atPath: configuration.stateDirectory, withIntermediateDirectories: true)
        let simulation = try Simulation(configuration: configuration)
        let controllers = Controllers(simulation: simulation, logger: logger)
        let bound = BoundSignal()
        let app = Application(
            responder: APIResponder(simulation: simulation),
            server: try .tls(
                .http1(configuration: .init(additionalChannelHandlers: [ConnectionResetHandler()])),
                tlsConfiguration: simulation.certificates.tlsConfiguration()),
            configuration: ApplicationConfiguration(
                address: .hostname("127.0.0.1", port: configuration.port), serverName: "kube-sim", backlog: 1024),
            onServerRunning: { channel in bound.resolve(.success(channel.localAddress?.port ?? 0)) },
            logger: logger)
        let serviceGroup = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: app), .init(service: controllers)], gracefulShutdownSignals: [],
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
        simulation.serverURL.withLock { $0 = "https://127.0.0.1:\(port)" }
        let sim = KubeSim(port: port, simulation: simulation, serviceGroup: serviceGroup, runTask: runTask)
        do {
            try simulation.managementKubeconfig.write(to: sim.managementKubeconfigPath)
            try Data(simulation.certificates.caCertificatePEM.utf8).write(
                to: URL(fileURLWithPath: sim.caCertificatePath), options: .atomic)
        } catch {
            await sim.shutdown()
            throw error
        }
        return sim
    }

    /// Stops accepting connections, ends open watches and the controllers, and waits for them.
    public func shutdown() async {
        simulation.shutdown()
        await serviceGroup.triggerGracefulShutdown()
        _ = try? await runTask.value
    }

    /// The kubeconfig path of a workload cluster (written once its TenantControlPlane is Ready).
    public func workloadKubeconfigPath(namespace: String, name: String) -> String {
        simulation.workloadKubeconfigPath(namespace: namespace, name: name)
    }
}

/// A failure to start kube-sim.
public struct KubeSimError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
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
