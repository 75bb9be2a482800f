import Foundation
import Hummingbird
import NIOCore
import NIOSSL

/// Answers every HTTP request on one listener: the management cluster's (`cluster` nil) or
/// one workload cluster's. Authenticates (a client certificate signed by the cluster's CA, or
/// the bearer token; 401 otherwise), then serves discovery, `/_sim` controls and
/// the update extension (management only), or an object request.
struct APIResponder: HTTPResponder {
    typealias Context = SimRequestContext
    let simulation: Simulation
    /// The workload cluster this listener serves; nil for the management cluster.
    let cluster: WorkloadCluster?

    static let bodyBytesMax = 8 * 1024 * 1024

    /// The cluster a request addresses, with what its answers need.
    struct Target {
        var store: ClusterStore
        /// The bearer token this cluster accepts, if any (a workload cluster takes client certificates only).
        var token: String?
        var tokenUser: AuthenticatedUser
        /// Signs and verifies this cluster's client certificates.
        var certificates: ServingCertificates
        var version: String
        var isManagement: Bool
        /// `127.0.0.1:<port>`, as `/api` advertises it.
        var serverAddress: String
    }

    private var target: Target {
        if let cluster {
            return Target(
                store: cluster.store, token: nil, tokenUser: AuthenticatedUser(name: "", groups: []),
                certificates: cluster.certificates, version: cluster.version.withLock { $0 }, isManagement: false,
                serverAddress: cluster.server.replacingOccurrences(of: "https://", with: ""))
        }
        return Target(
            store: simulation.management, token: simulation.managementToken,
            tokenUser: AuthenticatedUser(name: Simulation.managementUser, groups: ["system:masters", "system:authenticated"]),
            certificates: simulation.certificates,
            version: simulation.configuration.managementVersion, isManagement: true,
            serverAddress: simulation.serverURL.withLock { $0 }.replacingOccurrences(of: "https://", with: ""))
    }

    func respond(to request: Request, context: Context) async throws -> Response {
        let gzip = request.headers[.acceptEncoding].map(Gzip.accepted(by:)) ?? false
        return try await ResponseEncoding.$gzipThresholdBytes.withValue(
            gzip ? simulation.configuration.gzipThresholdBytes : nil
        ) {
            try await respondEncoded(to: request, context: context)
        }
    }

