import Foundation
import Hummingbird

/// The `/_sim/...` endpoints: what a test or benchmark asks of the simulator itself.
/// They need the management cluster's token and are never faulted. Shapes are in the README.
struct SimControls {
    let simulation: Simulation

    func handle(method: HTTPRequest.Method, segments: [String], query: QueryParameters, body: [UInt8]) throws -> Response {
        switch (method, segments.first ?? "") {
        case (.get, "ledger"):
            return .json(200, ledger(query))
        case (.get, "faults"):
            return .json(200, simulation.faults.current.json)
        case (.put, "faults"):
            let configuration: FaultConfiguration
            do {
                configuration = try FaultConfiguration(json: try JSON.parse(body))
            } catch let error as FaultConfigurationError {
                throw APIError.badRequest(error.description)
            }
            simulation.faults.set(configuration)
            return .json(200, configuration.json)
        case (.get, "delays"):
            return .json(200, simulation.delays.withLock { $0 }.json)
        case (.put, "delays"):
            let delays = try ControllerDelays(json: try JSON.parse(body))
            simulation.delays.withLock { $0 = delays }
            return .json(200, delays.json)
        case (.get, "extension"):
            return .json(200, simulation.extensionPolicy.withLock { $0 }.json)
        case (.put, "extension"):
            let policy = try UpdateExtensionPolicy(json: try JSON.parse(body))
            simulation.extensionPolicy.withLock { $0 = policy }
            return .json(200, policy.json)
        case (.get, "clusters"):
            return .json(200, clusters())
        case (.post, "node-readiness"):
            return .json(200, try setNodeReadiness(try JSON.parse(body)))
        case (.post, "pdb-block"):
            try blockBudget(try JSON.parse(body))
            return .json(200, ["status": "Success"])
        case (.post, "pdb-release"):
            try releaseBudget(try JSON.parse(body))
            return .json(200, ["status": "Success"])
        case (.post, "in-place-complete"):
            return .json(200, try completeInPlaceUpdate(try JSON.parse(body)))
        case (.get, "watches"):
            return .json(200, try watches(query))
        default:
            throw APIError.pathNotFound("/_sim/" + segments.joined(separator: "/"))
        }
    }

    private func ledger(_ query: QueryParameters) -> JSON {
        let after = query["after"].flatMap { Int64($0) } ?? 0
        let entries = simulation.ledger.entries(after: after).filter { entry in
            (query["cluster"].map { $0 == entry.cluster } ?? true) && (query["resource"].map { $0 == entry.resource } ?? true)
                && (query["namespace"].map { $0 == entry.namespace } ?? true)
                && (query["name"].map { $0 == entry.name } ?? true) && (query["verb"].map { $0 == entry.verb } ?? true)
                && (query["actor"].map { $0 == entry.actor } ?? true)
        }
        return ["kind": "Ledger", "count": .int(Int64(entries.count)), "entries": .array(entries.map(\.json))]
    }

    private func clusters() -> JSON {
        .object([
            "clusters": .array(
                simulation.workloadClusters.map { cluster in
                    [
                        "namespace": .string(cluster.namespace), "name": .string(cluster.name),
                        "version": .string(cluster.version.withLock { $0 }),
                        "server": .string(simulation.kubeconfig(for: cluster).server),
                        "caCertHash": .string(cluster.certificates.caPublicKeyHash),
                        "kubeconfig": .string(simulation.workloadKubeconfigPath(namespace: cluster.namespace, name: cluster.name)),
                        "nodes": .int(Int64(cluster.store.list(.nodes, namespace: nil).items.count)),
                    ]
                })
        ])
    }

    private func workload(_ body: JSON) throws -> WorkloadCluster {
        guard let id = body["cluster"]?.stringValue else { throw APIError.badRequest("\"cluster\" (namespace/name) is required") }
        let parts = id.split(separator: "/").map(String.init)
        guard parts.count == 2, let cluster = simulation.workload(namespace: parts[0], name: parts[1]) else {
            throw APIError.notFound(.tenantControlPlanes, name: id)
        }
        return cluster
    }

