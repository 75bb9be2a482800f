import Foundation
import Synchronization

/// A workload cluster Kamaji made: its API objects and its own bearer token.
final class WorkloadCluster: Sendable {
    let namespace: String
    let name: String
    let store: ClusterStore
    let token: String
    /// The installed control-plane version (`v1.34.1`), served at `/version`.
    let version: Mutex<String>

    init(namespace: String, name: String, store: ClusterStore, token: String, version: String) {
        self.namespace = namespace
        self.name = name
        self.store = store
        self.token = token
        self.version = Mutex(version)
    }

    var id: String { "\(namespace)/\(name)" }
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
    /// In-place kubelet updates in flight, by `<namespace>/<cluster>/<node>`.
    let inPlaceUpdates = Mutex<[String: InPlaceUpdate]>([:])
    /// Set once the server is bound: `https://127.0.0.1:<port>`.
    let serverURL = Mutex<String>("")

    init(configuration: KubeSimConfiguration) throws {
        self.configuration = configuration
        self.random = SimRandom(seed: configuration.seed ?? SimRandom.systemSeed())
        self.ledger = Ledger()
        self.faults = FaultInjector(configuration.faults, random: random)
        self.management = ClusterStore(
            cluster: "management", catalog: ResourceCatalog(ResourceType.management), ledger: ledger, random: random)
        self.managementToken = "kube-sim-" + random.alphanumeric(40)
        self.certificates = try ServingCertificates.make()
        self.delays = Mutex(configuration.delays)
        self.extensionPolicy = Mutex(configuration.updateExtension)
    }

    func workload(namespace: String, name: String) -> WorkloadCluster? {
        workloads.withLock { $0["\(namespace)/\(name)"] }
    }

    var workloadClusters: [WorkloadCluster] {
        workloads.withLock { Array($0.values) }.sorted { $0.id < $1.id }
    }

    /// The workload cluster for a TenantControlPlane, made on first call.
    func ensureWorkload(namespace: String, name: String, version: String) -> (WorkloadCluster, created: Bool) {
        workloads.withLock { workloads in
            if let existing = workloads["\(namespace)/\(name)"] { return (existing, false) }
            let store = ClusterStore(
                cluster: "\(namespace)/\(name)", catalog: ResourceCatalog(ResourceType.workload), ledger: ledger,
                random: random)
            let cluster = WorkloadCluster(
                namespace: namespace, name: name, store: store, token: "kube-sim-" + random.alphanumeric(40),
                version: version)
            workloads[cluster.id] = cluster
            return (cluster, true)
        }
    }

    func removeWorkload(namespace: String, name: String) {
        let removed = workloads.withLock { $0.removeValue(forKey: "\(namespace)/\(name)") }
        removed?.store.finishWatches()
    }

    var stateDirectory: String { configuration.stateDirectory }

    func workloadKubeconfigPath(namespace: String, name: String) -> String {
        "\(stateDirectory)/clusters/\(namespace)/\(name).kubeconfig"
    }

    func kubeconfig(for cluster: WorkloadCluster) -> Kubeconfig {
        Kubeconfig(
            clusterName: cluster.name, server: "\(serverURL.withLock { $0 })/clusters/\(cluster.namespace)/\(cluster.name)",
            caCertificatePEM: certificates.caCertificatePEM, token: cluster.token, userName: "kubernetes-admin")
    }

    var managementKubeconfig: Kubeconfig {
        Kubeconfig(
            clusterName: "kube-sim", server: serverURL.withLock { $0 }, caCertificatePEM: certificates.caCertificatePEM,
            token: managementToken, userName: "kube-sim-admin")
    }

    func shutdown() {
        management.finishWatches()
        for cluster in workloadClusters { cluster.store.finishWatches() }
    }
}
