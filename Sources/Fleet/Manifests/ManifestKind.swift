/// A kind `capstan apply` accepts, at one API version, with its field table and the fields
/// Capstan acts on.
public struct ManifestKind: Hashable, Sendable, CustomStringConvertible {
    /// `cluster.x-k8s.io`
    public var group: String
    /// `v1beta2`
    public var version: String
    /// `Cluster`
    public var kind: String

    public init(group: String, version: String, kind: String) {
        self.group = group
        self.version = version
        self.kind = kind
    }

    /// `cluster.x-k8s.io/v1beta2`
    public var apiVersion: String { "\(group)/\(version)" }
    public var description: String { "\(apiVersion) \(kind)" }
}

/// The kinds Capstan reads, what each may hold and what Capstan does with it.
enum KindRegistry {
    struct Entry: Sendable {
        var kind: ManifestKind
        /// The upstream field table of `spec` (and `status`, kept whole).
        var schema: FieldSchema
        /// Schema paths (`spec.template.spec.version`) Capstan reads; everything under or
        /// above one of them counts as acted on, any other field is reported once.
        var actedOn: Set<String>
    }

    static let cluster = "cluster.x-k8s.io"
    static let controlPlane = "controlplane.cluster.x-k8s.io"
    static let infrastructure = "infrastructure.cluster.x-k8s.io"
    static let bootstrap = "bootstrap.cluster.x-k8s.io"

    static let entries: [Entry] = {
        let clusterActed: Set = ["spec.controlPlaneRef", "spec.infrastructureRef", "spec.clusterNetwork", "spec.paused"]
        let templateActed: Set = [
            "spec.clusterName", "spec.replicas", "spec.selector", "spec.template.metadata",
            "spec.template.spec.clusterName", "spec.template.spec.version", "spec.template.spec.bootstrap",
            "spec.template.spec.infrastructureRef",
        ]
        let kamajiActed: Set = [
            "spec.version", "spec.replicas", "spec.dataStoreName", "spec.addons", "spec.kubelet", "spec.network",
            "spec.deployment",
        ]
        // What a worker's userdata takes from the template (KubeadmConfigExtras); discovery, the
        // Node name and the rest of joinConfiguration are Capstan's own, so they are reported.
        let kubeadmActed: Set = [
            "spec.template.spec.joinConfiguration.nodeRegistration.kubeletExtraArgs",
            "spec.template.spec.joinConfiguration.nodeRegistration.taints", "spec.template.spec.files",
            "spec.template.spec.preKubeadmCommands", "spec.template.spec.postKubeadmCommands",
        ]
        return [
            Entry(kind: .init(group: cluster, version: "v1beta1", kind: "Cluster"),
                  schema: .parse(FieldTables.clusterV1beta1), actedOn: clusterActed),
            Entry(kind: .init(group: cluster, version: "v1beta2", kind: "Cluster"),
                  schema: .parse(FieldTables.clusterV1beta2), actedOn: clusterActed),
            Entry(kind: .init(group: cluster, version: "v1beta1", kind: "MachineDeployment"),
                  schema: .parse(FieldTables.machineDeploymentV1beta1),
                  actedOn: templateActed.union(["spec.strategy.type", "spec.strategy.rollingUpdate"])),
            Entry(kind: .init(group: cluster, version: "v1beta2", kind: "MachineDeployment"),
                  schema: .parse(FieldTables.machineDeploymentV1beta2),
                  actedOn: templateActed.union(["spec.rollout.strategy", "spec.deletion.order"])),
            Entry(kind: .init(group: cluster, version: "v1beta1", kind: "MachineHealthCheck"),
                  schema: .parse(FieldTables.machineHealthCheckV1beta1),
                  actedOn: ["spec.clusterName", "spec.selector", "spec.unhealthyConditions", "spec.maxUnhealthy",
                            "spec.unhealthyRange", "spec.nodeStartupTimeout"]),
            Entry(kind: .init(group: cluster, version: "v1beta2", kind: "MachineHealthCheck"),
                  schema: .parse(FieldTables.machineHealthCheckV1beta2),
                  actedOn: ["spec.clusterName", "spec.selector", "spec.checks.nodeStartupTimeoutSeconds",
                            "spec.checks.unhealthyNodeConditions", "spec.remediation.triggerIf"]),
            Entry(kind: .init(group: controlPlane, version: "v1alpha1", kind: "KamajiControlPlane"),
                  schema: .parse(FieldTables.kamajiControlPlaneV1alpha1), actedOn: kamajiActed),
            Entry(kind: .init(group: controlPlane, version: "v1alpha2", kind: "KamajiControlPlane"),
                  schema: .parse(FieldTables.kamajiControlPlaneV1alpha2), actedOn: kamajiActed),
            Entry(kind: .init(group: infrastructure, version: "v1alpha1", kind: "KubevirtCluster"),
                  schema: .parse(FieldTables.kubevirtClusterV1alpha1), actedOn: []),
            Entry(kind: .init(group: infrastructure, version: "v1alpha1", kind: "KubevirtMachineTemplate"),
                  schema: .parse(FieldTables.kubevirtMachineTemplateV1alpha1),
                  actedOn: ["spec.template.spec.virtualMachineTemplate"]),
            Entry(kind: .init(group: bootstrap, version: "v1beta1", kind: "KubeadmConfigTemplate"),
                  schema: .parse(FieldTables.kubeadmConfigTemplateV1beta1), actedOn: kubeadmActed),
            Entry(kind: .init(group: bootstrap, version: "v1beta2", kind: "KubeadmConfigTemplate"),
                  schema: .parse(FieldTables.kubeadmConfigTemplateV1beta2), actedOn: kubeadmActed),
            Entry(kind: .init(group: Fleet.apiGroup, version: "v1alpha1", kind: "VersionCatalog"),
                  schema: .parse(FieldTables.versionCatalogV1alpha1), actedOn: ["spec.versions"]),
        ]
    }()

    static func entry(apiVersion: String, kind: String) -> Entry? {
        entries.first { $0.kind.apiVersion == apiVersion && $0.kind.kind == kind }
    }

    static var kinds: [String] { Array(Set(entries.map(\.kind.kind))).sorted() }

    static func apiVersions(of kind: String) -> [String] {
        entries.filter { $0.kind.kind == kind }.map(\.kind.apiVersion)
    }

    /// ObjectMeta as kubectl accepts it in a manifest; Capstan reads name, namespace,
    /// labels and annotations.
    static let metadata = FieldSchema.parse(
        """
        name string
        namespace string
        labels map
        labels.* string
        annotations map
        annotations.* string
        generateName string
        uid string
        resourceVersion string
        generation integer
        creationTimestamp string
        deletionTimestamp string
        deletionGracePeriodSeconds integer
        finalizers array
        finalizers[] string
        ownerReferences any
        managedFields any
        """)
    static let metadataActed: Set = ["name", "namespace", "labels", "annotations"]
}

extension FieldTables {
    /// Capstan's own kind, `capstan.dev/v1alpha1` `VersionCatalog`.
    static let versionCatalogV1alpha1 = """
        spec object
        spec.versions array
        spec.versions[] object
        spec.versions[].version string
        spec.versions[].machineImage string
        status any
        """
}