    /// `{"cluster": "ns/name", "node": "n", "ready": false}`: flips the Node's Ready condition.
    /// `{"cluster": "ns/name", "node": "n" | "nodes": ["n1", "n2"], "ready": bool}`: several
    /// Nodes flip with one transition time (the API server's is whole seconds), so a test can
    /// make them cross a health-check timeout together.
    private func setNodeReadiness(_ body: JSON) throws -> JSON {
        let cluster = try workload(body)
        let names = body["nodes"]?.arrayValue?.compactMap(\.stringValue) ?? body["node"].flatMap(\.stringValue).map { [$0] } ?? []
        guard !names.isEmpty, let ready = body["ready"]?.boolValue else {
            throw APIError.badRequest("\"node\" (string) or \"nodes\" (strings), and \"ready\" (bool) are required")
        }
        let now = Date()
        var updated: [JSON] = []
        for node in names {
            guard
                let object = try cluster.store.mutate(
                    .nodes, namespace: nil, name: node, subresource: "status", options: .controller("node-lifecycle"),
                    { object in NodeStatus.setReady(&object, ready: ready, reason: ready ? "KubeletReady" : "KubeSimNotReady", at: now) })
            else { throw APIError.notFound(.nodes, name: node) }
            updated.append(object)
        }
        return updated.count == 1 && body["nodes"] == nil ? updated[0] : ["kind": "List", "items": .array(updated)]
    }

    /// `{"cluster": "ns/name" (omit for management), "namespace": "ns", "name": "pdb", "seconds": 30}`.
    private func blockBudget(_ body: JSON) throws {
        let store = body["cluster"] == nil ? simulation.management : try workload(body).store
        guard let namespace = body["namespace"]?.stringValue, let name = body["name"]?.stringValue,
            let seconds = body["seconds"]?.doubleValue, seconds >= 0
        else { throw APIError.badRequest("\"namespace\", \"name\" and \"seconds\" (>= 0) are required") }
        _ = try store.get(.podDisruptionBudgets, namespace: namespace, name: name)
        store.blockBudget(namespace: namespace, name: name, until: Date().addingTimeInterval(seconds))
    }

    /// `{"cluster": "ns/name" (omit for management), "namespace": "ns", "name": "pdb"}`: ends a
    /// `pdb-block` now, so a test needs no clock to see the budget allow again.
    private func releaseBudget(_ body: JSON) throws {
        let store = body["cluster"] == nil ? simulation.management : try workload(body).store
        guard let namespace = body["namespace"]?.stringValue, let name = body["name"]?.stringValue else {
            throw APIError.badRequest("\"namespace\" and \"name\" are required")
        }
        _ = try store.get(.podDisruptionBudgets, namespace: namespace, name: name)
        store.blockBudget(namespace: namespace, name: name, until: .distantPast)
    }

    /// `{"cluster": "ns/name", "node": "n"}`: the in-place kubelet update running on that Node
    /// counts as finished, so the next `updatemachine` poll completes it (no clock needed).
    private func completeInPlaceUpdate(_ body: JSON) throws -> JSON {
        let cluster = try workload(body)
        guard let node = body["node"]?.stringValue else { throw APIError.badRequest("\"node\" (string) is required") }
        let key = "\(cluster.id)/\(node)"
        let target = simulation.inPlaceUpdates.withLock { updates -> KubeVersion? in
            guard var update = updates[key] else { return nil }
            update.startedAt = .distantPast
            updates[key] = update
            return update.target
        }
        guard let target else { throw APIError.notFound(.nodes, name: node) }
        return ["status": "Success", "node": .string(node), "target": .string(target.description)]
    }

    /// `?cluster=ns/name` (omit for management): the open watch streams, in all and per resource,
    /// so a test can tell a watch is registered before it changes anything.
    private func watches(_ query: QueryParameters) throws -> JSON {
        let store: ClusterStore
        if let id = query["cluster"] { store = try workload(["cluster": .string(id)]).store } else { store = simulation.management }
        let counts = store.openWatchCounts()
        return [
            "kind": "Watches", "count": .int(Int64(counts.values.reduce(0, +))),
            "resources": .object(counts.mapValues { .int(Int64($0)) }),
        ]
    }
}

