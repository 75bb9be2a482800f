import Foundation
public import Logging

/// A client for one Kubernetes API server: the REST verbs, generic over resource type, with
/// typed models or `JSONValue` as the escape hatch.
///
/// Requests go through a shared `CurlTransport` (connection reuse, many in flight). Failures
/// come back as `KubernetesError`; idempotent requests are retried on 429, 5xx and transport
/// failures under `retryPolicy`. Nothing it logs holds a credential.
public final class KubernetesClient: Sendable {
    /// The field manager for server-side apply.
    public static let fieldManager = "capstan"

    public let connection: ClusterConnection
    public let transport: CurlTransport
    public let retryPolicy: RetryPolicy
    public let timeouts: HTTPTimeouts
    /// Where retry backoff draws its jitter; seeded in simulations so a run reproduces.
    public let jitter: RetryJitter
    let tls: TLSSettings
    let logger: Logger

    /// - Parameters:
    ///   - connection: server, trust and credentials (from a kubeconfig).
    ///   - transport: the curl transport; the process-wide one by default.
    ///   - retryPolicy: how idempotent requests are retried.
    ///   - timeouts: connect and total timeouts per attempt.
    ///   - jitter: the random source for retry backoff (the system generator by default).
    public init(
        connection: ClusterConnection, transport: CurlTransport = .shared, retryPolicy: RetryPolicy = .default,
        timeouts: HTTPTimeouts = .init(), jitter: RetryJitter = .system,
        logger: Logger = Logger(label: "capstan.providers.kubernetes")
    ) {
        self.connection = connection
        self.transport = transport
        self.retryPolicy = retryPolicy
        self.timeouts = timeouts
        self.jitter = jitter
        self.tls = TLSSettings(connection)
        self.logger = logger
    }

    /// A client for the current context (or `context`) of the kubeconfig at `path`.
    ///
    /// - Throws: `KubeconfigError`.
    public convenience init(
        kubeconfigPath path: String, context: String? = nil, transport: CurlTransport = .shared,
        retryPolicy: RetryPolicy = .default, jitter: RetryJitter = .system,
        logger: Logger = Logger(label: "capstan.providers.kubernetes")
    ) throws {
        let connection = try Kubeconfig.load(path: path).connection(context: context)
        self.init(connection: connection, transport: transport, retryPolicy: retryPolicy, jitter: jitter, logger: logger)
    }

    /// The kubeconfig context's namespace, or `default`.
    public var defaultNamespace: String { connection.namespace ?? "default" }

    // MARK: read

    /// GET one object (or its `subresource`, such as `status`).
    ///
    /// - Throws: `KubernetesError` (`.notFound` when absent).
    public func get<Object: Decodable & Sendable>(
        _ type: ResourceType, name: String, namespace: String? = nil, subresource: String? = nil,
        as objectType: Object.Type = Object.self
    ) async throws -> Object {
        let target = try Target(type, name: name, namespace: namespace ?? defaultNamespace, subresource: subresource)
        let response = try await perform(
            "GET", target, operation: "get", idempotent: true)
        return try decode(objectType, response, target, operation: "get")
    }

    /// GET one object, or nil when it does not exist.
    public func getIfPresent<Object: Decodable & Sendable>(
        _ type: ResourceType, name: String, namespace: String? = nil, as objectType: Object.Type = Object.self
    ) async throws -> Object? {
        do {
            return try await get(type, name: name, namespace: namespace, as: objectType)
        } catch let error as KubernetesError where error.code == .notFound {
            return nil
        }
    }

    /// LIST one page. Pass `options.limit` and the previous page's `metadata.continue` to page.
    ///
    /// - Parameter namespace: nil for every namespace (or a cluster-scoped resource).
    public func list<Object: Decodable & Sendable>(
        _ type: ResourceType, namespace: String?, options: ListOptions = .init(),
        as objectType: Object.Type = Object.self
    ) async throws -> ObjectList<Object> {
        let target = try Target(type, name: nil, namespace: namespace, subresource: nil, query: options.queryItems)
        let response = try await perform("GET", target, operation: "list", idempotent: true)
        return try decode(ObjectList<Object>.self, response, target, operation: "list")
    }

    /// LIST every page, `options.limit` objects at a time (500 when unset).
    ///
    /// - Parameter maxPages: a bound on the pages read; past it the call throws.
    public func listAll<Object: Decodable & Sendable>(
        _ type: ResourceType, namespace: String?, options: ListOptions = .init(),
        as objectType: Object.Type = Object.self, maxPages: Int = 10_000
    ) async throws -> [Object] {
        var options = options
        options.limit = options.limit ?? 500
        var items: [Object] = []
        for _ in 0..<maxPages {
            let page = try await list(type, namespace: namespace, options: options, as: objectType)
            items.append(contentsOf: page.items)
            guard let next = page.metadata.continue, !next.isEmpty else { return items }
            options.continueToken = next
        }
        throw KubernetesError(
            code: .invalidRequest, operation: "list \(type)", detail: "more than \(maxPages) pages")
    }

