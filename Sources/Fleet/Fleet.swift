// Fleet: the domain layer. Cluster API manifests in (Cluster, KamajiControlPlane,
// MachineDeployment, MachineHealthCheck, KubeVirt and kubeadm templates, Capstan's
// VersionCatalog), Kubernetes versions and skew rules, and the projections that fold the
// log into the fleet's desired and observed state. It sits above Engine and below
// Workflows: it knows the log and the engine's events, never a cluster API.

/// Namespace for the Fleet module's shared constants.
public enum Fleet {
    /// The API group of Capstan's own kinds (`VersionCatalog`).
    public static let apiGroup = "capstan.dev"
}
