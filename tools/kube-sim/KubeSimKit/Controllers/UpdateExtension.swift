import Foundation
import Hummingbird
import Synchronization

/// The in-place update extension, in Cluster API's Runtime SDK shape
/// (`hooks.runtime.cluster.x-k8s.io/v1alpha1`): it upgrades a Node's kubelet in place or declines.
///
/// - `POST /hooks.runtime.cluster.x-k8s.io/v1alpha1/discovery`
/// - `POST .../canupdatemachine/kube-sim`: the patch that covers a `spec.version` change (base64
///   RFC 6902 JSON patch), or empty patches when declining.
/// - `POST .../canupdatemachineset/kube-sim`: the same for `spec.template.spec.version`.
/// - `POST .../updatemachine/kube-sim`: `Success` with `retryAfterSeconds > 0` while the kubelet
///   update runs, `0` when the Node reports the desired version, `Failure` when refused.
///
/// The Machine's namespace and `spec.clusterName` name the TenantControlPlane (the workload
/// cluster); the Node is `spec.providerID` `kubevirt://<node>`, else the infrastructure machine's
/// name, else the Machine's name.
struct UpdateExtension {
    static let pathRoot = "hooks.runtime.cluster.x-k8s.io"
    static let apiVersion = "hooks.runtime.cluster.x-k8s.io/v1alpha1"
    static let handlerName = "kube-sim"

    let simulation: Simulation

    func handle(method: HTTPRequest.Method, segments: [String], body: [UInt8]) throws -> Response {
        guard segments.first == "v1alpha1" else { throw APIError.pathNotFound("/\(UpdateExtension.pathRoot)/" + segments.joined(separator: "/")) }
        let hook = segments.count > 1 ? segments[1] : ""
        if hook == "discovery" { return .json(200, discovery()) }
        guard method == .post, segments.count == 3, segments[2] == UpdateExtension.handlerName else {
            throw APIError.pathNotFound("/\(UpdateExtension.pathRoot)/" + segments.joined(separator: "/"))
        }
        let request = try JSON.parse(body)
        switch hook {
        case "canupdatemachine": return .json(200, canUpdateMachine(request))
        case "canupdatemachineset": return .json(200, canUpdateMachineSet(request))
        case "updatemachine": return .json(200, updateMachine(request))
        default: throw APIError.pathNotFound("/\(UpdateExtension.pathRoot)/v1alpha1/\(hook)")
        }
    }

    private func discovery() -> JSON {
        let handlers: [JSON] = ["CanUpdateMachine", "CanUpdateMachineSet", "UpdateMachine"].map { hook in
            [
                "name": .string(UpdateExtension.handlerName),
                "requestHook": ["apiVersion": .string(UpdateExtension.apiVersion), "hook": .string(hook)],
                "timeoutSeconds": 10, "failurePolicy": "Fail",
            ]
        }
        return [
            "apiVersion": .string(UpdateExtension.apiVersion), "kind": "DiscoveryResponse", "status": "Success",
            "handlers": .array(handlers),
        ]
    }

    private static func response(_ kind: String, status: String, message: String) -> JSON {
        ["apiVersion": .string(apiVersion), "kind": .string(kind), "status": .string(status), "message": .string(message)]
    }

    /// A `Patch` with its document base64-encoded, as Go's `[]byte` travels in JSON.
    private static func patch(_ operations: [JSON]) -> JSON {
        guard !operations.isEmpty else { return [:] }
        let document = JSON.array(operations).serializedBytes()
        return ["patchType": "JSONPatch", "patch": .string(Data(document).base64EncodedString())]
    }

    /// Why the extension declines a kubelet move from `current` to `desired`, or nil to accept.
    private func declineReason(current: KubeVersion?, desired: KubeVersion?, cluster: WorkloadCluster?) -> String? {
        let policy = simulation.extensionPolicy.withLock { $0 }
        if policy.declineAll { return "the extension is configured to decline every update" }
        guard let desired else { return "the desired Machine has no valid spec.version" }
        guard let current else { return "the current Machine has no valid spec.version" }
        if desired < current { return "in-place kubelet downgrades are not supported (\(current) to \(desired))" }
        if (desired.major, desired.minor) != (current.major, current.minor), !policy.allowMinorUpgrade {
            return "in-place minor kubelet upgrades are not supported (\(current) to \(desired)); replace the Machine"
        }
        if let cluster, let apiServer = KubeVersion(cluster.version.withLock { $0 }),
            let problem = SkewRules.runningSkewProblem(kubelet: desired, apiServer: apiServer)
        {
            return problem
        }
        return nil
    }

    private func canUpdateMachine(_ request: JSON) -> JSON {
        let current = request["current"]?["machine"]
        let desired = request["desired"]?["machine"]
        let currentVersion = current?["spec"]?["version"]?.stringValue.flatMap(KubeVersion.init)
        let desiredVersion = desired?["spec"]?["version"]?.stringValue.flatMap(KubeVersion.init)
        var result = UpdateExtension.response("CanUpdateMachineResponse", status: "Success", message: "")
        result["infrastructureMachinePatch"] = [:]
        result["bootstrapConfigPatch"] = [:]
        guard currentVersion != desiredVersion || current?["spec"]?["version"] != desired?["spec"]?["version"] else {
            result["machinePatch"] = [:]
            result["message"] = "no kubelet version change to handle"
            return result
        }
        if let reason = declineReason(current: currentVersion, desired: desiredVersion, cluster: cluster(of: desired ?? [:])) {
            result["machinePatch"] = [:]
            result["message"] = .string("declined: \(reason)")
            return result
        }
        result["machinePatch"] = UpdateExtension.patch([
            ["op": "replace", "path": "/spec/version", "value": desired?["spec"]?["version"] ?? .null]
        ])
        result["message"] = .string("kubelet \(currentVersion!) to \(desiredVersion!) can be updated in place")
        return result
    }

