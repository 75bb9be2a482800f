/// The key that makes one effect happen once: `<workflow id>/<activity id>`.
///
/// It goes on every object Capstan creates as the annotation `capstan.io/idempotency-key`, so
/// a create repeated after a lost answer finds its own object (409, then GET, then compare)
/// rather than failing or creating twice.
public struct IdempotencyKey: Hashable, Sendable, CustomStringConvertible {
    /// The annotation that carries the key of the create that made the object (ownership).
    public static let annotation = "capstan.io/idempotency-key"
    /// The annotation that carries the key of the last server-side apply (audit; ownership stays).
    public static let appliedAnnotation = "capstan.io/applied-key"

    public let rawValue: String

    /// - Precondition: non-empty and at most 1024 bytes (annotations hold up to 256 KiB in all;
    ///   a key that long is a bug upstream).
    public init(_ rawValue: String) {
        precondition(!rawValue.isEmpty && rawValue.utf8.count <= 1024, "idempotency key must be 1...1024 bytes")
        self.rawValue = rawValue
    }

    /// `<workflow id>/<activity id>`.
    public init(workflow: String, activity: String) { self.init("\(workflow)/\(activity)") }

    public var description: String { rawValue }
}

/// What a create-once found.
public enum CreateOutcome<Object: Sendable>: Sendable {
    /// This call created it.
    case created(Object)
    /// It already existed with our key: an earlier attempt created it.
    case alreadyCreated(Object)

    public var object: Object {
        switch self {
        case .created(let object), .alreadyCreated(let object): object
        }
    }

    public var wasCreatedNow: Bool {
        if case .created = self { return true }
        return false
    }
}

/// What a delete-once found.
public enum DeleteOutcome: Sendable, Hashable {
    /// The server accepted the delete now (it may still be finalizing).
    case deleted
    /// There was nothing to delete: done before, or never created.
    case alreadyGone
}

extension KubernetesClient {
    /// Creates `object` once under `key`, safe to call again after any failure.
    ///
    /// Sets the annotation `capstan.io/idempotency-key`. Transient failures are retried (the key
    /// makes a repeated POST harmless). On 409 AlreadyExists the object is read back: being
    /// deleted it is no created object (`.beingDeleted`), with our key it is ours
    /// (`.alreadyCreated`), otherwise the name belongs to someone else (`.notOurs`).
    ///
    /// - Throws: `KubernetesError` (`.notOurs` when the name is taken by another object,
    ///   `.beingDeleted` while an object of that name is terminating).
    public func createOnce<Object: KubernetesObject, Result: KubernetesObject>(
        _ type: ResourceType, _ object: Object, key: IdempotencyKey, as resultType: Result.Type = Result.self
    ) async throws -> CreateOutcome<Result> {
        guard let name = object.metadata.name else {
            throw KubernetesError(
                code: .invalidRequest, operation: "create \(type)",
                detail: "metadata.name is required: idempotent creates use deterministic names")
        }
        let namespace = type.namespaced ? (object.metadata.namespace ?? defaultNamespace) : nil
        var annotated = object
        annotated.metadata.annotations = (object.metadata.annotations ?? [:]).merging(
            [IdempotencyKey.annotation: key.rawValue], uniquingKeysWith: { _, ours in ours })
        do {
            let created = try await create(type, annotated, namespace: namespace, idempotent: true, as: resultType)
            logger.debug("kubernetes.create.created", metadata: ["k8s.object": "\(type) \(name)"])
            return .created(created)
        } catch let error as KubernetesError where error.code == .alreadyExists {
            let existing = try await get(type, name: name, namespace: namespace, as: resultType)
            // A same-name replacement must not "succeed" on a dying object (issue 12).
            if existing.metadata.deletionTimestamp != nil {
                throw KubernetesError(
                    code: .beingDeleted, httpStatus: 409,
                    operation: "create \(type) \(namespace.map { "\($0)/" } ?? "")\(name)", status: error.status,
                    detail: "an object of that name is being deleted (deletionTimestamp set); create again once it is gone")
            }
            guard existing.metadata.annotations?[IdempotencyKey.annotation] == key.rawValue else {
                throw KubernetesError(
                    code: .notOurs, httpStatus: 409, operation: "create \(type) \(namespace.map { "\($0)/" } ?? "")\(name)",
                    status: error.status,
                    detail: "an object of that name exists without idempotency key \(key)")
            }
            logger.debug("kubernetes.create.already-ours", metadata: ["k8s.object": "\(type) \(name)"])
            return .alreadyCreated(existing)
        }
    }

    /// Server-side applies `object`, recording `key` in `capstan.io/applied-key`: create-or-update, safe to repeat.
    ///
    /// Apply is idempotent by itself (the same fields again change nothing); the ownership
    /// annotation set at creation is left alone, so a repeated `createOnce` still recognises the object.
    public func applyOnce<Object: KubernetesObject, Result: Decodable & Sendable>(
        _ type: ResourceType, _ object: Object, key: IdempotencyKey, force: Bool = true,
        as resultType: Result.Type = Result.self
    ) async throws -> Result {
        guard let name = object.metadata.name else {
            throw KubernetesError(code: .invalidRequest, operation: "apply \(type)", detail: "metadata.name is required")
        }
        var annotated = object
        annotated.metadata.annotations = (object.metadata.annotations ?? [:]).merging(
            [IdempotencyKey.appliedAnnotation: key.rawValue], uniquingKeysWith: { _, ours in ours })
        return try await apply(
            type, name: name, annotated, namespace: type.namespaced ? object.metadata.namespace : nil, force: force,
            as: resultType)
    }

    /// Deletes once: a 404 means it is already gone, which is success.
    public func deleteOnce(
        _ type: ResourceType, name: String, namespace: String? = nil, options: DeleteOptions = .init()
    ) async throws -> DeleteOutcome {
        do {
            try await delete(type, name: name, namespace: namespace, options: options)
            return .deleted
        } catch let error as KubernetesError where error.code == .notFound {
            return .alreadyGone
        }
    }
}
