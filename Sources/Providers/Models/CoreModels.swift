import Foundation

/// `v1` Secret. `data` values are base64 on the wire and plain bytes here.
///
/// Printing a Secret never shows its data.
public struct Secret: KubernetesObject, Hashable, CustomStringConvertible {
    public var apiVersion: String? = "v1"
    public var kind: String? = "Secret"
    public var metadata: ObjectMeta
    public var type: String?
    /// Key → bytes (base64-decoded).
    public var data: [String: RedactedBytes]?
    public var immutable: Bool?

    public init(metadata: ObjectMeta, type: String? = nil, data: [String: RedactedBytes]) {
        self.metadata = metadata
        self.type = type
        self.data = data
    }

    public var description: String {
        "Secret(\(metadata.namespace ?? "-")/\(metadata.name ?? "-"), keys: \((data ?? [:]).keys.sorted()))"
    }

    enum CodingKeys: String, CodingKey { case apiVersion, kind, metadata, type, data, stringData, immutable }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        apiVersion = try container.decodeIfPresent(String.self, forKey: .apiVersion)
        kind = try container.decodeIfPresent(String.self, forKey: .kind)
        metadata = try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta()
        type = try container.decodeIfPresent(String.self, forKey: .type)
        immutable = try container.decodeIfPresent(Bool.self, forKey: .immutable)
        if let encoded = try container.decodeIfPresent([String: String].self, forKey: .data) {
            var data: [String: RedactedBytes] = [:]
            for (key, value) in encoded {
                guard let bytes = Data(base64Encoded: value) else {
                    throw DecodingError.dataCorruptedError(
                        forKey: .data, in: container, debugDescription: "data.\(key) is not base64")
                }
                data[key] = RedactedBytes(Array(bytes))
            }
            self.data = data
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(apiVersion, forKey: .apiVersion)
        try container.encodeIfPresent(kind, forKey: .kind)
        try container.encode(metadata, forKey: .metadata)
        try container.encodeIfPresent(type, forKey: .type)
        try container.encodeIfPresent(immutable, forKey: .immutable)
        try container.encodeIfPresent(
            data?.mapValues { Data($0.exposedBytes).base64EncodedString() }, forKey: .data)
    }
}

/// `v1` Node, the fields Capstan reads (readiness, kubelet version) and writes (providerID, cordon).
public struct Node: KubernetesObject, Hashable {
    public struct Spec: Codable, Sendable, Hashable {
        public var providerID: String?
        public var unschedulable: Bool?
        public var taints: [Taint]?
        public init(providerID: String? = nil, unschedulable: Bool? = nil) {
            self.providerID = providerID
            self.unschedulable = unschedulable
        }
    }

    public struct Taint: Codable, Sendable, Hashable {
        public var key: String
        public var value: String?
        public var effect: String
    }

    public struct NodeInfo: Codable, Sendable, Hashable {
        public var kubeletVersion: String?
        public var kubeProxyVersion: String?
        public var osImage: String?
        public var containerRuntimeVersion: String?
    }

    public struct Status: Codable, Sendable, Hashable {
        public var conditions: [Condition]?
        public var nodeInfo: NodeInfo?
    }

    public var apiVersion: String? = "v1"
    public var kind: String? = "Node"
    public var metadata: ObjectMeta
    public var spec: Spec?
    public var status: Status?

    public init(metadata: ObjectMeta, spec: Spec? = nil) {
        self.metadata = metadata
        self.spec = spec
    }

    /// The `Ready` condition, if reported.
    public var readyCondition: Condition? { status?.conditions?.first { $0.type == "Ready" } }
    /// `Ready` is `True`.
    public var isReady: Bool { readyCondition?.status == "True" }
    /// `status.nodeInfo.kubeletVersion`.
    public var kubeletVersion: String? { status?.nodeInfo?.kubeletVersion }
    /// `spec.unschedulable` (cordoned).
    public var isCordoned: Bool { spec?.unschedulable ?? false }
}

/// `v1` Pod, what a drain needs: owner, node, mirror annotation, phase.
public struct Pod: KubernetesObject, Hashable {
    public struct Spec: Codable, Sendable, Hashable {
        public var nodeName: String?
    }

    public struct Status: Codable, Sendable, Hashable {
        public var phase: String?
    }

    public var apiVersion: String? = "v1"
    public var kind: String? = "Pod"
    public var metadata: ObjectMeta
    public var spec: Spec?
    public var status: Status?

    /// Owned by a DaemonSet: a drain leaves it (the DaemonSet would recreate it at once).
    public var isDaemonSetPod: Bool { metadata.ownerReferences?.contains { $0.kind == "DaemonSet" } ?? false }
    /// A static pod's mirror: the API cannot evict it.
    public var isMirrorPod: Bool { metadata.annotations?["kubernetes.io/config.mirror"] != nil }
    /// Succeeded or Failed: nothing left to move.
    public var isFinished: Bool { status?.phase == "Succeeded" || status?.phase == "Failed" }
}

/// `policy/v1` Eviction, posted to `pods/NAME/eviction`.
public struct Eviction: Codable, Sendable, Hashable {
    public var apiVersion = "policy/v1"
    public var kind = "Eviction"
    public var metadata: ObjectMeta
    public var deleteOptions: DeleteOptions?

    public init(metadata: ObjectMeta, deleteOptions: DeleteOptions? = nil) {
        self.metadata = metadata
        self.deleteOptions = deleteOptions
    }
}

/// Any object as raw JSON with its metadata decoded: the escape hatch for resources without a model.
public struct RawObject: KubernetesObject, Hashable {
    public var apiVersion: String?
    public var kind: String?
    public var metadata: ObjectMeta
    /// The whole object, metadata included.
    public var json: JSONValue

    public init(apiVersion: String, kind: String, metadata: ObjectMeta, fields: [String: JSONValue] = [:]) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.metadata = metadata
        var members = fields
        members["apiVersion"] = .string(apiVersion)
        members["kind"] = .string(kind)
        self.json = .object(members)
    }

    public init(from decoder: any Decoder) throws {
        json = try JSONValue(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        apiVersion = try container.decodeIfPresent(String.self, forKey: .apiVersion)
        kind = try container.decodeIfPresent(String.self, forKey: .kind)
        metadata = try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta()
    }

    public func encode(to encoder: any Encoder) throws {
        guard case .object(var members) = json else { return try json.encode(to: encoder) }
        members["apiVersion"] = apiVersion.map(JSONValue.string)
        members["kind"] = kind.map(JSONValue.string)
        // Metadata as edited through `metadata` wins over the copy inside `json`.
        let encoded = try JSONEncoder().encode(metadata)
        members["metadata"] = try JSONDecoder().decode(JSONValue.self, from: encoded)
        try JSONValue.object(members).encode(to: encoder)
    }

    enum CodingKeys: String, CodingKey { case apiVersion, kind, metadata }
}
