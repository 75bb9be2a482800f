/// Which object: its kind, namespace and name (API versions of one kind name one object).
public struct ObjectKey: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public var kind: String
    public var namespace: String
    public var name: String

    public init(kind: String, namespace: String, name: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    /// `MachineDeployment/md-0` (kubectl's spelling).
    public var description: String { "\(kind)/\(name)" }

    /// The projection key of the object's applied form.
    var stateKey: String { "\(FleetStateKey.objectPrefix)\(namespace)/\(kind)/\(name)" }

    public static func < (lhs: ObjectKey, rhs: ObjectKey) -> Bool {
        (lhs.namespace, lhs.kind, lhs.name) < (rhs.namespace, rhs.kind, rhs.name)
    }
}

/// An object as applied: what `apply` recorded last for it.
public struct DesiredObject: Hashable, Codable, Sendable {
    public var key: ObjectKey
    public var apiVersion: String
    /// apiVersion, kind, metadata (name, namespace, labels, annotations) and spec.
    public var object: ManifestValue

    public init(key: ObjectKey, apiVersion: String, object: ManifestValue) {
        self.key = key
        self.apiVersion = apiVersion
        self.object = object
    }

    init(_ manifest: Manifest) {
        self.init(
            key: ObjectKey(kind: manifest.kind.kind, namespace: manifest.namespace, name: manifest.name),
            apiVersion: manifest.kind.apiVersion, object: manifest.object)
    }

    var annotations: [String: ManifestValue] { object.value(at: "metadata.annotations")?.objectValue ?? [:] }
    /// `metadata.labels` (string values only, as Kubernetes allows).
    public var labels: [String: String] {
        (object.value(at: "metadata.labels")?.objectValue ?? [:]).compactMapValues(\.stringValue)
    }
    func spec(_ path: String) -> ManifestValue? { object.value(at: "spec." + path) }
}

/// A reference from one object to another (`controlPlaneRef`, `infrastructureRef`, `configRef`).
public struct ObjectReference: Hashable, Codable, Sendable {
    public var kind: String
    public var name: String
    public var namespace: String?

    init?(_ value: ManifestValue?) {
        guard let kind = value?["kind"]?.stringValue, let name = value?["name"]?.stringValue else { return nil }
        self.kind = kind
        self.name = name
        self.namespace = value?["namespace"]?.stringValue
    }
}

/// The fields of the fleet's kinds that Capstan acts on, read from an applied object into
/// one model whatever the API version (v1beta1 and v1beta2 spell some differently).
public enum DesiredSpec: Hashable, Sendable {
    public struct Cluster: Hashable, Sendable {
        public var controlPlaneRef: ObjectReference?
        public var infrastructureRef: ObjectReference?
        public var paused: Bool
        /// The VersionCatalog named by the annotation `capstan.dev/version-catalog`, else `default`.
        public var versionCatalog: String
    }

    public struct ControlPlane: Hashable, Sendable {
        public var version: KubernetesVersion
        public var replicas: Int?
        public var dataStoreName: String?
    }

    public enum Strategy: String, Hashable, Sendable, Codable {
        case rollingUpdate = "RollingUpdate"
        case onDelete = "OnDelete"
    }

    public enum DeletionOrder: String, Hashable, Sendable, Codable, CaseIterable {
        case random = "Random"
        case newest = "Newest"
        case oldest = "Oldest"
    }

    public struct MachineDeployment: Hashable, Sendable {
        public var clusterName: String
        /// Default 1, as CAPI defaults it.
        public var replicas: Int
        public var version: KubernetesVersion?
        public var bootstrapConfigRef: ObjectReference?
        public var infrastructureRef: ObjectReference?
        public var strategy: Strategy
        public var maxSurge: IntOrPercent
        public var maxUnavailable: IntOrPercent
        public var deletionOrder: DeletionOrder
    }

    public struct HealthCheck: Hashable, Sendable {
        public struct Condition: Hashable, Sendable {
            public var type: String
            public var status: String
            public var timeout: GoDuration
        }
        public var clusterName: String
        public var nodeStartupTimeout: GoDuration?
        public var unhealthyNodeConditions: [Condition]
        public var maxUnhealthy: IntOrPercent?
        public var unhealthyRange: String?
    }

    case cluster(Cluster)
    case controlPlane(ControlPlane)
    case machineDeployment(MachineDeployment)
    case healthCheck(HealthCheck)
    case versionCatalog(VersionCatalog)
    /// KubevirtCluster, KubevirtMachineTemplate, KubeadmConfigTemplate: used whole.
    case template
}

