/// One kind of object the simulator serves: its group, version, plural name and Kind.
struct ResourceType: Sendable, Hashable {
    var group: String
    var version: String
    /// The plural resource name in URLs (`pods`, `tenantcontrolplanes`).
    var name: String
    var singular: String
    var kind: String
    var namespaced: Bool
    var shortNames: [String]
    /// Has a `/status` subresource: the main endpoint ignores status, `/status` ignores the rest.
    var hasStatus: Bool
    var categories: [String] = []

    var groupVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
    /// `pods`, or `virtualmachines.kubevirt.io`, as Status messages name a resource.
    var qualifiedName: String { group.isEmpty ? name : "\(name).\(group)" }
    var listKind: String { kind + "List" }

    static let allVerbs: [JSON] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
}

extension ResourceType {
    static let namespaces = ResourceType(
        group: "", version: "v1", name: "namespaces", singular: "namespace", kind: "Namespace", namespaced: false,
        shortNames: ["ns"], hasStatus: true)
    static let nodes = ResourceType(
        group: "", version: "v1", name: "nodes", singular: "node", kind: "Node", namespaced: false,
        shortNames: ["no"], hasStatus: true)
    static let pods = ResourceType(
        group: "", version: "v1", name: "pods", singular: "pod", kind: "Pod", namespaced: true, shortNames: ["po"],
        hasStatus: true, categories: ["all"])
    static let secrets = ResourceType(
        group: "", version: "v1", name: "secrets", singular: "secret", kind: "Secret", namespaced: true,
        shortNames: [], hasStatus: false)
    static let configMaps = ResourceType(
        group: "", version: "v1", name: "configmaps", singular: "configmap", kind: "ConfigMap", namespaced: true,
        shortNames: ["cm"], hasStatus: false)
    static let podDisruptionBudgets = ResourceType(
        group: "policy", version: "v1", name: "poddisruptionbudgets", singular: "poddisruptionbudget",
        kind: "PodDisruptionBudget", namespaced: true, shortNames: ["pdb"], hasStatus: true)
    static let leases = ResourceType(
        group: "coordination.k8s.io", version: "v1", name: "leases", singular: "lease", kind: "Lease",
        namespaced: true, shortNames: [], hasStatus: false)
    static let virtualMachines = ResourceType(
        group: "kubevirt.io", version: "v1", name: "virtualmachines", singular: "virtualmachine",
        kind: "VirtualMachine", namespaced: true, shortNames: ["vm", "vms"], hasStatus: true, categories: ["all"])
    static let virtualMachineInstances = ResourceType(
        group: "kubevirt.io", version: "v1", name: "virtualmachineinstances", singular: "virtualmachineinstance",
        kind: "VirtualMachineInstance", namespaced: true, shortNames: ["vmi", "vmis"], hasStatus: true,
        categories: ["all"])
    static let tenantControlPlanes = ResourceType(
        group: "kamaji.clastix.io", version: "v1alpha1", name: "tenantcontrolplanes", singular: "tenantcontrolplane",
        kind: "TenantControlPlane", namespaced: true, shortNames: ["tcp"], hasStatus: true)

    /// What the management cluster serves: the core kinds plus KubeVirt and Kamaji.
    static let management: [ResourceType] = [
        .namespaces, .nodes, .pods, .secrets, .configMaps, .podDisruptionBudgets, .leases, .virtualMachines,
        .virtualMachineInstances, .tenantControlPlanes,
    ]
    /// What a workload cluster serves.
    static let workload: [ResourceType] = [
        .namespaces, .nodes, .pods, .secrets, .configMaps, .podDisruptionBudgets, .leases,
    ]
}

/// The set of resources one cluster serves, indexed for routing.
struct ResourceCatalog: Sendable {
    let resources: [ResourceType]
    private let byPath: [String: ResourceType]

    init(_ resources: [ResourceType]) {
        self.resources = resources
        var byPath: [String: ResourceType] = [:]
        for resource in resources { byPath["\(resource.groupVersion)|\(resource.name)"] = resource }
        self.byPath = byPath
    }

    func resource(groupVersion: String, name: String) -> ResourceType? {
        byPath["\(groupVersion)|\(name)"]
    }

    /// Group versions in discovery order: core first, then groups by name.
    var groupVersions: [(group: String, version: String)] {
        var seen = Set<String>()
        var result: [(String, String)] = []
        for resource in resources.sorted(by: { ($0.group, $0.version) < ($1.group, $1.version) })
        where seen.insert(resource.groupVersion).inserted {
            result.append((resource.group, resource.version))
        }
        return result
    }

    func resources(group: String, version: String) -> [ResourceType] {
        resources.filter { $0.group == group && $0.version == version }
    }
}
