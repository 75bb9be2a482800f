/// Checks the desired state an apply would leave: every object's acted-on fields, the
/// references between objects, the catalog, downgrades and the kubelet skew. Problems are
/// reported on the input manifest responsible (its file, document and field line).
struct Validator {
    let after: [ObjectKey: DesiredObject]
    let before: [ObjectKey: DesiredObject]
    let inputs: [ObjectKey: Manifest]
    var errors: [ManifestError] = []
    private var typed: [ObjectKey: DesiredSpec] = [:]
    private var deploymentsByCluster: [ObjectKey: [ObjectKey]] = [:]

    init(after: [ObjectKey: DesiredObject], before: [ObjectKey: DesiredObject], inputs: [ObjectKey: Manifest]) {
        self.after = after
        self.before = before
        self.inputs = inputs
    }

    mutating func report(_ key: ObjectKey, _ field: String?, _ code: ManifestError.Code, _ reason: String) {
        if let manifest = inputs[key] {
            errors.append(manifest.error(code, field: field, reason))
        } else {
            errors.append(ManifestError(code, file: "(applied state)", object: key.description, field: field, reason: reason))
        }
    }

    mutating func run() {
        for key in after.keys.sorted() {
            let object = after[key]!
            var problems: [(String, ManifestError.Code, String)] = []
            let spec = object.typed { problems.append(($0, $1, $2)) }
            // Objects already applied were valid when applied; only inputs report field problems.
            if inputs[key] != nil {
                for (field, code, reason) in problems { report(key, field, code, reason) }
            }
            if let spec { typed[key] = spec }
        }
        guard errors.isEmpty else { return }
        for key in inputs.keys.sorted() { checkReferences(key) }
        guard errors.isEmpty else { return }
        let touched = touchedClusters()
        // Each cluster's deployments, found once (a scan and sort per cluster was quadratic).
        for (mdKey, spec) in typed.sorted(by: { $0.key < $1.key }) {
            guard case .machineDeployment(let deployment) = spec else { continue }
            deploymentsByCluster[ObjectKey(kind: "Cluster", namespace: mdKey.namespace, name: deployment.clusterName), default: []]
                .append(mdKey)
        }
        for key in after.keys.sorted() where key.kind == "Cluster" && touched.contains(key) { checkVersions(cluster: key) }
    }

    /// The Clusters whose version rules the input can change: those it contains, and those
    /// owning an object it contains (computed once: asked per cluster with a scan of every
    /// input and object, it was cubic in the size of the apply).
    func touchedClusters() -> Set<ObjectKey> {
        let membership = ClusterMembership(after)
        var touched = Set<ObjectKey>()
        for input in inputs.keys {
            for name in membership.clusters(of: input) {
                touched.insert(ObjectKey(kind: "Cluster", namespace: input.namespace, name: name))
            }
        }
        return touched
    }

    mutating func require(_ from: ObjectKey, _ field: String, _ ref: ObjectReference?, kinds: [String]) {
        guard let ref else {
            report(from, field, .invalidValue, "is required")
            return
        }
        guard kinds.contains(ref.kind) else {
            report(from, field + ".kind", .unresolvedReference,
                   "\(ref.kind) is not a kind Capstan drives here; use \(kinds.joined(separator: " or "))")
            return
        }
        let namespace = ref.namespace ?? from.namespace
        let target = ObjectKey(kind: ref.kind, namespace: namespace, name: ref.name)
        if namespace != from.namespace {
            report(from, field + ".namespace", .unresolvedReference, "must be the object's own namespace \(from.namespace), got \(namespace)")
        } else if after[target] == nil {
            report(from, field, .unresolvedReference,
                   "\(target) does not exist in namespace \(namespace) (not in the input, not applied before)")
        }
    }

