import Logging
import Providers

/// Clients of the workload clusters, built from each TenantControlPlane's admin kubeconfig and
/// kept in memory only (the kubeconfig is never written or logged; the log records only the
/// Secret's name).
///
/// One entry per control plane; an entry is dropped when a call with it fails with 401, so a
/// rotated credential is read again.
actor WorkloadClients {
    private let kamaji: KamajiProvider
    private let logger: Logger
    private var clients: [Activities.ClusterRef: KubernetesClient] = [:]
    /// Bounds the cache (a shard holds at most this many clusters' clients at once).
    private let capacity = 4096

    init(kamaji: KamajiProvider, logger: Logger) {
        self.kamaji = kamaji
        self.logger = logger
    }

    /// The workload cluster's client, read from its admin kubeconfig Secret the first time.
    ///
    /// - Throws: `KubernetesError` `.notFound` while the control plane names no Secret yet;
    ///   `KubeconfigError` when the kubeconfig is unusable.
    func client(for cluster: Activities.ClusterRef) async throws -> KubernetesClient {
        if let client = clients[cluster] { return client }
        let client = try await kamaji.workloadClient(
            name: cluster.controlPlane, namespace: cluster.namespace,
            logger: Logger(label: "capstan.providers.workload"))
        if clients.count >= capacity { clients.removeAll(keepingCapacity: true) }
        clients[cluster] = client
        logger.debug("executors.workload.client", metadata: ["cluster": "\(cluster.namespace)/\(cluster.name)"])
        return client
    }

    /// Forgets the cached client (after a 401, or once the cluster is deleted).
    func forget(_ cluster: Activities.ClusterRef) { clients[cluster] = nil }

    /// Runs `body` with the cluster's client, forgetting the client if the server refuses its credentials.
    func with<T: Sendable>(
        _ cluster: Activities.ClusterRef, _ body: @Sendable (WorkloadCluster) async throws -> T
    ) async throws -> T {
        let client = try await client(for: cluster)
        do { return try await body(WorkloadCluster(client: client)) } catch let error as KubernetesError
            where error.code == .unauthorized
        {
            forget(cluster)
            throw error
        }
    }
}
