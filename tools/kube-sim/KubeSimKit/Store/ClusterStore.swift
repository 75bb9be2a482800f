import Foundation
import Synchronization

/// Where an object lives inside one resource: namespace ("" when cluster-scoped) and name.
struct ObjectKey: Hashable, Comparable, Sendable {
    var namespace: String
    var name: String

    static func < (lhs: ObjectKey, rhs: ObjectKey) -> Bool {
        (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
    }
}

/// One event of a watch stream.
struct WatchEvent: Sendable {
    /// `ADDED`, `MODIFIED`, `DELETED`.
    var type: String
    var object: JSON
    var resourceVersion: Int64
    var resource: ResourceType
}

/// A committed change, handed to the simulated controllers after the store's lock is released.
struct StoreChange: Sendable {
    var verb: String
    var resource: ResourceType
    var old: JSON?
    var new: JSON?
    var actor: String
}

/// How one write request asks to be done.
struct WriteOptions: Sendable {
    /// `client` for API requests; `controller/<name>` for the simulator's own writes.
    var actor: String = "client"
    var fieldManager: String?
    var dryRun = false
    var force = false

    static let client = WriteOptions()
    static func controller(_ name: String) -> WriteOptions { WriteOptions(actor: "controller/\(name)", fieldManager: name) }
}

/// A write about to be committed, shown to admission before it is stored.
struct AdmissionAttempt: Sendable {
    var resource: ResourceType
    var old: JSON?
    var new: JSON
    var options: WriteOptions
}

/// The objects of one cluster (the management cluster or one workload cluster), stored as
/// client-go's `testing/fixture.go` does: keyed by resource, namespace and name, copied in
/// and out (values), listed in key order, with real Status errors.
///
/// One lock guards everything; every operation is a short critical section. Nothing outside
/// the store is called under that lock: a commit queues its watch events in an outbox, and
/// they are handed to the watchers after the lock is released (a watcher's cancel handler
/// takes the store lock to unregister, from inside the task cancel, so yielding under the
/// store lock deadlocked). Controllers are told after the commit too.
final class ClusterStore: Sendable {
    /// `management`, or `<namespace>/<name>` for a workload cluster.
    let cluster: String
    let catalog: ResourceCatalog
    let ledger: Ledger
    let random: SimRandom
    private let state: Mutex<State>
    private let hooks: Mutex<Hooks>
    /// Held while events are handed to watchers, so every watcher gets them in commit order.
    /// Lock order: `delivery`, then `state`; never the other way round.
    private let delivery = Mutex(())

    struct Hooks {
        var admission: (@Sendable (AdmissionAttempt) throws -> Void)?
        var onChange: (@Sendable (StoreChange) -> Void)?
    }

    struct Watcher {
        var resource: ResourceType
        var namespace: String?
        var labels: LabelSelector
        var fields: FieldSelector
        var continuation: AsyncStream<WatchEvent>.Continuation
    }

    struct State {
        var resourceVersion: Int64 = 1
        /// resource → namespace ("" when cluster-scoped) → name → object.
        var objects: [String: [String: [String: JSON]]] = [:]
        /// The most recent events, so a watch can resume from a resourceVersion.
        var history: [WatchEvent] = []
        var historyDroppedThrough: Int64 = 0
        var watchers: [Int: Watcher] = [:]
        var nextWatcherID = 0
        /// Events committed but not yet handed to their watchers, in commit order.
        var outbox: [(watcher: Int, continuation: AsyncStream<WatchEvent>.Continuation, event: WatchEvent)] = []
        /// PodDisruptionBudgets told by `/_sim` to refuse every eviction until a time.
        var blockedBudgets: [ObjectKey: Date] = [:]

        func object(_ resource: ResourceType, _ key: ObjectKey) -> JSON? {
            objects[resource.qualifiedName]?[key.namespace]?[key.name]
        }

        mutating func setObject(_ resource: ResourceType, _ key: ObjectKey, _ object: JSON?) {
            if let object {
                objects[resource.qualifiedName, default: [:]][key.namespace, default: [:]][key.name] = object
            } else {
                objects[resource.qualifiedName]?[key.namespace]?[key.name] = nil
                if objects[resource.qualifiedName]?[key.namespace]?.isEmpty == true {
                    objects[resource.qualifiedName]?[key.namespace] = nil
                }
            }
        }

        /// Keys in (namespace, name) order; only one namespace's are sorted when one is given.
        func sortedKeys(_ resource: ResourceType, namespace: String?) -> [ObjectKey] {
            guard let byNamespace = objects[resource.qualifiedName] else { return [] }
            let namespaces = namespace.map { [$0] } ?? byNamespace.keys.sorted()
            return namespaces.flatMap { namespace in
                (byNamespace[namespace]?.keys.sorted() ?? []).map { ObjectKey(namespace: namespace, name: $0) }
            }
        }
    }