/// The annotation naming a cluster's VersionCatalog.
public let versionCatalogAnnotation = "capstan.dev/version-catalog"

extension DesiredObject {
    /// The acted-on fields of an applied object (which `apply` validated), nil when they do
    /// not read: what the fleet controller plans from.
    public var desiredSpec: DesiredSpec? { typed(report: { _, _, _ in }) }

    /// The object's annotations (`metadata.annotations`).
    public var metadataAnnotations: [String: String] { annotations.compactMapValues(\.stringValue) }

    /// Reads the acted-on fields; each problem goes to `report(field, code, reason)`.
    func typed(report: (String, ManifestError.Code, String) -> Void) -> DesiredSpec? {
        let beta1 = apiVersion.hasSuffix("/v1beta1")
        switch key.kind {
        case "Cluster":
            let catalog = annotations[versionCatalogAnnotation]?.stringValue ?? "default"
            return .cluster(.init(
                controlPlaneRef: ObjectReference(spec("controlPlaneRef")),
                infrastructureRef: ObjectReference(spec("infrastructureRef")),
                paused: spec("paused")?.boolValue ?? false, versionCatalog: catalog))
        case "KamajiControlPlane":
            guard let text = spec("version")?.stringValue else {
                report("spec.version", .invalidValue, "is required")
                return nil
            }
            guard let version = parse(text, field: "spec.version", report: report) else { return nil }
            let replicas = spec("replicas")?.integerValue.map { Int($0) }
            if let replicas, replicas < 0 {
                report("spec.replicas", .invalidValue, "must not be negative, got \(replicas)")
            }
            return .controlPlane(.init(version: version, replicas: replicas, dataStoreName: spec("dataStoreName")?.stringValue))
        case "MachineDeployment":
            return machineDeployment(beta1: beta1, report: report).map(DesiredSpec.machineDeployment)
        case "MachineHealthCheck":
            return healthCheck(beta1: beta1, report: report).map(DesiredSpec.healthCheck)
        case "VersionCatalog":
            var entries: [VersionCatalog.Entry] = []
            for (index, item) in (spec("versions")?.arrayValue ?? []).enumerated() {
                let field = "spec.versions[\(index)].version"
                guard let text = item["version"]?.stringValue else {
                    report(field, .invalidValue, "is required")
                    continue
                }
                guard let version = parse(text, field: field, report: report) else { continue }
                entries.append(.init(version: version, machineImage: item["machineImage"]?.stringValue))
            }
            do { return .versionCatalog(try VersionCatalog(entries: entries)) } catch {
                report("spec.versions", .invalidValue, "\(error)")
                return nil
            }
        default:
            return .template
        }
    }

    private func parse(_ text: String, field: String, report: (String, ManifestError.Code, String) -> Void) -> KubernetesVersion? {
        do { return try KubernetesVersion(parsing: text) } catch {
            report(field, .invalidValue, "\(error)")
            return nil
        }
    }

    private func machineDeployment(
        beta1: Bool, report: (String, ManifestError.Code, String) -> Void
    ) -> DesiredSpec.MachineDeployment? {
        guard let clusterName = spec("clusterName")?.stringValue else {
            report("spec.clusterName", .invalidValue, "is required")
            return nil
        }
        let replicas = Int(spec("replicas")?.integerValue ?? 1)
        if replicas < 0 { report("spec.replicas", .invalidValue, "must not be negative, got \(replicas)") }
        var version: KubernetesVersion?
        if let text = spec("template.spec.version")?.stringValue {
            version = parse(text, field: "spec.template.spec.version", report: report)
        }
        let strategyRoot = beta1 ? "spec.strategy" : "spec.rollout.strategy"
        let strategyText = object.value(at: strategyRoot + ".type")?.stringValue ?? "RollingUpdate"
        guard let strategy = DesiredSpec.Strategy(rawValue: strategyText) else {
            report(strategyRoot + ".type", .invalidValue, "must be RollingUpdate or OnDelete, got \"\(strategyText)\"")
            return nil
        }
        func intOrPercent(_ name: String, default value: IntOrPercent) -> IntOrPercent {
            let field = strategyRoot + ".rollingUpdate." + name
            switch object.value(at: field) {
            case .integer(let count)?:
                do { return try IntOrPercent(checkedCount: Int(count)) } catch { report(field, .invalidValue, "\(error)") }
            case .string(let text)?:
                do { return try IntOrPercent(parsing: text) } catch { report(field, .invalidValue, "\(error)") }
            default: break
            }
            return value
        }
        let maxSurge = intOrPercent("maxSurge", default: .count(1))
        let maxUnavailable = intOrPercent("maxUnavailable", default: .count(0))
        if strategy == .rollingUpdate, maxSurge.isZero, maxUnavailable.isZero {
            report(strategyRoot + ".rollingUpdate", .invalidValue,
                   "maxSurge and maxUnavailable must not both be 0 (no machine could ever be replaced)")
        }
        let orderField = beta1 ? "spec.strategy.rollingUpdate.deletePolicy" : "spec.deletion.order"
        let orderText = object.value(at: orderField)?.stringValue ?? "Random"
        let order = DesiredSpec.DeletionOrder(rawValue: orderText)
        if order == nil {
            report(orderField, .invalidValue, "must be Random, Newest or Oldest, got \"\(orderText)\"")
        }
        let bootstrapRef = beta1 ? spec("template.spec.bootstrap.configRef") : spec("template.spec.bootstrap.configRef")
        return .init(
            clusterName: clusterName, replicas: replicas, version: version,
            bootstrapConfigRef: ObjectReference(bootstrapRef),
            infrastructureRef: ObjectReference(spec("template.spec.infrastructureRef")),
            strategy: strategy, maxSurge: maxSurge, maxUnavailable: maxUnavailable, deletionOrder: order ?? .random)
    }

