import Foundation
public import Logging

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
    private let listener: Listener

    private init(simulation: Simulation, listener: Listener) {
        self.port = listener.port
        self.url = listener.url
        self.managementKubeconfigPath = simulation.stateDirectory + "/management.kubeconfig"
        self.caCertificatePath = simulation.stateDirectory + "/ca.crt"
        self.caCertificatePEM = simulation.certificates.caCertificatePEM
        self.managementToken = simulation.managementToken
        self.simulation = simulation
        self.listener = listener
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
        let simulation = try Simulation(configuration: configuration, logger: logger)
        let controllers = Controllers(simulation: simulation, logger: logger)
        let listener = try await Listener.start(
            responder: APIResponder(simulation: simulation, cluster: nil), port: configuration.port,
            certificates: simulation.certificates, services: [controllers], logger: logger)
        simulation.serverURL.withLock { $0 = listener.url }
        let sim = KubeSim(simulation: simulation, listener: listener)
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
        await listener.shutdown()
        await simulation.shutdownWorkloads()
    }

    /// A client certificate for the management cluster, signed by its CA: `user` is the CN and
    /// each group an O, as kube-apiserver reads them. PEM certificate and key; the key is a
    /// credential (write it 0600, never print it).
    public func issueClientCertificate(user: String, groups: [String] = []) throws -> (certificatePEM: String, keyPEM: String) {
        let issued = try simulation.certificates.issueClientCertificate(user: user, groups: groups)
        return (issued.certificatePEM, issued.keyPEM)
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