    static let historyMax = 4096

    init(cluster: String, catalog: ResourceCatalog, ledger: Ledger, random: SimRandom) {
        self.cluster = cluster
        self.catalog = catalog
        self.ledger = ledger
        self.random = random
        self.state = Mutex(State())
        self.hooks = Mutex(Hooks())
        for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            _ = try? create(.namespaces, namespace: nil, body: ["metadata": ["name": .string(namespace)]], options: .controller("bootstrap"))
        }
    }

    func setAdmission(_ admission: @escaping @Sendable (AdmissionAttempt) throws -> Void) {
        hooks.withLock { $0.admission = admission }
    }

    func setOnChange(_ onChange: @escaping @Sendable (StoreChange) -> Void) {
        hooks.withLock { $0.onChange = onChange }
    }

    var currentResourceVersion: Int64 { state.withLock { $0.resourceVersion } }

    // MARK: reads

    func get(_ resource: ResourceType, namespace: String?, name: String) throws -> JSON {
        let key = ObjectKey(namespace: resource.namespaced ? namespace ?? "" : "", name: name)
        guard let object = state.withLock({ $0.object(resource, key) }) else {
            throw APIError.notFound(resource, name: name)
        }
        return object
    }

    func getIfPresent(_ resource: ResourceType, namespace: String?, name: String) -> JSON? {
        try? get(resource, namespace: namespace, name: name)
    }

    struct ListResult {
        var items: [JSON]
        var resourceVersion: Int64
        var continueToken: String?
        var remaining: Int
    }

    /// Objects of one resource in key order, filtered, one page at a time.
    ///
    /// The continue token is the last key served; a page is read from the current state,
    /// not from a snapshot at the first page's resourceVersion as etcd would.
    func list(
        _ resource: ResourceType, namespace: String?, labels: LabelSelector = LabelSelector(matchLabels: [:]),
        fields: FieldSelector? = nil, limit: Int? = nil, continueAfter: ObjectKey? = nil
    ) -> ListResult {
        state.withLock { state in
            let keys = state.sortedKeys(resource, namespace: namespace)
            var items: [JSON] = []
            var lastKey: ObjectKey?
            var remaining = 0
            for key in keys {
                if let continueAfter, !(continueAfter < key) { continue }
                let object = state.object(resource, key)!
                guard labels.matches(object.labels), fields?.matches(object) ?? true else { continue }
                if let limit, limit > 0, items.count >= limit {
                    remaining += 1
                    continue
                }
                items.append(object)
                lastKey = key
            }
            let token = remaining > 0 ? lastKey.map(ClusterStore.continueToken) : nil
            return ListResult(items: items, resourceVersion: state.resourceVersion, continueToken: token, remaining: remaining)
        }
    }

    static func continueToken(_ key: ObjectKey) -> String {
        Data(JSON.array([.string(key.namespace), .string(key.name)]).serializedBytes()).base64EncodedString()
    }

    static func parseContinueToken(_ token: String) throws -> ObjectKey {
        guard let data = Data(base64Encoded: token), let parsed = try? JSON.parse(Array(data)),
            let parts = parsed.arrayValue, parts.count == 2,
            let namespace = parts[0].stringValue, let name = parts[1].stringValue
        else { throw APIError.badRequest("invalid continue token") }
        return ObjectKey(namespace: namespace, name: name)
    }

    // MARK: watch

