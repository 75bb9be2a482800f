// Workflows: the lifecycle workflows. `Deciders/` holds pure deciders (evolve + decide, no
// I/O); `Executors/` holds the activities that call the cluster APIs through Providers,
// each idempotent under its key `<workflow id>/<activity id>`.

/// Namespace for the Workflows module's shared constants.
public enum Workflows {
    /// The label every object Capstan creates for a cluster carries, as Cluster API's does.
    public static let clusterNameLabel = "cluster.x-k8s.io/cluster-name"
}
