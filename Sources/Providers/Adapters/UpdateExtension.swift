import Foundation

/// Bytes that travel base64-encoded in JSON (Go `[]byte`, OpenAPI `format: byte`): runtime-hook patches.
public struct Base64Bytes: Codable, Sendable, Hashable {
    public var bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let data = Data(base64Encoded: text) else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: decoder.codingPath, debugDescription: "not base64"))
        }
        bytes = Array(data)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Data(bytes).base64EncodedString())
    }
}

/// Cluster API in-place update hooks (`hooks.runtime.cluster.x-k8s.io/v1alpha1`), the wire shapes.
public enum InPlaceUpdate {
    public static let apiVersion = "hooks.runtime.cluster.x-k8s.io/v1alpha1"

    /// `Patch{patchType, patch}`; `patch` is base64 on the wire. An empty patch (`{}`) means "I handle nothing".
    public struct Patch: Codable, Sendable, Hashable {
        /// `JSONPatch` or `JSONMergePatch`.
        public var patchType: String?
        public var patch: Base64Bytes?

        public init(patchType: String? = nil, patch: [UInt8]? = nil) {
            self.patchType = patchType
            self.patch = patch.map(Base64Bytes.init)
        }

        /// True when the patch changes nothing.
        public var isEmpty: Bool {
            guard let bytes = patch?.bytes, !bytes.isEmpty else { return true }
            let text = String(decoding: bytes, as: UTF8.self).filter { !$0.isWhitespace }
            return text == "[]" || text == "{}"
        }
    }

    /// The objects describing one machine: metadata and spec only.
    public struct MachineObjects: Codable, Sendable, Hashable {
        public var machine: JSONValue
        public var infrastructureMachine: JSONValue
        public var bootstrapConfig: JSONValue?

        public init(machine: JSONValue, infrastructureMachine: JSONValue, bootstrapConfig: JSONValue? = nil) {
            self.machine = machine
            self.infrastructureMachine = infrastructureMachine
            self.bootstrapConfig = bootstrapConfig
        }
    }

    public struct CanUpdateMachineRequest: Codable, Sendable, Hashable {
        public var apiVersion = InPlaceUpdate.apiVersion
        public var kind = "CanUpdateMachineRequest"
        public var settings: [String: String]?
        public var current: MachineObjects
        public var desired: MachineObjects

        public init(current: MachineObjects, desired: MachineObjects, settings: [String: String]? = nil) {
            self.current = current
            self.desired = desired
            self.settings = settings
        }
    }

    public struct CanUpdateMachineResponse: Codable, Sendable, Hashable {
        public var apiVersion: String?
        public var kind: String?
        /// `Success` or `Failure`.
        public var status: String
        public var message: String?
        public var machinePatch: Patch?
        public var infrastructureMachinePatch: Patch?
        public var bootstrapConfigPatch: Patch?

        /// The extension offered to cover something (any non-empty patch).
        public var offersInPlaceUpdate: Bool {
            status == "Success"
                && [machinePatch, infrastructureMachinePatch, bootstrapConfigPatch].contains { $0.map { !$0.isEmpty } ?? false }
        }
    }

    public struct UpdateMachineRequest: Codable, Sendable, Hashable {
        public var apiVersion = InPlaceUpdate.apiVersion
        public var kind = "UpdateMachineRequest"
        public var settings: [String: String]?
        public var desired: MachineObjects

        public init(desired: MachineObjects, settings: [String: String]? = nil) {
            self.desired = desired
            self.settings = settings
        }
    }

    public struct UpdateMachineResponse: Codable, Sendable, Hashable {
        public var apiVersion: String?
        public var kind: String?
        public var status: String
        public var message: String?
        public var retryAfterSeconds: Int?

        /// `Success` with no retry: the update is complete.
        public var isDone: Bool { status == "Success" && (retryAfterSeconds ?? 0) == 0 }
        /// `Success` with a retry: still running, ask again after `retryAfterSeconds`.
        public var isInProgress: Bool { status == "Success" && (retryAfterSeconds ?? 0) > 0 }
        public var isFailure: Bool { status == "Failure" }
    }
}

/// Calls an in-place update extension over HTTPS (POST JSON to
/// `/hooks.runtime.cluster.x-k8s.io/v1alpha1/<hook>/<handler>`).
///
/// The idempotency key travels in `settings["capstan.io/idempotency-key"]`; both hooks are
/// idempotent by contract, so calls are retried on transient failures.
public struct UpdateExtensionClient: Sendable {
    let client: KubernetesClient
    public let handlerName: String

    /// - Parameters:
    ///   - connection: the extension's base URL (`https://host:port`), CA and token.
    ///   - handlerName: the handler registered for the hooks (`kube-sim` for the simulator).
    public init(
        connection: ClusterConnection, handlerName: String, transport: CurlTransport = .shared,
        retryPolicy: RetryPolicy = .default
    ) {
        self.client = KubernetesClient(connection: connection, transport: transport, retryPolicy: retryPolicy)
        self.handlerName = handlerName
    }

    /// Asks whether the change `current → desired` can be made in place, and with which patches.
    public func canUpdateMachine(
        _ request: InPlaceUpdate.CanUpdateMachineRequest, key: IdempotencyKey
    ) async throws -> InPlaceUpdate.CanUpdateMachineResponse {
        var request = request
        request.settings = (request.settings ?? [:]).merging([IdempotencyKey.annotation: key.rawValue]) { _, new in new }
        return try await call("canupdatemachine", request, as: InPlaceUpdate.CanUpdateMachineResponse.self)
    }

    /// Starts or polls the update to `desired`; `isInProgress` means call again after `retryAfterSeconds`.
    public func updateMachine(
        _ request: InPlaceUpdate.UpdateMachineRequest, key: IdempotencyKey
    ) async throws -> InPlaceUpdate.UpdateMachineResponse {
        var request = request
        request.settings = (request.settings ?? [:]).merging([IdempotencyKey.annotation: key.rawValue]) { _, new in new }
        return try await call("updatemachine", request, as: InPlaceUpdate.UpdateMachineResponse.self)
    }

    private func call<Request: Encodable & Sendable, Response: Decodable & Sendable>(
        _ hook: String, _ request: Request, as responseType: Response.Type
    ) async throws -> Response {
        let path = "/hooks.runtime.cluster.x-k8s.io/v1alpha1/\(hook)/\(handlerName)"
        let target = KubernetesClient.Target(path: path, description: "hook \(hook)/\(handlerName)", withholdMessages: false)
        let body = try client.encode(request, target, operation: "call")
        let response = try await client.perform(
            "POST", target, body: body, contentType: "application/json", operation: "call", idempotent: true)
        return try client.decode(responseType, response, target, operation: "call")
    }
}
