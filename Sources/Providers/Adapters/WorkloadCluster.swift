import Logging

/// Nodes of one workload cluster: health, providerID, cordon, drain by eviction.
public struct WorkloadCluster: Sendable {
    public let client: KubernetesClient

    public init(client: KubernetesClient) { self.client = client }

    /// What a health check needs to know about a Node.
    public struct NodeHealth: Sendable, Hashable {
        public var name: String
        /// The `Ready` condition's status: "True", "False", "Unknown", or nil when not reported.
        public var ready: String?
        /// When `Ready` last changed (RFC 3339), the clock for health-check timeouts.
        public var readyLastTransitionTime: String?
        public var readyReason: String?
        public var kubeletVersion: String?
        public var providerID: String?
        public var unschedulable: Bool

        public init(_ node: Node) {
            name = node.metadata.name ?? ""
            let condition = node.readyCondition
            ready = condition?.status
            readyLastTransitionTime = condition?.lastTransitionTime
            readyReason = condition?.reason
            kubeletVersion = node.kubeletVersion
            providerID = node.spec?.providerID
            unschedulable = node.isCordoned
        }
    }

    /// The Node, or nil when it has not joined (or is gone).
    public func node(named name: String) async throws -> Node? {
        try await client.getIfPresent(.nodes, name: name, namespace: nil, as: Node.self)
    }

    /// Every Node's health, in name order.
    public func nodeHealth() async throws -> [NodeHealth] {
        try await client.listAll(.nodes, namespace: nil, as: Node.self).map(NodeHealth.init)
            .sorted { $0.name < $1.name }
    }

    /// Sets `spec.providerID` to `kubevirt://<name>` as CAPK does (there is no cloud provider).
    ///
    /// Already set to that value: nothing is sent. Set to anything else: an error, since a
    /// providerID never changes once set.
    public func setProviderID(nodeName: String) async throws -> Node {
        let wanted = "kubevirt://\(nodeName)"
        let node = try await client.get(.nodes, name: nodeName, namespace: nil, as: Node.self)
        switch node.spec?.providerID {
        case wanted?: return node
        case nil, ""?: break
        case let other?:
            throw KubernetesError(
                code: .conflict, operation: "set providerID nodes \(nodeName)",
                detail: "the Node already has providerID \(other)")
        }
        let patch: JSONValue = ["spec": ["providerID": .string(wanted)]]
        return try await client.mergePatch(.nodes, name: nodeName, patch, namespace: nil, as: Node.self)
    }

    /// Cordons (`spec.unschedulable: true`) or uncordons the Node; safe to repeat.
    @discardableResult
    public func setUnschedulable(_ unschedulable: Bool, nodeName: String) async throws -> Node {
        let patch: JSONValue = ["spec": ["unschedulable": .bool(unschedulable)]]
        return try await client.mergePatch(.nodes, name: nodeName, patch, namespace: nil, as: Node.self)
    }

    /// An eviction a PodDisruptionBudget refused (HTTP 429); try again later.
    public struct BlockedEviction: Sendable, Hashable {
        public var namespace: String
        public var pod: String
        /// The server's words (names the budget).
        public var message: String
        public var retryAfter: Duration?
    }

    /// One pass of a drain.
    public struct DrainReport: Sendable, Hashable {
        /// Pods evicted in this pass (`namespace/name`).
        public var evicted: [String] = []
        /// Pods whose eviction a budget refused.
        public var blocked: [BlockedEviction] = []
        /// Pods already terminating, left to finish.
        public var terminating: [String] = []
        /// DaemonSet, mirror and finished pods, which a drain leaves.
        public var skipped: [String] = []

        /// Nothing was left to evict and nothing is still terminating: the node is drained.
        public var isComplete: Bool { evicted.isEmpty && blocked.isEmpty && terminating.isEmpty }
    }

    /// One drain pass over `nodeName`: cordon, then a `policy/v1` Eviction for every pod bound
    /// to it except DaemonSet, mirror and finished pods.
    ///
    /// A 429 (PodDisruptionBudget) is reported in `blocked`, not thrown: call again later, as
    /// Cluster API does, until `isComplete`. A 404 means the pod is already gone.
    /// - Throws: `KubernetesError` for anything else.
    public func drain(nodeName: String, gracePeriodSeconds: Int? = nil) async throws -> DrainReport {
        try await setUnschedulable(true, nodeName: nodeName)
        let pods = try await client.listAll(
            .pods, namespace: nil, options: ListOptions(fieldSelector: "spec.nodeName=\(nodeName)"), as: Pod.self)
        var report = DrainReport()
        for pod in pods {
            let namespace = pod.metadata.namespace ?? "default"
            let name = pod.metadata.name ?? ""
            let qualified = "\(namespace)/\(name)"
            if pod.isDaemonSetPod || pod.isMirrorPod || pod.isFinished {
                report.skipped.append(qualified)
                continue
            }
            if pod.metadata.deletionTimestamp != nil {
                report.terminating.append(qualified)
                continue
            }
            do {
                try await client.evict(pod: name, namespace: namespace, gracePeriodSeconds: gracePeriodSeconds)
                report.evicted.append(qualified)
            } catch let error as KubernetesError where error.code == .notFound {
                continue
            } catch let error as KubernetesError where error.code == .tooManyRequests {
                report.blocked.append(
                    BlockedEviction(
                        namespace: namespace, pod: name, message: error.status?.message ?? "eviction refused",
                        retryAfter: error.retryAfter))
            }
        }
        client.logger.debug(
            "workload.drain.pass",
            metadata: [
                "node.name": "\(nodeName)", "drain.evicted": "\(report.evicted.count)",
                "drain.blocked": "\(report.blocked.count)", "drain.terminating": "\(report.terminating.count)",
            ])
        return report
    }
}