    // MARK: write

    /// POST a new object. Not retried: a create whose answer was lost may have happened;
    /// use `createOnce` for a create that is safe to repeat.
    ///
    /// - Throws: `KubernetesError` (`.alreadyExists` when the name is taken).
    public func create<Object: Encodable & Sendable, Result: Decodable & Sendable>(
        _ type: ResourceType, _ object: Object, namespace: String? = nil, as resultType: Result.Type = Result.self
    ) async throws -> Result {
        try await create(type, object, namespace: namespace, idempotent: false, as: resultType)
    }

    func create<Object: Encodable & Sendable, Result: Decodable & Sendable>(
        _ type: ResourceType, _ object: Object, namespace: String?, idempotent: Bool, as resultType: Result.Type
    ) async throws -> Result {
        let target = try Target(type, name: nil, namespace: namespace ?? defaultNamespace, subresource: nil)
        let body = try encode(object, target, operation: "create")
        let response = try await perform(
            "POST", target, body: body, contentType: "application/json", operation: "create", idempotent: idempotent)
        return try decode(resultType, response, target, operation: "create")
    }

    /// Server-side apply (`PATCH application/apply-patch+yaml`, field manager `capstan`): create
    /// or update the fields Capstan owns. Safe to repeat, so retried.
    ///
    /// - Parameters:
    ///   - object: the fields to own, with `apiVersion`, `kind` and `metadata.name`. JSON is YAML, so it travels as JSON.
    ///   - force: take fields other managers own instead of failing with `.conflict`. On by
    ///     default, as for a controller (the Kubernetes guidance for controllers: always force,
    ///     the controller is the source of truth for the fields it applies); pass `false` to be told.
    ///   - subresource: `status` to apply the status.
    public func apply<Object: Encodable & Sendable, Result: Decodable & Sendable>(
        _ type: ResourceType, name: String, _ object: Object, namespace: String? = nil, force: Bool = true,
        subresource: String? = nil, as resultType: Result.Type = Result.self
    ) async throws -> Result {
        var query = [("fieldManager", Self.fieldManager)]
        if force { query.append(("force", "true")) }
        let target = try Target(
            type, name: name, namespace: namespace ?? defaultNamespace, subresource: subresource, query: query)
        let body = try encode(object, target, operation: "apply")
        let response = try await perform(
            "PATCH", target, body: body, contentType: "application/apply-patch+yaml", operation: "apply",
            idempotent: true)
        return try decode(resultType, response, target, operation: "apply")
    }

    /// JSON merge patch (RFC 7386). Retried: setting fields to given values is safe to repeat.
    public func mergePatch<Patch: Encodable & Sendable, Result: Decodable & Sendable>(
        _ type: ResourceType, name: String, _ patch: Patch, namespace: String? = nil, subresource: String? = nil,
        as resultType: Result.Type = Result.self
    ) async throws -> Result {
        let target = try Target(
            type, name: name, namespace: namespace ?? defaultNamespace, subresource: subresource,
            query: [("fieldManager", Self.fieldManager)])
        let body = try encode(patch, target, operation: "patch")
        let response = try await perform(
            "PATCH", target, body: body, contentType: "application/merge-patch+json", operation: "patch",
            idempotent: true)
        return try decode(resultType, response, target, operation: "patch")
    }

    /// PUT the whole object (or its `status`). Retried only when `metadata.resourceVersion` is
    /// set, since then a repeat after success fails with `.conflict` rather than overwriting.
    public func replace<Object: KubernetesObject, Result: Decodable & Sendable>(
        _ type: ResourceType, _ object: Object, subresource: String? = nil, as resultType: Result.Type = Result.self
    ) async throws -> Result {
        guard let name = object.metadata.name else {
            throw KubernetesError(code: .invalidRequest, operation: "replace \(type)", detail: "metadata.name is required")
        }
        let target = try Target(
            type, name: name, namespace: object.metadata.namespace ?? defaultNamespace, subresource: subresource,
            query: [("fieldManager", Self.fieldManager)])
        let body = try encode(object, target, operation: "replace")
        let response = try await perform(
            "PUT", target, body: body, contentType: "application/json", operation: "replace",
            idempotent: object.metadata.resourceVersion != nil)
        return try decode(resultType, response, target, operation: "replace")
    }

