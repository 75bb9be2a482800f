public import EventLog
import Foundation

/// Appends Fleet events together with their projections, in one transaction, each stream at
/// its exact expected revision (so a projection is never computed from a stale read).
public enum FleetRecorder {
    /// What an apply, delete or upgrade did.
    public struct Outcome: Sendable {
        public var plan: DesiredStatePlan
        /// The append's result; nil when nothing was appended.
        public var appended: AppendResult?
    }

    /// Appends `events` (all of one or more streams whose current revisions are `revisions`)
    /// with the projection writes they make, plus `extraWrites`.
    ///
    /// - Throws: `EventLogError` (`.wrongExpectedRevision` when a stream moved since `revisions`).
    public static func append(
        _ events: [FleetEvent], revisions: [StreamID: StreamRevision?], actor: String, to log: EventLog,
        extraWrites: [StateWrite] = []
    ) async throws -> AppendResult? {
        var order: [StreamID] = []
        var byStream: [StreamID: [FleetEvent]] = [:]
        for event in events {
            if byStream[event.stream] == nil { order.append(event.stream) }
            byStream[event.stream, default: []].append(event)
        }
        var withRevisions: [(event: FleetEvent, revision: StreamRevision, actor: String)] = []
        var appends: [StreamAppend] = []
        for stream in order {
            let current = revisions[stream] ?? nil
            var next = current.map { $0.next } ?? StreamRevision(0)
            var proposed: [ProposedEvent] = []
            for event in byStream[stream]! {
                withRevisions.append((event, next, actor))
                proposed.append(event.proposedEvent(actor: actor))
                next = next.next
            }
            let expected: ExpectedRevision = current.map { .exact($0) } ?? .noStream
            appends.append(StreamAppend(streamID: stream, expectedRevision: expected, events: proposed))
        }
        let writes = try FleetProjection.writes(for: withRevisions) { try log.reader.state(forKey: $0) } + extraWrites
        guard !appends.isEmpty || !writes.isEmpty else { return nil }
        return try await log.append(appends, stateWrites: writes)
    }

    /// Plans `operation` against the log's current desired state and records it; re-plans
    /// (at most 8 times) when another appender moved a namespace's stream meanwhile.
    ///
    /// - Throws: ``ManifestErrors`` when the input is invalid (nothing written);
    ///   `EventLogError`.
    public static func perform(
        _ operation: FleetOperation, on log: EventLog, extraWrites: (DesiredStatePlan) -> [StateWrite] = { _ in [] }
    ) async throws -> Outcome {
        var attempt = 0
        while true {
            attempt += 1
            let plan = try operation.plan(reader: log.reader)
            let revisions = Dictionary(
                plan.revisions.map { (FleetEvent.desiredStream($0.key), $0.value) }, uniquingKeysWith: { first, _ in first })
            do {
                let result = try await append(plan.events, revisions: revisions, actor: operation.source.actor, to: log,
                                              extraWrites: extraWrites(plan))
                return Outcome(plan: plan, appended: result)
            } catch let error as EventLogError where error.code == .wrongExpectedRevision && attempt < 8 {
                continue
            }
        }
    }

    /// Records observed facts of clusters (the workflows' side), each cluster stream at its
    /// exact revision, retried when another recorder moved it.
    ///
    /// - Throws: `EventLogError`.
    public static func recordObserved(_ events: [FleetEvent], actor: String, to log: EventLog) async throws -> AppendResult? {
        precondition(events.allSatisfy { $0.stream.rawValue.hasPrefix(FleetEvent.clusterStreamPrefix) }, "recordObserved takes observed facts only")
        var attempt = 0
        while true {
            attempt += 1
            var revisions: [StreamID: StreamRevision?] = [:]
            for stream in Set(events.map(\.stream)) { revisions[stream] = .some(try log.reader.streamRevision(stream)) }
            do {
                return try await append(events, revisions: revisions, actor: actor, to: log)
            } catch let error as EventLogError where error.code == .wrongExpectedRevision && attempt < 8 {
                continue
            }
        }
    }
}

/// A change of desired state someone asked for: the same value whether the CLI records it
/// directly or hands it to a running engine through the inbox (``FleetInbox``).
public struct FleetOperation: Hashable, Codable, Sendable {
    public enum Action: Hashable, Codable, Sendable {
        case apply(files: [ManifestFile])
        case delete(files: [ManifestFile])
        case deleteCluster(namespace: String, name: String)
        case upgrade(namespace: String, cluster: String, version: KubernetesVersion)
    }

    public var action: Action
    public var source: ChangeSource

    public init(_ action: Action, source: ChangeSource) {
        self.action = action
        self.source = source
    }

    /// The namespaces the operation reads and writes.
    func namespaces() throws -> Set<String> {
        switch action {
        case .apply(let files), .delete(let files):
            let (manifests, errors) = DesiredStatePlanner.read(files)
            guard errors.isEmpty else { throw ManifestErrors(errors: errors) }
            return Set(manifests.map(\.namespace))
        case .deleteCluster(let namespace, _), .upgrade(let namespace, _, _):
            return [namespace]
        }
    }

    /// Plans the operation against the log's current desired state.
    ///
    /// - Throws: ``ManifestErrors`` (invalid input, an unknown cluster); reader errors.
    public func plan(reader: EventLogReader) throws -> DesiredStatePlan {
        let snapshot = try DesiredSnapshot.load(reader, namespaces: try namespaces())
        return try plan(snapshot)
    }

    /// Plans the operation against `snapshot`.
    ///
    /// - Throws: ``ManifestErrors``.
    public func plan(_ snapshot: DesiredSnapshot) throws -> DesiredStatePlan {
        switch action {
        case .apply(let files):
            return try DesiredStatePlanner.planApply(files, current: snapshot, source: source).get()
        case .delete(let files):
            let (manifests, _) = DesiredStatePlanner.read(files)
            let keys = manifests.map { ObjectKey(kind: $0.kind.kind, namespace: $0.namespace, name: $0.name) }
            let names = Dictionary(manifests.map { ("\($0.kind.kind)/\($0.name)", $0.file) }, uniquingKeysWith: { a, _ in a })
            var fileSource = source
            fileSource.file = files.count == 1 ? files[0].name : nil
            fileSource.digest = files.count == 1 ? files[0].digest : nil
            let (plan, _) = DesiredStatePlanner.planDelete(keys, files: names, current: snapshot, source: fileSource)
            return plan
        case .deleteCluster(let namespace, let name):
            guard let keys = DesiredStatePlanner.clusterTeardown(namespace: namespace, name: name, current: snapshot) else {
                throw ManifestErrors(errors: [ManifestError(.notFound, file: "-", object: "Cluster/\(name)",
                                                            reason: "no Cluster \(name) in namespace \(namespace)")])
            }
            return DesiredStatePlanner.planDelete(keys, current: snapshot, source: source).plan
        case .upgrade(let namespace, let cluster, let version):
            return try UpgradeRequest.plan(namespace: namespace, cluster: cluster, version: version, current: snapshot, source: source)
        }
    }
}
