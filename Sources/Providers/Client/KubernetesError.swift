import Foundation

/// The Kubernetes `Status` object (`meta/v1`), as API servers send it with every error.
public struct Status: Codable, Sendable, Hashable {
    public struct Details: Codable, Sendable, Hashable {
        public var name: String?
        public var group: String?
        public var kind: String?
        public var uid: String?
        public var causes: [Cause]?
        public var retryAfterSeconds: Int?
    }

    public struct Cause: Codable, Sendable, Hashable {
        public var reason: String?
        public var message: String?
        public var field: String?
    }

    public var apiVersion: String?
    public var kind: String?
    /// "Success" or "Failure".
    public var status: String?
    public var message: String?
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `TooManyRequests`, …
    public var reason: String?
    public var details: Details?
    public var code: Int?
}

/// A failed Kubernetes API call: the server's `Status`, or a transport failure, with a `Code` to switch on.
///
/// Retries and idempotency switch on `code`, never on `message`. The message names the verb and
/// the object; it never holds a token, and for Secrets the server's message is withheld, since
/// validation messages can quote field values.
public struct KubernetesError: Error, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// 400 `BadRequest`.
        public static var badRequest: Code { Code(rawValue: "BadRequest") }
        /// 401 `Unauthorized`: no or wrong credentials.
        public static var unauthorized: Code { Code(rawValue: "Unauthorized") }
        /// 403 `Forbidden`.
        public static var forbidden: Code { Code(rawValue: "Forbidden") }
        /// 404 `NotFound`.
        public static var notFound: Code { Code(rawValue: "NotFound") }
        /// 405 `MethodNotAllowed`.
        public static var methodNotAllowed: Code { Code(rawValue: "MethodNotAllowed") }
        /// 409 `AlreadyExists`: create of a name that is taken.
        public static var alreadyExists: Code { Code(rawValue: "AlreadyExists") }
        /// 409 `Conflict`: stale `resourceVersion`, failed precondition, apply field conflict.
        public static var conflict: Code { Code(rawValue: "Conflict") }
        /// 410 `Expired`/`Gone`: a `continue` token or watch resourceVersion too old.
        public static var gone: Code { Code(rawValue: "Gone") }
        /// 415 `UnsupportedMediaType`.
        public static var unsupportedMediaType: Code { Code(rawValue: "UnsupportedMediaType") }
        /// 422 `Invalid`: the object failed validation.
        public static var invalid: Code { Code(rawValue: "Invalid") }
        /// 429 `TooManyRequests`: throttled, or an eviction blocked by a PodDisruptionBudget.
        public static var tooManyRequests: Code { Code(rawValue: "TooManyRequests") }
        /// 500 `InternalError`.
        public static var internalError: Code { Code(rawValue: "InternalError") }
        /// 503 `ServiceUnavailable`.
        public static var serviceUnavailable: Code { Code(rawValue: "ServiceUnavailable") }
        /// 504 or reason `Timeout`: the server gave up.
        public static var serverTimeout: Code { Code(rawValue: "Timeout") }
        /// Another 5xx.
        public static var serverError: Code { Code(rawValue: "ServerError") }
        /// Another status the client did not expect.
        public static var unexpectedStatus: Code { Code(rawValue: "UnexpectedStatus") }
        /// Below HTTP: see `transport` for curl's code.
        public static var transport: Code { Code(rawValue: "Transport") }
        /// The response body did not decode as the expected type.
        public static var decoding: Code { Code(rawValue: "Decoding") }
        /// The request could not be built (bad name, bad selector).
        public static var invalidRequest: Code { Code(rawValue: "InvalidRequest") }
        /// The kubeconfig user's `exec` credential plugin failed (not found, non-zero exit,
        /// timeout, unusable output); `detail` names the kubeconfig, the user and the command.
        public static var credentialPlugin: Code { Code(rawValue: "CredentialPlugin") }
        /// A create found an object of that name that carries another idempotency key (or none).
        public static var notOurs: Code { Code(rawValue: "NotOurs") }
        /// A create found an object of that name being deleted (`deletionTimestamp` set, held by
        /// finalizers or a grace period), whoever's it is: it is not a created object. Wait until
        /// it is gone (404), then create again.
        public static var beingDeleted: Code { Code(rawValue: "BeingDeleted") }
    }

    public var code: Code
    /// The HTTP status, when there was a response.
    public var httpStatus: Int?
    /// The verb and object, e.g. `create virtualmachines.kubevirt.io default/vm-1`.
    public var operation: String
    /// The server's `Status`, if any (with the message withheld for Secrets).
    public var status: Status?
    /// `Retry-After` (header or `details.retryAfterSeconds`), when the server sent one.
    public var retryAfter: Duration?
    /// The transport failure, for `.transport`.
    public var transport: HTTPTransportError?
    /// More words: the decoding failure, or why the request was refused locally.
    public var detail: String?

    public init(
        code: Code, httpStatus: Int? = nil, operation: String, status: Status? = nil, retryAfter: Duration? = nil,
        transport: HTTPTransportError? = nil, detail: String? = nil
    ) {
        self.code = code
        self.httpStatus = httpStatus
        self.operation = operation
        self.status = status
        self.retryAfter = retryAfter
        self.transport = transport
        self.detail = detail
    }

    public var description: String {
        var text = "\(operation): \(code)"
        if let httpStatus { text += " (HTTP \(httpStatus))" }
        if let message = status?.message, !message.isEmpty { text += ": \(message)" }
        if let transport { text += ": \(transport)" }
        if let detail { text += ": \(detail)" }
        if let retryAfter { text += " (retry after \(retryAfter))" }
        return text
    }

    /// Builds the error for a non-2xx response, decoding its `Status` body when there is one.
    ///
    /// - Parameter withholdMessages: drop server messages (set for Secrets).
    public static func from(
        response: HTTPResponse, operation: String, withholdMessages: Bool = false
    ) -> KubernetesError {
        var status = try? JSONDecoder().decode(Status.self, from: Data(response.body))
        if status?.kind != "Status" && status?.reason == nil && status?.message == nil { status = nil }
        if withholdMessages, var withheld = status {
            withheld.message = "(message withheld for a Secret)"
            let causes = withheld.details?.causes?.map { Status.Cause(reason: $0.reason, message: nil, field: $0.field) }
            withheld.details?.causes = causes
            status = withheld
        }
        let code = classify(httpStatus: response.status, reason: status?.reason)
        var retryAfter: Duration? = nil
        if let header = response.headers["retry-after"], let seconds = Int(header.trimmingCharacters(in: .whitespaces)),
            seconds >= 0
        {
            retryAfter = .seconds(seconds)
        } else if let seconds = status?.details?.retryAfterSeconds, seconds >= 0 {
            retryAfter = .seconds(seconds)
        }
        return KubernetesError(
            code: code, httpStatus: response.status, operation: operation, status: status, retryAfter: retryAfter)
    }

    /// The code for an HTTP status and a `Status.reason`, the reason winning where it is more precise.
    public static func classify(httpStatus: Int, reason: String?) -> Code {
        switch (httpStatus, reason) {
        case (409, "AlreadyExists"): return .alreadyExists
        case (409, _): return .conflict
        case (_, "Timeout"): return .serverTimeout
        case (400, _): return .badRequest
        case (401, _): return .unauthorized
        case (403, _): return .forbidden
        case (404, _): return .notFound
        case (405, _): return .methodNotAllowed
        case (410, _): return .gone
        case (415, _): return .unsupportedMediaType
        case (422, _): return .invalid
        case (429, _): return .tooManyRequests
        case (500, _): return .internalError
        case (503, _): return .serviceUnavailable
        case (504, _): return .serverTimeout
        case (500...599, _): return .serverError
        default: return .unexpectedStatus
        }
    }

    /// Whether a retry may help: throttling, a server error, or a transport failure other than TLS trust.
    public var isTransient: Bool {
        switch code {
        case .tooManyRequests, .internalError, .serviceUnavailable, .serverTimeout, .serverError: return true
        case .transport:
            switch transport?.code {
            case .tlsVerificationFailed?, .tlsFailed?, .shutDown?: return false
            default: return true
            }
        default: return false
        }
    }
}
