public import EventLog
import Foundation

extension FleetView {
    /// The MachineHealthChecks applied for cluster `name`, each resolved to the
    /// MachineDeployments whose machines its `spec.selector.matchLabels` matches.
    ///
    /// - Throws: reader errors; a projection that does not decode; ``DomainError`` for a
    ///   stored health check whose values do not read (apply refuses those).
    public static func healthChecks(_ reader: EventLogReader, namespace: String, cluster: String) throws -> [MachineHealthCheck] {
        var objects: [DesiredObject] = []
        for (_, value) in try reader.stateEntries(withPrefix: FleetStateKey.objectPrefix + namespace + "/") {
            objects.append(try JSONDecoder().decode(DesiredObject.self, from: Data(value)))
        }
        return try HealthChecks.resolve(objects, namespace: namespace, cluster: cluster)
    }
}

extension HealthChecks {
    /// The labels a MachineDeployment's machines carry, as CAPI gives them: the template's
    /// labels, the selector's (CAPI's webhook requires the template to carry them), and
    /// `cluster.x-k8s.io/cluster-name` and `cluster.x-k8s.io/deployment-name`.
    static func machineLabels(_ deployment: DesiredObject, cluster: String) -> [String: String] {
        var labels: [String: String] = [:]
        for path in ["spec.template.metadata.labels", "spec.selector.matchLabels"] {
            for (key, value) in deployment.object.value(at: path)?.objectValue ?? [:] {
                if let text = value.stringValue { labels[key] = text }
            }
        }
        labels["cluster.x-k8s.io/cluster-name"] = cluster
        labels["cluster.x-k8s.io/deployment-name"] = deployment.key.name
        return labels
    }

    static func resolve(_ objects: [DesiredObject], namespace: String, cluster: String) throws -> [MachineHealthCheck] {
        let deployments = objects.filter { object in
            guard object.key.namespace == namespace, object.key.kind == "MachineDeployment",
                case .machineDeployment(let spec)? = object.typed(report: { _, _, _ in })
            else { return false }
            return spec.clusterName == cluster
        }
        var checks: [MachineHealthCheck] = []
        for object in objects.sorted(by: { $0.key < $1.key }) where object.key.namespace == namespace && object.key.kind == "MachineHealthCheck" {
            guard case .healthCheck(let desired)? = object.typed(report: { _, _, _ in }), desired.clusterName == cluster else { continue }
            var selector: [String: String] = [:]
            for (key, value) in object.object.value(at: "spec.selector.matchLabels")?.objectValue ?? [:] {
                if let text = value.stringValue { selector[key] = text }
            }
            // An empty selector matches every machine of the cluster, as a label selector does.
            let matched = deployments.filter { deployment in
                let labels = machineLabels(deployment, cluster: cluster)
                return selector.allSatisfy { labels[$0.key] == $0.value }
            }
            checks.append(
                MachineHealthCheck(
                    namespace: namespace, name: object.key.name, clusterName: cluster, deployments: matched.map(\.key.name),
                    spec: try HealthCheckSpec(desired)))
        }
        return checks
    }
}

extension ClusterSummary {
    /// A cluster as the health checks see it: `observed` alone (the desired side left empty).
    public init(namespace: String, name: String, paused: Bool, observed: ObservedCluster) {
        var controlPlane = ControlPlane(ready: observed.controlPlane?.ready ?? false)
        controlPlane.installedVersion = observed.controlPlane?.installedVersion
        controlPlane.status = observed.controlPlane?.status
        controlPlane.initializedNanoseconds = observed.controlPlane?.initializedNanoseconds
        self.init(
            namespace: namespace, name: name, paused: paused, versionCatalog: "", controlPlane: controlPlane, deployments: [],
            machines: observed.machines.sorted { $0.key < $1.key }.map {
                Machine(
                    name: $0.key, deployment: $0.value.deployment, phase: $0.value.phase, version: $0.value.version,
                    conditions: $0.value.conditions, createdNanoseconds: $0.value.createdNanoseconds)
            },
            remediations: observed.remediations, shortCircuitedChecks: observed.shortCircuited)
    }
}