    private func healthCheck(beta1: Bool, report: (String, ManifestError.Code, String) -> Void) -> DesiredSpec.HealthCheck? {
        guard let clusterName = spec("clusterName")?.stringValue else {
            report("spec.clusterName", .invalidValue, "is required")
            return nil
        }
        func duration(_ field: String, in value: ManifestValue? = nil) -> GoDuration? {
            // `value(at:)` walks maps only: a list item's field is read from the item itself.
            guard let text = (value ?? object.value(at: field))?.stringValue else { return nil }
            do { return try GoDuration(parsing: text) } catch {
                report(field, .invalidValue, "\(error)")
                return nil
            }
        }
        var conditions: [DesiredSpec.HealthCheck.Condition] = []
        var startup: GoDuration?
        var maxUnhealthyField: String
        var rangeField: String
        if beta1 {
            startup = duration("spec.nodeStartupTimeout")
            for (index, item) in (spec("unhealthyConditions")?.arrayValue ?? []).enumerated() {
                let timeout = duration("spec.unhealthyConditions[\(index)].timeout", in: item["timeout"]) ?? GoDuration(seconds: 0)
                conditions.append(.init(type: item["type"]?.stringValue ?? "", status: item["status"]?.stringValue ?? "", timeout: timeout))
            }
            maxUnhealthyField = "spec.maxUnhealthy"
            rangeField = "spec.unhealthyRange"
        } else {
            startup = spec("checks.nodeStartupTimeoutSeconds")?.integerValue.map { GoDuration(seconds: $0) }
            for item in spec("checks.unhealthyNodeConditions")?.arrayValue ?? [] {
                let seconds = item["timeoutSeconds"]?.integerValue ?? 0
                conditions.append(.init(type: item["type"]?.stringValue ?? "", status: item["status"]?.stringValue ?? "",
                                        timeout: GoDuration(seconds: seconds)))
            }
            maxUnhealthyField = "spec.remediation.triggerIf.unhealthyLessThanOrEqualTo"
            rangeField = "spec.remediation.triggerIf.unhealthyInRange"
        }
        var maxUnhealthy: IntOrPercent?
        switch object.value(at: maxUnhealthyField) {
        case .integer(let count)?: maxUnhealthy = try? IntOrPercent(checkedCount: Int(count))
        case .string(let text)?:
            do { maxUnhealthy = try IntOrPercent(parsing: text) } catch { report(maxUnhealthyField, .invalidValue, "\(error)") }
        default: break
        }
        let range = object.value(at: rangeField)?.stringValue
        if let range, !Self.isRange(range) {
            report(rangeField, .invalidValue, "must be a range \"[min-max]\" of counts, got \"\(range)\"")
        }
        return .init(clusterName: clusterName, nodeStartupTimeout: startup, unhealthyNodeConditions: conditions,
                     maxUnhealthy: maxUnhealthy, unhealthyRange: range)
    }

    /// `[3-5]`: MachineHealthCheck's unhealthy range (minimum not above maximum).
    static func isRange(_ text: String) -> Bool {
        guard text.hasPrefix("["), text.hasSuffix("]") else { return false }
        let parts = text.dropFirst().dropLast().split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let low = Int(parts[0]), let high = Int(parts[1]) else { return false }
        return low >= 0 && low <= high
    }
}