    /// DELETE, with a propagation policy and preconditions (uid, resourceVersion). Retried.
    ///
    /// - Returns: the server's answer (the object while finalizers hold it, or a `Status`).
    /// - Throws: `KubernetesError` (`.notFound` when absent, `.conflict` when a precondition fails).
    @discardableResult
    public func delete(
        _ type: ResourceType, name: String, namespace: String? = nil, options: DeleteOptions = .init()
    ) async throws -> JSONValue {
        let target = try Target(type, name: name, namespace: namespace ?? defaultNamespace, subresource: nil)
        let body = try encode(options, target, operation: "delete")
        let response = try await perform(
            "DELETE", target, body: body, contentType: "application/json", operation: "delete", idempotent: true)
        return try decode(JSONValue.self, response, target, operation: "delete")
    }

    /// Evicts a pod (`POST pods/NAME/eviction`, `policy/v1` Eviction). Never retried here: a 429
    /// means a PodDisruptionBudget blocks it, which the caller reports and retries later.
    ///
    /// - Throws: `KubernetesError` (`.tooManyRequests` when blocked, `.notFound` when the pod is gone).
    public func evict(pod name: String, namespace: String, gracePeriodSeconds: Int? = nil) async throws {
        let target = try Target(.pods, name: name, namespace: namespace, subresource: "eviction")
        let eviction = Eviction(
            metadata: ObjectMeta(name: name, namespace: namespace),
            deleteOptions: gracePeriodSeconds.map { DeleteOptions(gracePeriodSeconds: $0) })
        let body = try encode(eviction, target, operation: "evict")
        _ = try await perform(
            "POST", target, body: body, contentType: "application/json", operation: "evict", idempotent: false)
    }

    /// GET an arbitrary path below the server (`/version`, discovery). Retried. Server messages
    /// are withheld for paths under `/secrets`, as for the typed verbs.
    public func getRaw(path: String) async throws -> HTTPResponse {
        let target = Target(rawPath: path)
        return try await perform("GET", target, operation: "get", idempotent: true)
    }

    /// Any request to a path below the server: the escape hatch for what the typed verbs do not cover.
    ///
    /// - Parameters:
    ///   - path: starts with `/`; may carry a query.
    ///   - idempotent: whether a transient failure may be retried.
    /// - Returns: a 2xx response.
    /// - Throws: `KubernetesError` (server messages withheld for paths under `/secrets`).
    public func send(
        method: String, path: String, body: [UInt8]? = nil, contentType: String? = nil, idempotent: Bool
    ) async throws -> HTTPResponse {
        let target = Target(rawPath: path)
        return try await perform(
            method, target, body: body, contentType: contentType, operation: method.lowercased(), idempotent: idempotent)
    }

    // MARK: plumbing

    /// A resolved URL path plus what messages call it.
    struct Target {
        var path: String
        var query: [(String, String)] = []
        var description: String
        var withholdMessages: Bool

        init(path: String, description: String, withholdMessages: Bool) {
            self.path = path
            self.description = description
            self.withholdMessages = withholdMessages
        }

        /// A caller-given path: a Secret's error may quote its data, so anything under `/secrets` is withheld.
        init(rawPath: String) {
            let pathOnly = rawPath.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            self.init(
                path: rawPath, description: rawPath, withholdMessages: pathOnly.lowercased().contains("/secrets"))
        }

        init(
            _ type: ResourceType, name: String?, namespace: String?, subresource: String?,
            query: [(String, String)] = []
        ) throws {
            if let name { try Self.checkSegment(name, "name", type) }
            if let namespace, type.namespaced { try Self.checkSegment(namespace, "namespace", type) }
            self.path = type.path(namespace: namespace, name: name, subresource: subresource)
            self.query = query
            let scope = type.namespaced ? (namespace.map { "\($0)/" } ?? "") : ""
            var description = "\(type) \(scope)\(name ?? "")"
            if let subresource { description += " (\(subresource))" }
            self.description = description
            self.withholdMessages = type.group.isEmpty && type.resource == "secrets"
        }

        static func checkSegment(_ value: String, _ what: String, _ type: ResourceType) throws {
            let allowed = value.utf8.allSatisfy { byte in
                (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D || byte == 0x2E
                    || (byte >= 0x41 && byte <= 0x5A) || byte == 0x5F || byte == 0x3A
            }
            guard !value.isEmpty, value.utf8.count <= 253, allowed, value != ".", value != ".." else {
                throw KubernetesError(
                    code: .invalidRequest, operation: "\(type)",
                    detail: "\(what) \"\(value)\" is not a valid object \(what)")
            }
        }
    }