    /// A stream of events for one resource, from `resourceVersion` (exclusive) or, without
    /// one, starting with an ADDED event per existing object.
    ///
    /// - Throws: `APIError` 410 Expired when that resourceVersion is older than the history kept.
    func watch(
        _ resource: ResourceType, namespace: String?, labels: LabelSelector, fields: FieldSelector?,
        from resourceVersion: Int64?
    ) throws -> AsyncStream<WatchEvent> {
        let (stream, continuation) = AsyncStream<WatchEvent>.makeStream()
        let fieldSelector = fields ?? (try! FieldSelector(parsing: ""))
        // Under `delivery`, so no later commit's event reaches this watcher before its first ones.
        let id: Int = try delivery.withLock { _ in
            let (id, initial) = try state.withLock { state -> (Int, [WatchEvent]) in
            func matches(_ event: WatchEvent) -> Bool {
                event.resource == resource && (namespace == nil || event.object.namespace == namespace)
                    && labels.matches(event.object.labels) && fieldSelector.matches(event.object)
            }
            var initial: [WatchEvent] = []
            if let resourceVersion, resourceVersion > 0 {
                if resourceVersion < state.historyDroppedThrough {
                    throw APIError.gone("too old resource version: \(resourceVersion) (\(state.historyDroppedThrough))")
                }
                initial = state.history.filter { $0.resourceVersion > resourceVersion && matches($0) }
            } else {
                for key in state.sortedKeys(resource, namespace: namespace) {
                    let object = state.object(resource, key)!
                    let event = WatchEvent(
                        type: "ADDED", object: object, resourceVersion: object.resourceVersionNumber, resource: resource)
                    if matches(event) { initial.append(event) }
                }
            }
            let id = state.nextWatcherID
            state.nextWatcherID += 1
            state.watchers[id] = Watcher(
                resource: resource, namespace: namespace, labels: labels, fields: fieldSelector,
                continuation: continuation)
            return (id, initial)
            }
            for event in initial { continuation.yield(event) }
            return id
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.watchers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Open watch streams per resource (plural name), for `GET /_sim/watches`.
    func openWatchCounts() -> [String: Int] {
        state.withLock { state in state.watchers.values.reduce(into: [:]) { $0[$1.resource.name, default: 0] += 1 } }
    }

    /// Ends every open watch (at shutdown).
    func finishWatches() {
        let watchers = state.withLock { state in
            let watchers = Array(state.watchers.values)
            state.watchers.removeAll()
            return watchers
        }
        for watcher in watchers { watcher.continuation.finish() }
    }

    // MARK: writes

    func create(_ resource: ResourceType, namespace: String?, body: JSON, options: WriteOptions) throws -> JSON {
        try create(resource, namespace: namespace, body: body, options: options, verb: "create")
    }

    private func create(
        _ resource: ResourceType, namespace: String?, body: JSON, options: WriteOptions, verb: String
    ) throws -> JSON {
        var object = try checkedBody(resource, body: body)
        let namespace = try checkedNamespace(resource, pathNamespace: namespace, object: object)
        var name = object.name ?? ""
        if name.isEmpty, let generateName = object["metadata"]?["generateName"]?.stringValue, !generateName.isEmpty {
            name = generateName + random.alphanumeric(5)
        }
        try ClusterStore.validateName(resource, kind: resource.kind, name: name)
        if let version = object["metadata"]?["resourceVersion"]?.stringValue, !version.isEmpty {
            throw APIError.badRequest("resourceVersion should not be set on objects to be created")
        }
        var metadata = object["metadata"] ?? [:]
        metadata["name"] = .string(name)
        if resource.namespaced { metadata["namespace"] = .string(namespace) } else { metadata["namespace"] = nil }
        metadata["uid"] = .string(random.uuid())
        metadata["creationTimestamp"] = .string(Timestamp.rfc3339(Date()))
        metadata["deletionTimestamp"] = nil
        metadata["generation"] = resource.hasStatus ? 1 : nil
        object["metadata"] = metadata
        if resource.hasStatus && !resource.group.isEmpty && !options.actor.hasPrefix("controller/") {
            object["status"] = nil  // as for custom resources with a status subresource
        }
        object = ClusterStore.normalized(resource, object)
        if let manager = options.fieldManager {
            object = ClusterStore.recordingManager(
                object, manager: manager, operation: verb == "apply" ? "Apply" : "Update",
                applied: verb == "apply" ? body : nil, apiVersion: resource.groupVersion)
        }
        let key = ObjectKey(namespace: resource.namespaced ? namespace : "", name: name)
        let admission = hooks.withLock { $0.admission }
        let (committed, change) = try state.withLock { state -> (JSON, StoreChange?) in
            if state.object(resource, key) != nil {
                throw APIError.alreadyExists(resource, name: name)
            }
            if resource.namespaced, state.object(.namespaces, ObjectKey(namespace: "", name: namespace)) == nil {
                throw APIError.notFound(.namespaces, name: namespace)
            }
            try admission?(AdmissionAttempt(resource: resource, old: nil, new: object, options: options))
            if options.dryRun { return (object, nil) }
            return commit(&state, resource: resource, key: key, old: nil, new: object, verb: verb, actor: options.actor)
        }
        notify(change)
        return committed
    }

    /// Replaces an object (PUT), or its status (PUT .../status).
    func update(
        _ resource: ResourceType, namespace: String?, name: String, body: JSON, subresource: String?,
        options: WriteOptions
    ) throws -> JSON {
        let candidate = try checkedBody(resource, body: body)
        if let bodyName = candidate.name, bodyName != name {
            throw APIError.badRequest("the name of the object (\(bodyName)) does not match the name on the URL (\(name))")
        }
        return try write(resource, namespace: namespace, name: name, subresource: subresource, options: options, verb: "update") { old in
            if let version = candidate.resourceVersion, !version.isEmpty, version != old.resourceVersion {
                throw APIError.staleResourceVersion(resource, name: name)
            }
            return candidate
        }
    }

    enum PatchType: String, Sendable {
        case merge = "application/merge-patch+json"
        case strategicMerge = "application/strategic-merge-patch+json"
        case json = "application/json-patch+json"
        case apply = "application/apply-patch+yaml"
    }

    /// Patches an object. Strategic merge is served as a JSON merge patch (lists replace);
    /// server-side apply creates a missing object and merges into an existing one.
    func patch(
        _ resource: ResourceType, namespace: String?, name: String, type: PatchType, patch: JSON, subresource: String?,
        options: WriteOptions
    ) throws -> JSON {
        if type == .apply {
            guard let manager = options.fieldManager, !manager.isEmpty else {
                throw APIError.badRequest("PATCH, with apply, requires fieldManager to be set")
            }
            _ = try checkedBody(resource, body: patch)
            if let bodyName = patch.name, bodyName != name {
                throw APIError.badRequest("the name of the object (\(bodyName)) does not match the name on the URL (\(name))")
            }
            if getIfPresent(resource, namespace: namespace, name: name) == nil, subresource == nil {
                var body = patch
                body[path: ["metadata", "name"]] = .string(name)
                do {
                    return try create(resource, namespace: namespace, body: body, options: options, verb: "apply")
                } catch let error as APIError where error.reason == "AlreadyExists" {
                    // Lost a race with another creator: fall through to the update path.
                }
            }
        }
        let verb = type == .apply ? "apply" : "patch"
        return try write(resource, namespace: namespace, name: name, subresource: subresource, options: options, verb: verb) { old in
            var patched: JSON
            switch type {
            case .merge, .strategicMerge: patched = old.mergePatched(with: patch)
            case .json: patched = try old.jsonPatched(with: patch)
            case .apply:
                try ClusterStore.checkApplyConflicts(resource, old: old, applied: patch, options: options)
                patched = old.mergePatched(with: patch.withoutNulls)
                patched = ClusterStore.recordingManager(
                    patched, manager: options.fieldManager!, operation: "Apply", applied: patch,
                    apiVersion: resource.groupVersion, old: old)
            }
            if let version = patch["metadata"]?["resourceVersion"]?.stringValue, !version.isEmpty,
                version != old.resourceVersion
            {
                throw APIError.staleResourceVersion(resource, name: name)
            }
            return patched
        }
    }

    /// Changes an object with a closure, as the simulated controllers do (no resourceVersion check).
    /// Returns nil when the object does not exist; a change that alters nothing commits nothing.
    @discardableResult
    func mutate(
        _ resource: ResourceType, namespace: String?, name: String, subresource: String? = nil,
        options: WriteOptions, verb: String = "update", _ change: @escaping (inout JSON) throws -> Void
    ) throws -> JSON? {
        guard getIfPresent(resource, namespace: namespace, name: name) != nil else { return nil }
        return try write(resource, namespace: namespace, name: name, subresource: subresource, options: options, verb: verb) { old in
            var object = old
            try change(&object)
            return object
        }
    }

    private func write(
        _ resource: ResourceType, namespace: String?, name: String, subresource: String?, options: WriteOptions,
        verb: String, makeCandidate: (JSON) throws -> JSON
    ) throws -> JSON {
        let key = ObjectKey(namespace: resource.namespaced ? namespace ?? "" : "", name: name)
        let admission = hooks.withLock { $0.admission }
        let (committed, change) = try state.withLock { state -> (JSON, StoreChange?) in
            guard let old = state.object(resource, key) else {
                throw APIError.notFound(resource, name: name)
            }
            let candidate = try makeCandidate(old)
            var new = ClusterStore.merged(resource, old: old, candidate: candidate, subresource: subresource)
            if verb != "apply", let manager = options.fieldManager, new.withoutManagedFields != old.withoutManagedFields {
                new = ClusterStore.recordingManager(
                    new, manager: manager, operation: "Update", applied: nil, apiVersion: resource.groupVersion, old: old)
            }
            if new.withoutManagedFields == old.withoutManagedFields { return (old, nil) }  // nothing changed: no new resourceVersion
            try admission?(AdmissionAttempt(resource: resource, old: old, new: new, options: options))
            if options.dryRun { return (new, nil) }
            if new["metadata"]?["deletionTimestamp"] != nil, (new["metadata"]?["finalizers"]?.arrayValue ?? []).isEmpty {
                return commit(&state, resource: resource, key: key, old: old, new: nil, verb: "delete", actor: options.actor)
            }
            return commit(&state, resource: resource, key: key, old: old, new: new, verb: verb, actor: options.actor)
        }
        notify(change)
        return committed
    }

    struct Preconditions: Sendable {
        var uid: String?
        var resourceVersion: String?
    }

    /// Deletes an object; with finalizers it only gets a deletionTimestamp. Deleting a
    /// namespace deletes everything in it.
    func delete(
        _ resource: ResourceType, namespace: String?, name: String, preconditions: Preconditions = Preconditions(),
        options: WriteOptions
    ) throws -> JSON {
        let key = ObjectKey(namespace: resource.namespaced ? namespace ?? "" : "", name: name)
        let (result, changes) = try state.withLock { state -> (JSON, [StoreChange]) in
            guard let old = state.object(resource, key) else {
                throw APIError.notFound(resource, name: name)
            }
            if let uid = preconditions.uid, uid != old.uid {
                throw APIError.conflict(
                    resource, name: name,
                    why: "Precondition failed: UID in precondition: \(uid), UID in object meta: \(old.uid ?? "")")
            }
            if let version = preconditions.resourceVersion, version != old.resourceVersion {
                throw APIError.conflict(
                    resource, name: name,
                    why: "Precondition failed: ResourceVersion in precondition: \(version), ResourceVersion in object meta: \(old.resourceVersion ?? "")")
            }
            if options.dryRun { return (old, []) }
            if !(old["metadata"]?["finalizers"]?.arrayValue ?? []).isEmpty {
                if old["metadata"]?["deletionTimestamp"] != nil { return (old, []) }
                var marked = old
                marked[path: ["metadata", "deletionTimestamp"]] = .string(Timestamp.rfc3339(Date()))
                let (committed, change) = commit(&state, resource: resource, key: key, old: old, new: marked, verb: "delete", actor: options.actor)
                return (committed, change.map { [$0] } ?? [])
            }
            var changes: [StoreChange] = []
            if resource == .namespaces {
                for contained in catalog.resources where contained.namespaced {
                    for objectKey in state.sortedKeys(contained, namespace: name) {
                        let object = state.object(contained, objectKey)!
                        if let change = commit(&state, resource: contained, key: objectKey, old: object, new: nil, verb: "delete", actor: "controller/namespace").1 {
                            changes.append(change)
                        }
                    }
                }
            }
            let (_, change) = commit(&state, resource: resource, key: key, old: old, new: nil, verb: "delete", actor: options.actor)
            if let change { changes.append(change) }
            return (old, changes)
        }
        for change in changes { notify(change) }
        return result
    }

    // MARK: PodDisruptionBudgets

    /// Makes a PodDisruptionBudget refuse every eviction until `until`.
    func blockBudget(namespace: String, name: String, until: Date) {
        state.withLock { $0.blockedBudgets[ObjectKey(namespace: namespace, name: name)] = until }
    }

    /// Evicts a pod as `POST .../pods/<name>/eviction` does: 429 while a PodDisruptionBudget
    /// allows no disruption, 500 when several budgets match, otherwise the pod is deleted.
    func evict(namespace: String, name: String, options: WriteOptions) throws {
        let pod = try get(.pods, namespace: namespace, name: name)
        let budgets = list(.podDisruptionBudgets, namespace: namespace).items.filter {
            let selector = LabelSelector(object: $0["spec"]?["selector"])
            return !selector.isEmpty && selector.matches(pod.labels)
        }
        if budgets.count > 1 {
            throw APIError.internalError("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.")
        }
        if let budget = budgets.first, pod["metadata"]?["deletionTimestamp"] == nil {
            let budgetName = budget.name ?? ""
            let blockedUntil = state.withLock { $0.blockedBudgets[ObjectKey(namespace: namespace, name: budgetName)] }
            let allowed = blockedUntil.map { $0 <= Date() } ?? true ? disruptionsAllowed(budget: budget, namespace: namespace) : 0
            if allowed <= 0 {
                var error = APIError.tooManyRequests(
                    "Cannot evict pod as it would violate the pod's disruption budget.", retryAfterSeconds: 10)
                error.details = ["causes": [["reason": "DisruptionBudget", "message": .string("The disruption budget \(budgetName) needs more healthy pods to allow this eviction")]]]
                throw error
            }
        }
        _ = try delete(.pods, namespace: namespace, name: name, options: WriteOptions(actor: options.actor, fieldManager: nil, dryRun: options.dryRun))
    }

    private func disruptionsAllowed(budget: JSON, namespace: String) -> Int64 {
        let selector = LabelSelector(object: budget["spec"]?["selector"])
        let pods = list(.pods, namespace: namespace, labels: selector).items
        let expected = Int64(pods.count)
        let healthy = Int64(pods.filter(\.isReadyPod).count)
        func resolve(_ value: JSON?) -> Int64? {
            switch value {
            case .int(let count)?: return count
            case .string(let text)? where text.hasSuffix("%"):
                guard let percent = Int64(text.dropLast()) else { return nil }
                return (percent * expected + 99) / 100  // rounds up, as the disruption controller does
            case .string(let text)?: return Int64(text)
            default: return nil
            }
        }
        if let minAvailable = resolve(budget["spec"]?["minAvailable"]) { return healthy - minAvailable }
        if let maxUnavailable = resolve(budget["spec"]?["maxUnavailable"]) { return maxUnavailable - (expected - healthy) }
        return 1
    }

    // MARK: internals

    /// Stores (or removes, when `new` is nil) an object under a new resourceVersion, keeps
    /// the watch history, tells watchers and writes the ledger. Caller holds the lock.
    private func commit(
        _ state: inout State, resource: ResourceType, key: ObjectKey, old: JSON?, new: JSON?, verb: String,
        actor: String
    ) -> (JSON, StoreChange?) {
        state.resourceVersion += 1
        let version = state.resourceVersion
        var stored = new
        stored?[path: ["metadata", "resourceVersion"]] = .string(String(version))
        state.setObject(resource, key, stored)
        let type = old == nil ? "ADDED" : (stored == nil ? "DELETED" : "MODIFIED")
        var eventObject = stored ?? old!
        if stored == nil { eventObject[path: ["metadata", "resourceVersion"]] = .string(String(version)) }
        let event = WatchEvent(type: type, object: eventObject, resourceVersion: version, resource: resource)
        state.history.append(event)
        if state.history.count > ClusterStore.historyMax * 2 {
            state.historyDroppedThrough = state.history[ClusterStore.historyMax - 1].resourceVersion
            state.history.removeFirst(ClusterStore.historyMax)
        }
        for (id, watcher) in state.watchers where watcher.resource == resource {
            if let namespace = watcher.namespace, namespace != key.namespace { continue }
            guard watcher.labels.matches(eventObject.labels), watcher.fields.matches(eventObject) else { continue }
            state.outbox.append((id, watcher.continuation, event))
        }
        let uid = eventObject.uid ?? ""
        let changes = Ledger.changes(from: old, to: stored, redact: resource == .secrets)
        let cluster = self.cluster
        ledger.record { sequence in
            LedgerEntry(
                sequence: sequence, time: Date(), cluster: cluster, verb: verb, group: resource.group,
                version: resource.version, resource: resource.name, namespace: key.namespace, name: key.name, uid: uid,
                resourceVersion: String(version), actor: actor, changes: verb == "delete" && stored == nil ? [] : changes)
        }
        return (eventObject, StoreChange(verb: verb, resource: resource, old: old, new: stored, actor: actor))
    }

    /// Hands queued events to their watchers, then tells the controllers. Called after every
    /// commit, with the store lock released.
    private func notify(_ change: StoreChange?) {
        deliverQueuedEvents()
        guard let change, let onChange = hooks.withLock({ $0.onChange }) else { return }
        onChange(change)
    }

    /// Yields the outbox in commit order. Whoever takes the outbox delivers every event queued
    /// so far; a committer whose events another thread took waits on `delivery` until they are
    /// handed out, so a write still returns only after its watchers have its event.
    private func deliverQueuedEvents() {
        delivery.withLock { _ in
            let batch = state.withLock { state in
                defer { state.outbox.removeAll(keepingCapacity: true) }
                return state.outbox
            }
            var ended: [Int] = []
            for item in batch {
                if case .terminated = item.continuation.yield(item.event) { ended.append(item.watcher) }
            }
            if !ended.isEmpty {
                state.withLock { state in for id in ended { state.watchers[id] = nil } }
            }
        }
    }

    private func checkedBody(_ resource: ResourceType, body: JSON) throws -> JSON {
        guard case .object = body else { throw APIError.badRequest("the request body must be a JSON object") }
        var object = body
        if let apiVersion = body["apiVersion"]?.stringValue, apiVersion != resource.groupVersion {
            throw APIError.badRequest(
                "the API version in the data (\(apiVersion)) does not match the expected API version (\(resource.groupVersion))")
        }
        if let kind = body["kind"]?.stringValue, kind != resource.kind {
            throw APIError.badRequest("the kind in the data (\(kind)) does not match the expected kind (\(resource.kind))")
        }
        object["apiVersion"] = .string(resource.groupVersion)
        object["kind"] = .string(resource.kind)
        if object["metadata"]?.objectValue == nil { object["metadata"] = [:] }
        return object
    }

    private func checkedNamespace(_ resource: ResourceType, pathNamespace: String?, object: JSON) throws -> String {
        guard resource.namespaced else { return "" }
        let bodyNamespace = object.namespace
        guard let namespace = pathNamespace ?? bodyNamespace, !namespace.isEmpty else {
            throw APIError.badRequest("a namespace is required for \(resource.qualifiedName)")
        }
        if let bodyNamespace, !bodyNamespace.isEmpty, bodyNamespace != namespace {
            throw APIError.badRequest("the namespace of the provided object does not match the namespace sent on the request")
        }
        return namespace
    }

    static func validateName(_ resource: ResourceType, kind: String, name: String) throws {
        if name.isEmpty {
            throw APIError.invalid(
                resource, kind: kind, name: name,
                causes: [("metadata.name", "Required value: name or generateName is required")])
        }
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
        }
        let edges = name.first.map { $0.isLetter || $0.isNumber } == true && name.last.map { $0.isLetter || $0.isNumber } == true
        if !allowed || !edges || name.utf8.count > 253 {
            throw APIError.invalid(
                resource, kind: kind, name: name,
                causes: [(
                    "metadata.name",
                    "Invalid value: \"\(name)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                )])
        }
    }

    /// The object a write leaves: the candidate's content with the old object's system
    /// metadata, status or spec kept according to the subresource, generation bumped on a
    /// spec change.
    static func merged(_ resource: ResourceType, old: JSON, candidate: JSON, subresource: String?) -> JSON {
        var result: JSON
        if subresource == "status" {
            result = old
            result["status"] = candidate["status"]
        } else {
            result = candidate
            if resource.hasStatus { result["status"] = old["status"] }
            var metadata = candidate["metadata"] ?? [:]
            if metadata.objectValue == nil { metadata = [:] }
            for key in ["uid", "creationTimestamp", "namespace", "name", "deletionTimestamp", "generation", "resourceVersion"] {
                metadata[key] = old["metadata"]?[key]
            }
            if candidate["metadata"]?["managedFields"] == nil { metadata["managedFields"] = old["metadata"]?["managedFields"] }
            result["metadata"] = metadata
        }
        result["apiVersion"] = old["apiVersion"]
        result["kind"] = old["kind"]
        result = normalized(resource, result)
        if resource.hasStatus, result.specContent != old.specContent {
            result[path: ["metadata", "generation"]] = .int((old["metadata"]?["generation"]?.intValue ?? 0) + 1)
        }
        return result
    }

    /// Per-kind defaults the real API server applies on write.
    static func normalized(_ resource: ResourceType, _ object: JSON) -> JSON {
        var object = object
        switch resource {
        case .secrets:
            if let stringData = object["stringData"]?.objectValue {
                var data = object["data"]?.objectValue ?? [:]
                for (key, value) in stringData {
                    data[key] = .string(Data((value.stringValue ?? "").utf8).base64EncodedString())
                }
                object["data"] = .object(data)
                object["stringData"] = nil
            }
            if object["type"] == nil { object["type"] = "Opaque" }
        case .namespaces:
            if object["status"]?["phase"] == nil { object[path: ["status", "phase"]] = "Active" }
        case .pods:
            if object["status"]?["phase"] == nil {
                let scheduled = object["spec"]?["nodeName"]?.stringValue.map { !$0.isEmpty } ?? false
                object[path: ["status", "phase"]] = scheduled ? "Running" : "Pending"
                if scheduled {
                    object[path: ["status", "conditions"]] = [
                        ["type": "Ready", "status": "True", "lastTransitionTime": .string(Timestamp.rfc3339(Date()))]
                    ]
                }
            }
        default:
            break
        }
        return object
    }

    /// Records a field manager in `metadata.managedFields` (one entry per manager and operation).
    ///
    /// An apply owns the leaves it applied; an update owns what it owned before plus the leaves
    /// it changed (a create: every leaf but status). A leaf whose value this write changed moves
    /// to this manager: it is taken off every other manager, and a manager left with nothing is
    /// dropped, as the API server's field manager does. Lists are atomic leaves here.
    static func recordingManager(
        _ object: JSON, manager: String, operation: String, applied: JSON?, apiVersion: String, old: JSON? = nil
    ) -> JSON {
        var object = object
        let existing = object["metadata"]?["managedFields"]?.arrayValue ?? []
        func isMine(_ entry: JSON) -> Bool {
            entry["manager"]?.stringValue == manager && entry["operation"]?.stringValue == operation
        }
        var changed: Set<[String]> = []
        if let old {
            let before = old.withoutSystemFields
            let after = object.withoutSystemFields
            for path in Set(before.leafPaths()).union(after.leafPaths()) where before[path: path] != after[path: path] {
                changed.insert(path)
            }
        }
        var mine: Set<[String]>
        if let applied {
            mine = Set(applied.withoutSystemFields.leafPaths())
        } else if old == nil {
            mine = Set(object.withoutSystemFields.leafPaths().filter { $0.first != "status" })
        } else {
            mine = Set(existing.first(where: isMine)?["fieldsV1"]?.fieldSetLeafPaths() ?? []).union(changed)
        }
        var entries: [JSON] = []
        for var entry in existing where !isMine(entry) {
            guard !changed.isEmpty else {
                entries.append(entry)
                continue
            }
            let owned = Set(entry["fieldsV1"]?.fieldSetLeafPaths() ?? [])
            let kept = owned.filter { path in !changed.contains { $0.starts(with: path) || path.starts(with: $0) } }
            if kept.isEmpty { continue }
            if kept.count != owned.count { entry["fieldsV1"] = fieldSet(paths: kept) }
            entries.append(entry)
        }
        entries.append([
            "manager": .string(manager), "operation": .string(operation), "apiVersion": .string(apiVersion),
            "time": .string(Timestamp.rfc3339(Date())), "fieldsType": "FieldsV1", "fieldsV1": fieldSet(paths: mine),
        ])
        object[path: ["metadata", "managedFields"]] = .array(entries)
        return object
    }

    /// A `fieldsV1` set of leaf paths (`[["spec","replicas"]]` → `{"f:spec":{"f:replicas":{}}}`).
    static func fieldSet(paths: Set<[String]>) -> JSON {
        var set: JSON = [:]
        for path in paths.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let keys = path.map { "f:" + $0 }
            if set[path: keys] == nil { set[path: keys] = [:] }
        }
        return set
    }

    /// Server-side apply's conflict rule, simplified: a field another manager owns, by apply or
    /// by update (`kubectl patch`, `kubectl edit`, a controller), with a different value than
    /// applied conflicts (409) unless `force` is set.
    static func checkApplyConflicts(_ resource: ResourceType, old: JSON, applied: JSON, options: WriteOptions) throws {
        guard !options.force, let manager = options.fieldManager else { return }
        let appliedLeaves = applied.withoutSystemFields.leafPaths()
        var conflicts: [(field: String, message: String)] = []
        for entry in old["metadata"]?["managedFields"]?.arrayValue ?? [] {
            guard let owner = entry["manager"]?.stringValue, owner != manager else { continue }
            let owned = Set(entry["fieldsV1"]?.fieldSetLeafPaths() ?? [])
            for path in appliedLeaves where owned.contains(path) && old[path: path] != applied[path: path] {
                conflicts.append((".\(path.joined(separator: "."))", "conflict with \"\(owner)\""))
            }
        }
        guard !conflicts.isEmpty else { return }
        var error = APIError.conflict(
            resource, name: old.name ?? "",
            why: "Apply failed with \(conflicts.count) conflict\(conflicts.count == 1 ? "" : "s"): "
                + conflicts.map { "\($0.message): \($0.field)" }.joined(separator: ", "))
        error.details?["causes"] = .array(conflicts.map { ["reason": "FieldManagerConflict", "message": .string($0.message), "field": .string($0.field)] })
        throw error
    }
}

/// Object metadata, read the way every Kubernetes object carries it.
extension JSON {
    public var name: String? { self["metadata"]?["name"]?.stringValue }
    public var namespace: String? { self["metadata"]?["namespace"]?.stringValue }
    public var uid: String? { self["metadata"]?["uid"]?.stringValue }
    public var resourceVersion: String? { self["metadata"]?["resourceVersion"]?.stringValue }
    var resourceVersionNumber: Int64 { resourceVersion.flatMap { Int64($0) } ?? 0 }

    public var labels: [String: String] {
        (self["metadata"]?["labels"]?.objectValue ?? [:]).compactMapValues(\.scalarText)
    }

    func annotation(_ key: String) -> String? { self["metadata"]?["annotations"]?[key]?.stringValue }

    var isReadyPod: Bool {
        self["metadata"]?["deletionTimestamp"] == nil
            && (self["status"]?["conditions"]?.arrayValue ?? []).contains {
                $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True"
            }
    }

    /// Everything but metadata and status: what bumps `metadata.generation` when it changes.
    var specContent: JSON {
        guard var members = objectValue else { return self }
        for key in ["metadata", "status", "apiVersion", "kind"] { members[key] = nil }
        return .object(members)
    }

    var withoutManagedFields: JSON {
        var copy = self
        if copy["metadata"]?["managedFields"] != nil { copy[path: ["metadata", "managedFields"]] = nil }
        return copy
    }

    /// The fields a manager can own: without apiVersion/kind and system metadata.
    var withoutSystemFields: JSON {
        guard var members = objectValue else { return self }
        members["apiVersion"] = nil
        members["kind"] = nil
        if var metadata = members["metadata"]?.objectValue {
            for key in ["name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "deletionTimestamp"] {
                metadata[key] = nil
            }
            members["metadata"] = metadata.isEmpty ? nil : .object(metadata)
        }
        return .object(members)
    }

    var withoutNulls: JSON {
        switch self {
        case .object(let members): return .object(members.filter { !$0.value.isNull }.mapValues(\.withoutNulls))
        default: return self
        }
    }

    /// Paths to every non-object value.
    func leafPaths(prefix: [String] = []) -> [[String]] {
        guard case .object(let members) = self, !members.isEmpty else { return prefix.isEmpty ? [] : [prefix] }
        return members.keys.sorted().flatMap { members[$0]!.leafPaths(prefix: prefix + [$0]) }
    }

    /// Leaf paths of a `fieldsV1` set (`{"f:spec":{"f:replicas":{}}}` → `[["spec","replicas"]]`).
    func fieldSetLeafPaths(prefix: [String] = []) -> [[String]] {
        guard case .object(let members) = self else { return [] }
        let fields = members.filter { $0.key.hasPrefix("f:") }
        if fields.isEmpty { return prefix.isEmpty ? [] : [prefix] }
        return fields.keys.sorted().flatMap { fields[$0]!.fieldSetLeafPaths(prefix: prefix + [String($0.dropFirst(2))]) }
    }
}
