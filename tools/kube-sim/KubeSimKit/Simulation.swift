import Foundation
import Logging
import Synchronization

/// A workload cluster Kamaji made: its API objects, its own CA and the admin's client certificate.
final class WorkloadCluster: Sendable {
    let namespace: String
    let name: String
    let store: ClusterStore
    /// Its own CA and serving certificate (Kamaji makes a CA per tenant control plane).
    let certificates: ServingCertificates
    /// admin.conf's credential: `CN=kubernetes-admin, O=kubeadm:cluster-admins`, as kubeadm issues it.
    let adminCertificate: ClientCertificate
    /// super-admin.conf's: `O=system:masters`, the group no RBAC binding can take away.
    let superAdminCertificate: ClientCertificate
    /// The installed control-plane version (`v1.34.1`), served at `/version`.
    let version: Mutex<String>
    /// Its own HTTPS listener (set once bound, before the cluster is published).
    let listener = Mutex<Listener?>(nil)

    init(
        namespace: String, name: String, store: ClusterStore, certificates: ServingCertificates, version: String
    ) throws {
        self.namespace = namespace
        self.name = name
        self.store = store
        self.certificates = certificates
        self.adminCertificate = try certificates.issueClientCertificate(
            user: "kubernetes-admin", groups: ["kubeadm:cluster-admins"])
        self.superAdminCertificate = try certificates.issueClientCertificate(
            user: "kubernetes-super-admin", groups: ["system:masters"])
        self.version = Mutex(version)
    }

    var id: String { "\(namespace)/\(name)" }

    /// `https://127.0.0.1:<its port>`: the endpoint Kamaji would give the control plane.
    var server: String { listener.withLock { $0?.url ?? "" } }
}

/// Everything one kube-sim process simulates: the management cluster, the workload
/// clusters its TenantControlPlanes made, the ledger, faults, and the server's identity.
final class Simulation: Sendable {
    let configuration: KubeSimConfiguration
    let random: SimRandom
    let ledger: Ledger
    let faults: FaultInjector
    let management: ClusterStore
    let managementToken: String
    let certificates: ServingCertificates
    let delays: Mutex<ControllerDelays>
    let extensionPolicy: Mutex<UpdateExtensionPolicy>
    private let workloads = Mutex<[String: WorkloadCluster]>([:])
    /// Set by `shutdownWorkloads` (under the `workloads` lock): no cluster is published after it.
    private let closed = Mutex(false)
    /// In-place kubelet updates in flight, by `<namespace>/<cluster>/<node>`.
    let inPlaceUpdates = Mutex<[String: InPlaceUpdate]>([:])
    /// Set once the server is bound: `https://127.0.0.1:<port>`.
    let serverURL = Mutex<String>("")

    let logger: Logger

    init(configuration: KubeSimConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        self.random = SimRandom(seed: configuration.seed ?? SimRandom.systemSeed())
        self.ledger = Ledger()
        self.faults = FaultInjector(configuration.faults, random: random)
        self.management = ClusterStore(
            cluster: "management", catalog: ResourceCatalog(ResourceType.management), ledger: ledger, random: random)
        self.managementToken = "kube-sim-" + random.alphanumeric(40)
        self.certificates = try ServingCertificates.make(serverNames: configuration.serverNames)
        self.delays = Mutex(configuration.delays)
        self.extensionPolicy = Mutex(configuration.updateExtension)
    }

    func workload(namespace: String, name: String) -> WorkloadCluster? {
        workloads.withLock { $0["\(namespace)/\(name)"] }
    }

    /// The workload cluster listening at `host:port` (a kubeadm join's `apiServerEndpoint`).
    func workload(endpoint: String) -> WorkloadCluster? {
        workloads.withLock { workloads in workloads.values.first { $0.server == "https://\(endpoint)" } }
    }

    var workloadClusters: [WorkloadCluster] {
        workloads.withLock { Array($0.values) }.sorted { $0.id < $1.id }
    }

    /// The workload cluster for a TenantControlPlane, made (and listening on a port of its
    /// own) on first call.
    ///
    /// - Throws: when no port can be bound.
    func ensureWorkload(namespace: String, name: String, version: String) async throws -> (WorkloadCluster, created: Bool) {
        if let existing = workload(namespace: namespace, name: name) { return (existing, false) }
        let store = ClusterStore(
            cluster: "\(namespace)/\(name)", catalog: ResourceCatalog(ResourceType.workload), ledger: ledger,
            random: random)
        let cluster = try WorkloadCluster(
            namespace: namespace, name: name, store: store, certificates: try ServingCertificates.make(),
            version: version)
        let listener = try await Listener.start(
            responder: APIResponder(simulation: self, cluster: cluster), port: 0, certificates: cluster.certificates,
            logger: logger)
        cluster.listener.withLock { $0 = listener }
        // Two reconciles of one control plane may race here: the first to publish wins.
        // After shutdown nothing is published (the listener would outlive the simulation).
        let winner: WorkloadCluster? = workloads.withLock { workloads in
            if closed.withLock({ $0 }) { return nil }
            if let existing = workloads[cluster.id] { return existing }
            workloads[cluster.id] = cluster
            return cluster
        }
        guard let winner, winner === cluster else {
            await listener.shutdown()
            guard let winner else { throw CancellationError() }
            return (winner, false)
        }
        return (cluster, true)
    }

    /// Forgets a workload cluster: its watches end and its listener closes.
    func removeWorkload(namespace: String, name: String) async {
        let removed = workloads.withLock { $0.removeValue(forKey: "\(namespace)/\(name)") }
        guard let removed else { return }
        removed.store.finishWatches()
        await removed.listener.withLock { $0 }?.shutdown()
    }

    /// Closes every workload cluster's listener (at shutdown).
    func shutdownWorkloads() async {
        let all = workloads.withLock { workloads in
            closed.withLock { $0 = true }
            defer { workloads.removeAll() }
            return Array(workloads.values)
        }
        for cluster in all {
            cluster.store.finishWatches()
            await cluster.listener.withLock { $0 }?.shutdown()
        }
    }

    var stateDirectory: String { configuration.stateDirectory }

    func workloadKubeconfigPath(namespace: String, name: String) -> String {
        "\(stateDirectory)/clusters/\(namespace)/\(name).kubeconfig"
    }

    /// admin.conf (or super-admin.conf) of a workload cluster: its endpoint, its CA, a client certificate.
    func kubeconfig(for cluster: WorkloadCluster, superAdmin: Bool = false) -> Kubeconfig {
        Kubeconfig(
            clusterName: cluster.name, server: cluster.server,
            caCertificatePEM: cluster.certificates.caCertificatePEM,
            credential: .clientCertificate(superAdmin ? cluster.superAdminCertificate : cluster.adminCertificate),
            userName: superAdmin ? "kubernetes-super-admin" : "kubernetes-admin")
    }

    /// The user the management token authenticates as.
    static let managementUser = "kube-sim-admin"

    var managementKubeconfig: Kubeconfig {
        Kubeconfig(
            clusterName: "kube-sim", server: serverURL.withLock { $0 }, caCertificatePEM: certificates.caCertificatePEM,
            credential: .token(managementToken), userName: Simulation.managementUser,
            tlsServerName: configuration.serverNames?.first)
    }

    func shutdown() {
        management.finishWatches()
        for cluster in workloadClusters { cluster.store.finishWatches() }
    }
}