    func url(_ target: Target) -> String {
        var url = connection.server + target.path
        if !target.query.isEmpty {
            url += "?" + target.query.map { "\($0.0)=\(Self.percentEncode($0.1))" }.joined(separator: "&")
        }
        return url
    }

    /// RFC 3986 unreserved characters; everything else in a query value is percent-encoded.
    private static let queryValueAllowed: CharacterSet = {
        var allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        allowed.insert(charactersIn: "-._~")
        return allowed
    }()

    static func percentEncode(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: queryValueAllowed) ?? value
    }

    /// Sends with retries; returns a 2xx response or throws `KubernetesError`.
    func perform(
        _ method: String, _ target: Target, body: [UInt8]? = nil, contentType: String? = nil, operation: String,
        idempotent: Bool
    ) async throws -> HTTPResponse {
        var headers = ["Accept: application/json"]
        if let contentType { headers.append("Content-Type: \(contentType)") }
        // A request that must not run twice may not ride a reused connection (curl would re-send it).
        let request = HTTPRequest(
            method: method, url: url(target), headers: headers, body: body, tls: tls, timeouts: timeouts,
            freshConnection: !idempotent && method != "GET")
        let operationName = "\(operation) \(target.description)"
        var attempt = 1
        var refreshedCredential = false
        while true {
            var request = request
            let credential = try await execCredential(operation: operationName)
            if let credential { request.tls.use(credential) }
            let error: KubernetesError
            do {
                let response = try await transport.send(request)
                if (200..<300).contains(response.status) { return response }
                error = KubernetesError.from(
                    response: response, operation: operationName, withholdMessages: target.withholdMessages)
            } catch let transportError as HTTPTransportError {
                error = KubernetesError(code: .transport, operation: operationName, transport: transportError)
            }
            // A plugin's credential the server refuses (revoked, expired early) is dropped and the
            // plugin run again, once per request, as client-go does; not counted as an attempt.
            if error.code == .unauthorized, let credential, let exec = connection.exec, !refreshedCredential {
                refreshedCredential = true
                exec.invalidate(credential)
                logger.debug(
                    "kubernetes.request.credential_refresh",
                    metadata: ["k8s.operation": "\(operationName)", "k8s.exec": "\(exec.config.command)"])
                continue
            }
            guard retryPolicy.shouldRetry(error, attempt: attempt, idempotent: idempotent) else { throw error }
            let delay = retryPolicy.delay(
                afterAttempt: attempt, retryAfter: error.retryAfter, jitter: jitter.next())
            logger.debug(
                "kubernetes.request.retry",
                metadata: [
                    "k8s.operation": "\(operationName)", "k8s.attempt": "\(attempt)", "k8s.code": "\(error.code)",
                    "k8s.delay": "\(delay)",
                ])
            try await Task.sleep(for: delay)
            attempt += 1
        }
    }

    /// The exec plugin's current credential (running it when none is valid), or nil without a plugin.
    ///
    /// - Throws: `KubernetesError` `.credentialPlugin` naming the kubeconfig, user and command.
    func execCredential(operation: String) async throws -> ExecCredential? {
        guard let exec = connection.exec else { return nil }
        do {
            return try await exec.credential()
        } catch let error as ExecCredentialError {
            throw KubernetesError(code: .credentialPlugin, operation: operation, detail: "\(error)")
        }
    }

    func encode<Object: Encodable>(_ object: Object, _ target: Target, operation: String) throws -> [UInt8] {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.withoutEscapingSlashes]
            return Array(try encoder.encode(object))
        } catch {
            throw KubernetesError(
                code: .invalidRequest, operation: "\(operation) \(target.description)",
                detail: "cannot encode the request body: \(error)")
        }
    }

    func decode<Object: Decodable>(
        _ type: Object.Type, _ response: HTTPResponse, _ target: Target, operation: String
    ) throws -> Object {
        do {
            return try JSONDecoder().decode(type, from: Data(response.body))
        } catch {
            // The decoding error names the coding path, never the value: safe for Secrets too.
            throw KubernetesError(
                code: .decoding, httpStatus: response.status, operation: "\(operation) \(target.description)",
                detail: Self.describe(decodingError: error))
        }
    }

    static func describe(decodingError error: any Error) -> String {
        guard let error = error as? DecodingError else { return "not valid JSON" }
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing \(path(context)).\(key.stringValue)"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "wrong type at \(path(context))"
        case .dataCorrupted(let context): return "malformed at \(path(context))"
        @unknown default: return "cannot decode"
        }
    }
}