extension ControllerDelays {
    var json: JSON {
        [
            "virtualMachineReadyMilliseconds": .int(virtualMachineReady.milliseconds),
            "nodeJoinMilliseconds": .int(nodeJoin.milliseconds),
            "controlPlaneProvisionMilliseconds": .int(controlPlaneProvision.milliseconds),
            "controlPlaneUpgradeMilliseconds": .int(controlPlaneUpgrade.milliseconds),
            "inPlaceUpdateMilliseconds": .int(inPlaceUpdate.milliseconds), "jitter": .double(jitter),
        ]
    }

    /// Reads the `/_sim/delays` shape; missing fields keep their defaults.
    init(json: JSON) throws {
        self.init()
        func duration(_ key: String) throws -> Duration? {
            guard let value = json[key] else { return nil }
            guard let milliseconds = value.intValue, milliseconds >= 0 else {
                throw APIError.badRequest("delays: \(key): must be a non-negative integer")
            }
            return .milliseconds(milliseconds)
        }
        virtualMachineReady = try duration("virtualMachineReadyMilliseconds") ?? virtualMachineReady
        nodeJoin = try duration("nodeJoinMilliseconds") ?? nodeJoin
        controlPlaneProvision = try duration("controlPlaneProvisionMilliseconds") ?? controlPlaneProvision
        controlPlaneUpgrade = try duration("controlPlaneUpgradeMilliseconds") ?? controlPlaneUpgrade
        inPlaceUpdate = try duration("inPlaceUpdateMilliseconds") ?? inPlaceUpdate
        if let value = json["jitter"] {
            guard let jitter = value.doubleValue, jitter >= 0 else { throw APIError.badRequest("delays: jitter: must be >= 0") }
            self.jitter = jitter
        }
    }
}

extension UpdateExtensionPolicy {
    var json: JSON {
        ["allowMinorUpgrade": .bool(allowMinorUpgrade), "declineAll": .bool(declineAll), "failUpdates": .bool(failUpdates)]
    }

    init(json: JSON) throws {
        self.init()
        for key in ["allowMinorUpgrade", "declineAll", "failUpdates"] where json[key] != nil && json[key]?.boolValue == nil {
            throw APIError.badRequest("extension: \(key): must be a boolean")
        }
        allowMinorUpgrade = json["allowMinorUpgrade"]?.boolValue ?? false
        declineAll = json["declineAll"]?.boolValue ?? false
        failUpdates = json["failUpdates"]?.boolValue ?? false
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// Node object helpers shared by the controllers and `/_sim`.
enum NodeStatus {
    static func setReady(_ node: inout JSON, ready: Bool, reason: String, at time: Date = Date()) {
        let now = Timestamp.rfc3339(time)
        var conditions = node["status"]?["conditions"]?.arrayValue ?? []
        let status = ready ? "True" : "False"
        if let index = conditions.firstIndex(where: { $0["type"]?.stringValue == "Ready" }) {
            if conditions[index]["status"]?.stringValue != status {
                conditions[index]["lastTransitionTime"] = .string(now)
            }
            conditions[index]["status"] = .string(status)
            conditions[index]["reason"] = .string(reason)
            conditions[index]["message"] = .string(ready ? "kubelet is posting ready status" : "set NotReady by kube-sim")
            conditions[index]["lastHeartbeatTime"] = .string(now)
        } else {
            conditions.append([
                "type": "Ready", "status": .string(status), "reason": .string(reason),
                "message": .string(ready ? "kubelet is posting ready status" : "set NotReady by kube-sim"),
                "lastTransitionTime": .string(now), "lastHeartbeatTime": .string(now),
            ])
        }
        node[path: ["status", "conditions"]] = .array(conditions)
    }
}
