/// `capstan upgrade NAME --to VERSION`: the intent that a cluster's control plane, then its
/// workers, reach `version`. Checked like an apply: the cluster and its control plane exist,
/// the version is in the cluster's catalog, and it is no downgrade.
enum UpgradeRequest {
    static func plan(
        namespace: String, cluster: String, version: KubernetesVersion, current: DesiredSnapshot, source: ChangeSource
    ) throws -> DesiredStatePlan {
        func fail(_ code: ManifestError.Code, _ reason: String) -> ManifestErrors {
            ManifestErrors(errors: [ManifestError(code, file: "-", object: "Cluster/\(cluster)", field: "--to", reason: reason)])
        }
        let clusterKey = ObjectKey(kind: "Cluster", namespace: namespace, name: cluster)
        guard let clusterObject = current.objects[clusterKey],
            case .cluster(let spec)? = clusterObject.typed(report: { _, _, _ in })
        else {
            throw fail(.notFound, "no Cluster \(cluster) in namespace \(namespace) (apply it first)")
        }
        guard let ref = spec.controlPlaneRef,
            let controlPlaneObject = current.objects[ObjectKey(kind: ref.kind, namespace: namespace, name: ref.name)],
            case .controlPlane(let controlPlane)? = controlPlaneObject.typed(report: { _, _, _ in })
        else {
            throw fail(.unresolvedReference, "Cluster/\(cluster) has no applied control plane")
        }
        let catalogKey = ObjectKey(kind: "VersionCatalog", namespace: namespace, name: spec.versionCatalog)
        guard let catalogObject = current.objects[catalogKey], case .versionCatalog(let catalog)? = catalogObject.typed(report: { _, _, _ in }) else {
            throw fail(.versionNotInCatalog, "no VersionCatalog \(spec.versionCatalog) in namespace \(namespace)")
        }
        guard catalog.contains(version) else {
            throw fail(.versionNotInCatalog,
                       "\(version) is not in VersionCatalog/\(catalogKey.name) (\(catalog.versions.map(\.description).joined(separator: ", ")))")
        }
        guard version >= controlPlane.version else {
            throw fail(.downgrade, "\(version) is older than the control plane's \(controlPlane.version): Capstan never downgrades")
        }
        let item = DesiredStatePlan.Item(key: clusterKey, change: .configured, file: "-", notActedOn: [])
        return DesiredStatePlan(
            items: [item], events: [.upgradeRequested(namespace: namespace, cluster: cluster, version: version, source: source)],
            revisions: current.revisions)
    }
}