    private func canUpdateMachineSet(_ request: JSON) -> JSON {
        let current = request["current"]?["machineSet"]
        let desired = request["desired"]?["machineSet"]
        let path = ["spec", "template", "spec", "version"]
        let currentVersion = current?[path: path]?.stringValue.flatMap(KubeVersion.init)
        let desiredVersion = desired?[path: path]?.stringValue.flatMap(KubeVersion.init)
        var result = UpdateExtension.response("CanUpdateMachineSetResponse", status: "Success", message: "")
        result["infrastructureMachineTemplatePatch"] = [:]
        result["bootstrapConfigTemplatePatch"] = [:]
        let clusterName = desired?["spec"]?["clusterName"]?.stringValue ?? ""
        let cluster = simulation.workload(namespace: desired?.namespace ?? "", name: clusterName)
        if currentVersion == desiredVersion {
            result["machineSetPatch"] = [:]
            result["message"] = "no kubelet version change to handle"
        } else if let reason = declineReason(current: currentVersion, desired: desiredVersion, cluster: cluster) {
            result["machineSetPatch"] = [:]
            result["message"] = .string("declined: \(reason)")
        } else {
            result["machineSetPatch"] = UpdateExtension.patch([
                ["op": "replace", "path": "/spec/template/spec/version", "value": desired?[path: path] ?? .null]
            ])
            result["message"] = .string("kubelet \(currentVersion!) to \(desiredVersion!) can be updated in place")
        }
        return result
    }

    private func cluster(of machine: JSON) -> WorkloadCluster? {
        guard let clusterName = machine["spec"]?["clusterName"]?.stringValue else { return nil }
        return simulation.workload(namespace: machine.namespace ?? "", name: clusterName)
    }

    private static func nodeName(_ desired: JSON) -> String? {
        if let providerID = desired["machine"]?["spec"]?["providerID"]?.stringValue, providerID.hasPrefix("kubevirt://") {
            return String(providerID.dropFirst("kubevirt://".count))
        }
        return desired["infrastructureMachine"]?.name ?? desired["machine"]?.name
    }

    private func updateMachine(_ request: JSON) -> JSON {
        let kind = "UpdateMachineResponse"
        func failure(_ message: String) -> JSON {
            var result = UpdateExtension.response(kind, status: "Failure", message: message)
            result["retryAfterSeconds"] = 0
            return result
        }
        guard let desired = request["desired"], let machine = desired["machine"] else {
            return failure("request has no desired.machine")
        }
        guard let cluster = cluster(of: machine) else {
            return failure("no workload cluster \(machine.namespace ?? "")/\(machine["spec"]?["clusterName"]?.stringValue ?? "") (spec.clusterName names the TenantControlPlane)")
        }
        guard let nodeName = UpdateExtension.nodeName(desired),
            let node = cluster.store.getIfPresent(.nodes, namespace: nil, name: nodeName)
        else { return failure("no Node for Machine \(machine.name ?? "") in cluster \(cluster.id)") }
        guard let target = machine["spec"]?["version"]?.stringValue.flatMap(KubeVersion.init) else {
            return failure("desired Machine has no valid spec.version")
        }
        let running = node[path: ["status", "nodeInfo", "kubeletVersion"]]?.stringValue.flatMap(KubeVersion.init)
        if running == target {
            var done = UpdateExtension.response(kind, status: "Success", message: "Node \(nodeName) runs kubelet \(target)")
            done["retryAfterSeconds"] = 0
            return done
        }
        let key = "\(cluster.id)/\(nodeName)"
        let policy = simulation.extensionPolicy.withLock { $0 }
        if policy.failUpdates { return failure("in-place update of Node \(nodeName) failed (kube-sim failUpdates)") }
        let started = simulation.inPlaceUpdates.withLock { updates -> InPlaceUpdate? in
            updates[key].flatMap { $0.target == target ? $0 : nil }
        }
        if started == nil, let reason = declineReason(current: running, desired: target, cluster: cluster) {
            return failure("in-place update of Node \(nodeName) refused: \(reason)")
        }
        let now = Date()
        let update = started ?? InPlaceUpdate(target: target, startedAt: now)
        if started == nil { simulation.inPlaceUpdates.withLock { $0[key] = update } }
        let duration = Double(simulation.delays.withLock { $0.inPlaceUpdate }.milliseconds) / 1000
        let remaining = update.startedAt.addingTimeInterval(duration).timeIntervalSince(now)
        if remaining > 0 {
            var progress = UpdateExtension.response(kind, status: "Success", message: "updating Node \(nodeName) kubelet to \(target)")
            progress["retryAfterSeconds"] = .int(Int64(max(1, remaining.rounded(.up))))
            return progress
        }
        do {
            try cluster.store.mutate(
                .nodes, namespace: nil, name: nodeName, subresource: "status", options: .controller("update-extension")
            ) { node in
                node[path: ["status", "nodeInfo", "kubeletVersion"]] = .string(target.description)
            }
        } catch {
            return failure("in-place update of Node \(nodeName) could not be written: \(error)")
        }
        simulation.inPlaceUpdates.withLock { _ = $0.removeValue(forKey: key) }
        var done = UpdateExtension.response(kind, status: "Success", message: "Node \(nodeName) updated to kubelet \(target)")
        done["retryAfterSeconds"] = 0
        return done
    }
}

/// An in-place kubelet update in flight on one Node.
struct InPlaceUpdate: Sendable {
    var target: KubeVersion
    var startedAt: Date
}