    mutating func checkReferences(_ key: ObjectKey) {
        switch typed[key] {
        case .cluster(let cluster):
            require(key, "spec.controlPlaneRef", cluster.controlPlaneRef, kinds: ["KamajiControlPlane"])
            if let ref = cluster.infrastructureRef {
                require(key, "spec.infrastructureRef", ref, kinds: ["KubevirtCluster"])
            }
        case .machineDeployment(let deployment):
            requireCluster(key, deployment.clusterName)
            if let ref = deployment.bootstrapConfigRef {
                require(key, "spec.template.spec.bootstrap.configRef", ref, kinds: ["KubeadmConfigTemplate"])
            }
            require(key, "spec.template.spec.infrastructureRef", deployment.infrastructureRef, kinds: ["KubevirtMachineTemplate"])
            if deployment.version == nil {
                report(key, "spec.template.spec.version", .invalidValue, "is required (the workers' Kubernetes version)")
            }
        case .healthCheck(let check):
            requireCluster(key, check.clusterName)
        default:
            break
        }
    }

    mutating func requireCluster(_ key: ObjectKey, _ name: String) {
        if after[ObjectKey(kind: "Cluster", namespace: key.namespace, name: name)] == nil {
            report(key, "spec.clusterName", .unresolvedReference, "Cluster/\(name) does not exist in namespace \(key.namespace)")
        }
    }

    mutating func checkVersions(cluster key: ObjectKey) {
        guard case .cluster(let cluster)? = typed[key], let ref = cluster.controlPlaneRef else { return }
        let controlPlaneKey = ObjectKey(kind: ref.kind, namespace: key.namespace, name: ref.name)
        guard case .controlPlane(let controlPlane)? = typed[controlPlaneKey] else { return }
        let catalogKey = ObjectKey(kind: "VersionCatalog", namespace: key.namespace, name: cluster.versionCatalog)
        guard case .versionCatalog(let catalog)? = typed[catalogKey] else {
            report(inputs[controlPlaneKey] != nil ? controlPlaneKey : key, nil, .versionNotInCatalog,
                   "no VersionCatalog \(cluster.versionCatalog) in namespace \(key.namespace) for Cluster/\(key.name)"
                   + " (name another with the annotation \(versionCatalogAnnotation))")
            return
        }
        func notInCatalog(_ version: KubernetesVersion) -> String {
            "\(version) is not in VersionCatalog/\(catalogKey.name) (\(catalog.versions.map(\.description).joined(separator: ", ")))"
        }
        let inputKeys = Set(inputs.keys)
        func blame(_ object: ObjectKey) -> ObjectKey {
            inputKeys.contains(object) ? object : (inputKeys.contains(catalogKey) ? catalogKey : object)
        }
        if !catalog.contains(controlPlane.version) {
            report(blame(controlPlaneKey), "spec.version", .versionNotInCatalog, notInCatalog(controlPlane.version))
        }
        if let old = before[controlPlaneKey], case .controlPlane(let previous)? = old.typed(report: { _, _, _ in }),
            controlPlane.version < previous.version
        {
            report(controlPlaneKey, "spec.version", .downgrade,
                   "\(controlPlane.version) is older than the applied \(previous.version): Capstan never downgrades")
        }
        for mdKey in deploymentsByCluster[key] ?? [] {
            guard case .machineDeployment(let deployment)? = typed[mdKey], let version = deployment.version else { continue }
            let field = "spec.template.spec.version"
            if !catalog.contains(version) {
                report(blame(mdKey), field, .versionNotInCatalog, notInCatalog(version))
            }
            if let old = before[mdKey], case .machineDeployment(let previous)? = old.typed(report: { _, _, _ in }),
                let previousVersion = previous.version, version < previousVersion
            {
                report(mdKey, field, .downgrade, "\(version) is older than the applied \(previousVersion): Capstan never downgrades")
            }
            if version > controlPlane.version {
                report(inputs[mdKey] != nil ? mdKey : controlPlaneKey, inputs[mdKey] != nil ? field : "spec.version", .versionSkew,
                       "workers of MachineDeployment/\(mdKey.name) at \(version) would be newer than the control plane at \(controlPlane.version)")
            }
        }
    }
}