    private func respondEncoded(to request: Request, context: Context) async throws -> Response {
        var request = request
        let query = QueryParameters(request.uri.query)
        let segments = request.uri.path.split(separator: "/").map(String.init)
        let target = self.target
        guard let user = await authenticate(request, context: context, target: target) else {
            return .status(.unauthorized())
        }
        do {
            let body = try await request.collectBody(upTo: APIResponder.bodyBytesMax)
            let bytes = Array(buffer: body)
            if target.isManagement, segments.first == "_sim" {
                return try SimControls(simulation: simulation).handle(
                    method: request.method, segments: Array(segments.dropFirst()), query: query, body: bytes)
            }
            if target.isManagement, segments.first == UpdateExtension.pathRoot {
                return try UpdateExtension(simulation: simulation).handle(
                    method: request.method, segments: Array(segments.dropFirst()), body: bytes)
            }
            if segments.count == 1, ["healthz", "livez", "readyz"].contains(segments[0]) {
                var headers = HTTPFields()
                headers[.contentType] = "text/plain; charset=utf-8"
                return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: "ok")))
            }
            if let document = discovery(segments, target: target) { return .json(200, document) }
            if request.method == .post, segments == ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"] {
                return .json(201, selfSubjectReview(user))
            }
            guard let resourceRequest = try parseResourcePath(segments, catalog: target.store.catalog) else {
                return .status(APIError.pathNotFound(request.uri.path))
            }
            return try await serve(
                resourceRequest, method: request.method, headers: request.headers, query: query, body: bytes,
                target: target)
        } catch let error as APIError {
            return .status(error)
        } catch let error as JSONSyntaxError {
            return .status(.badRequest("the request body is not valid JSON: \(error)"))
        }
    }

    /// kube-apiserver's union of authenticators: the x509 one (a client certificate this
    /// cluster's CA signed: CN the user, O the groups), then the bearer token. A certificate that
    /// does not verify is not fatal by itself (a valid token still authenticates), as upstream.
    private func authenticate(_ request: Request, context: Context, target: Target) async -> AuthenticatedUser? {
        if let der = await context.peerCertificateDER(),
            let user = target.certificates.authenticate(clientCertificateDER: der)
        {
            return user
        }
        if let token = target.token, let header = request.headers[.authorization], header.hasPrefix("Bearer "),
            constantTimeEqual(Array(header.utf8.dropFirst(7)), Array(token.utf8))
        {
            return target.tokenUser
        }
        return nil
    }

    /// `kubectl auth whoami`: who the request authenticated as (every authenticated user is
    /// also in `system:authenticated`, as upstream adds it).
    private func selfSubjectReview(_ user: AuthenticatedUser) -> JSON {
        var groups = user.groups
        if !groups.contains("system:authenticated") { groups.append("system:authenticated") }
        return [
            "kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": ["creationTimestamp": .string(Timestamp.rfc3339(Date()))],
            "status": ["userInfo": ["username": .string(user.name), "groups": .array(groups.map { .string($0) })]],
        ]
    }

    private func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }

    // MARK: discovery

    private func discovery(_ segments: [String], target: Target) -> JSON? {
        let catalog = target.store.catalog
        switch segments.count {
        case 0:
            var paths: [JSON] = ["/api", "/api/v1", "/apis", "/openapi/v3", "/version", "/healthz", "/livez", "/readyz"]
            for (group, version) in catalog.groupVersions where !group.isEmpty {
                paths.append(.string("/apis/\(group)/\(version)"))
            }
            return ["paths": .array(paths)]
        case 1:
            switch segments[0] {
            case "version": return Discovery.version(target.version)
            case "api": return Discovery.coreVersions(serverAddress: target.serverAddress)
            case "apis": return Discovery.groups(catalog)
            default: return nil
            }
        case 2 where segments[0] == "api":
            return Discovery.resourceList(catalog, group: "", version: segments[1])
        case 2 where segments[0] == "apis":
            let versions = catalog.groupVersions.filter { $0.group == segments[1] }.map(\.version)
            return versions.isEmpty ? nil : Discovery.group(segments[1], versions: versions)
        case 2 where segments[0] == "openapi" && segments[1] == "v3":
            return Discovery.openAPIRoot(catalog)
        case 3 where segments[0] == "apis":
            return Discovery.resourceList(catalog, group: segments[1], version: segments[2])
        case 4 where segments[0] == "openapi" && segments[2] == "api":
            return Discovery.openAPIDocument(catalog, group: "", version: segments[3])
        case 5 where segments[0] == "openapi" && segments[2] == "apis":
            return Discovery.openAPIDocument(catalog, group: segments[3], version: segments[4])
        default:
            return nil
        }
    }

    // MARK: object requests

    struct ResourceRequest {
        var resource: ResourceType
        var namespace: String?
        var name: String?
        var subresource: String?
    }

    private func parseResourcePath(_ segments: [String], catalog: ResourceCatalog) throws -> ResourceRequest? {
        let groupVersion: String
        var rest: ArraySlice<String>
        if segments.count >= 3, segments[0] == "api" {
            groupVersion = segments[1]
            rest = segments.dropFirst(2)
        } else if segments.count >= 4, segments[0] == "apis" {
            groupVersion = "\(segments[1])/\(segments[2])"
            rest = segments.dropFirst(3)
        } else {
            return nil
        }
        var namespace: String?
        if rest.count >= 3, rest.first == "namespaces",
            let resource = catalog.resource(groupVersion: groupVersion, name: rest[rest.startIndex + 2]),
            resource.namespaced
        {
            namespace = rest[rest.startIndex + 1]
            rest = rest.dropFirst(2)
        }
        guard let resourceName = rest.first,
            let resource = catalog.resource(groupVersion: groupVersion, name: resourceName)
        else { return nil }
        rest = rest.dropFirst()
        guard rest.count <= 2 else { return nil }
        if resource.namespaced, namespace == nil, !rest.isEmpty { return nil }
        let name = rest.first
        let subresource = rest.count == 2 ? rest.last : nil
        if let subresource {
            let known = (subresource == "status" && resource.hasStatus) || (subresource == "eviction" && resource == .pods)
            if !known { return nil }
        }
        return ResourceRequest(resource: resource, namespace: namespace, name: name, subresource: subresource)
    }

    private func verb(_ request: ResourceRequest, method: HTTPRequest.Method, headers: HTTPFields, query: QueryParameters) -> String {
        switch method {
        case .get: return request.name == nil ? (query.flag("watch") ? "watch" : "list") : "get"
        case .post: return request.subresource == "eviction" ? "evict" : "create"
        case .put: return "update"
        case .patch: return headers[.contentType]?.hasPrefix("application/apply-patch") == true ? "apply" : "patch"
        case .delete: return request.name == nil ? "deletecollection" : "delete"
        default: return method.rawValue.lowercased()
        }
    }

    private func serve(
        _ request: ResourceRequest, method: HTTPRequest.Method, headers: HTTPFields, query: QueryParameters,
        body: [UInt8], target: Target
    ) async throws -> Response {
        let verb = verb(request, method: method, headers: headers, query: query)
        // A create's URL names no object: a scripted fault's `name` matches the body's metadata.name.
        let name = request.name ?? (verb == "create" ? (try? JSON.parse(body))?["metadata"]?["name"]?.stringValue : nil)
        let decision = simulation.faults.decide(
            verb: verb, resource: request.resource.name, name: name, cluster: target.store.cluster)
        if decision.delay > .zero { try await Task.sleep(for: decision.delay) }
        switch decision.outcome {
        case .proceed, .dropResponse: break
        case .fail(let error): return .status(error)
        case .connectionReset: return .connectionReset
        }
        let response = try perform(verb, request, headers: headers, query: query, body: body, target: target)
        if case .dropResponse = decision.outcome { return .connectionReset }
        return response
    }

    private func writeOptions(_ query: QueryParameters, headers: HTTPFields, verb: String) -> WriteOptions {
        var options = WriteOptions()
        options.fieldManager = query["fieldManager"]
        // As kube-apiserver: a write that names no manager is recorded under its User-Agent's
        // prefix (`kubectl/v1.33 (linux/amd64)` → `kubectl`, at most 128 characters); apply must name one.
        if options.fieldManager?.isEmpty ?? true, verb != "apply", let agent = headers[.userAgent], !agent.isEmpty {
            let prefix = agent.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            options.fieldManager = String(prefix.prefix(128))
        }
        options.dryRun = query["dryRun"] == "All"
        options.force = query.flag("force")
        return options
    }

    private func perform(
        _ verb: String, _ request: ResourceRequest, headers: HTTPFields, query: QueryParameters, body: [UInt8],
        target: Target
    ) throws -> Response {
        let store = target.store
        let resource = request.resource
        let options = writeOptions(query, headers: headers, verb: verb)
        if let contentType = headers[.contentType], contentType.contains("protobuf") || contentType.contains("cbor"),
            !body.isEmpty
        {
            throw APIError.unsupportedMediaType(contentType)
        }
        switch verb {
        case "get":
            return .json(200, try store.get(resource, namespace: request.namespace, name: request.name!))
        case "list":
            return .json(200, try list(request, query: query, store: store))
        case "watch":
            return try watch(request, query: query, store: store)
        case "create":
            guard request.name == nil else { throw APIError.methodNotAllowed("POST is not allowed on a named object") }
            let object = try store.create(resource, namespace: request.namespace, body: try JSON.parse(body), options: options)
            return .json(201, object)
        case "evict":
            guard let namespace = request.namespace, let name = request.name else { throw APIError.badRequest("eviction needs a pod") }
            if !body.isEmpty {
                let eviction = try JSON.parse(body)
                if let evictionName = eviction.name, evictionName != name {
                    throw APIError.badRequest("name in URL does not match name in Eviction object")
                }
            }
            try store.evict(namespace: namespace, name: name, options: options)
            return .json(201, ["kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Success", "code": 201])
        case "update":
            guard let name = request.name else { throw APIError.methodNotAllowed("PUT needs a named object") }
            let object = try store.update(
                resource, namespace: request.namespace, name: name, body: try JSON.parse(body),
                subresource: request.subresource, options: options)
            return .json(200, object)
        case "patch", "apply":
            guard let name = request.name else { throw APIError.methodNotAllowed("PATCH needs a named object") }
            let contentType = headers[.contentType]?.split(separator: ";").first.map { String($0).trimmingSpaces() } ?? ""
            guard let type = ClusterStore.PatchType(rawValue: contentType) else {
                throw APIError.unsupportedMediaType(contentType)
            }
            let patch = type == .apply ? try JSON.parseYAML(String(decoding: body, as: UTF8.self)) : try JSON.parse(body)
            let existed = store.getIfPresent(resource, namespace: request.namespace, name: name) != nil
            let object = try store.patch(
                resource, namespace: request.namespace, name: name, type: type, patch: patch,
                subresource: request.subresource, options: options)
            return .json(existed ? 200 : 201, object)
        case "delete":
            let deleteOptions = body.isEmpty ? JSON.object([:]) : try JSON.parse(body)
            let preconditions = ClusterStore.Preconditions(
                uid: deleteOptions["preconditions"]?["uid"]?.stringValue,
                resourceVersion: deleteOptions["preconditions"]?["resourceVersion"]?.stringValue)
            var deleteWrite = options
            if deleteOptions["dryRun"]?.arrayValue?.contains("All") == true { deleteWrite.dryRun = true }
            let object = try store.delete(
                resource, namespace: request.namespace, name: request.name!, preconditions: preconditions,
                options: deleteWrite)
            return .json(200, object)
        case "deletecollection":
            let listed = store.list(
                resource, namespace: request.namespace, labels: try LabelSelector(parsing: query["labelSelector"] ?? ""),
                fields: try FieldSelector(parsing: query["fieldSelector"] ?? ""))
            var deleted: [JSON] = []
            for item in listed.items {
                if let object = try? store.delete(resource, namespace: item.namespace, name: item.name ?? "", options: options) {
                    deleted.append(object)
                }
            }
            return .json(200, listJSON(resource, items: deleted, resourceVersion: store.currentResourceVersion, continueToken: nil, remaining: 0))
        default:
            throw APIError.methodNotAllowed("the server does not allow this method on the requested resource")
        }
    }

    private func list(_ request: ResourceRequest, query: QueryParameters, store: ClusterStore) throws -> JSON {
        let labels = try LabelSelector(parsing: query["labelSelector"] ?? "")
        let fields = try FieldSelector(parsing: query["fieldSelector"] ?? "")
        var limit: Int?
        if let text = query["limit"], !text.isEmpty {
            guard let value = Int(text), value >= 0 else { throw APIError.badRequest("invalid limit: \(text)") }
            limit = value
        }
        let after = try query["continue"].flatMap { $0.isEmpty ? nil : try ClusterStore.parseContinueToken($0) }
        let result = store.list(
            request.resource, namespace: request.namespace, labels: labels, fields: fields, limit: limit,
            continueAfter: after)
        return listJSON(
            request.resource, items: result.items, resourceVersion: result.resourceVersion,
            continueToken: result.continueToken, remaining: result.remaining)
    }

    private func listJSON(_ resource: ResourceType, items: [JSON], resourceVersion: Int64, continueToken: String?, remaining: Int) -> JSON {
        var metadata: JSON = ["resourceVersion": .string(String(resourceVersion))]
        if let continueToken {
            metadata["continue"] = .string(continueToken)
            metadata["remainingItemCount"] = .int(Int64(remaining))
        }
        return [
            "kind": .string(resource.listKind), "apiVersion": .string(resource.groupVersion), "metadata": metadata,
            "items": .array(items),
        ]
    }

    private func watch(_ request: ResourceRequest, query: QueryParameters, store: ClusterStore) throws -> Response {
        let labels = try LabelSelector(parsing: query["labelSelector"] ?? "")
        var fields = try FieldSelector(parsing: query["fieldSelector"] ?? "")
        if let name = request.name {
            fields.requirements.append(.init(path: ["metadata", "name"], value: name, equal: true))
        }
        let from = query["resourceVersion"].flatMap { Int64($0) }
        let timeout = query["timeoutSeconds"].flatMap { Int($0) }.map { max(1, $0) } ?? 1800
        let events = try store.watch(request.resource, namespace: request.namespace, labels: labels, fields: fields, from: from)
        let stream = APIResponder.timed(events, seconds: timeout)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-cache, private"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                for await event in stream {
                    var line = JSON.object(["type": .string(event.type), "object": event.object]).serializedBytes()
                    line.append(0x0A)
                    try await writer.write(ByteBuffer(bytes: line))
                }
                try await writer.finish(nil)
            })
    }

    /// The stream, ended after `seconds` (a watch's `timeoutSeconds`).
    static func timed(_ events: AsyncStream<WatchEvent>, seconds: Int) -> AsyncStream<WatchEvent> {
        AsyncStream { continuation in
            let relay = Task {
                for await event in events { continuation.yield(event) }
                continuation.finish()
            }
            let timer = Task {
                try? await Task.sleep(for: .seconds(seconds))
                continuation.finish()
            }
            continuation.onTermination = { _ in
                relay.cancel()
                timer.cancel()
            }
        }
    }
}

/// Hummingbird's basic context plus the connection, so a request can read the client
/// certificate its TLS handshake presented.
struct SimRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// The DER of the peer's leaf certificate, or nil when it sent none.
    func peerCertificateDER() async -> [UInt8]? {
        guard let certificate = try? await channel.nioSSL_peerCertificate().get() else { return nil }
        return try? certificate.toDERBytes()
    }
}
