// The fleet controller as `capstan serve` runs it: level-triggered, like a Kubernetes
// controller. It folds the desired-state streams (all of them at start-up, then what each
// gains, read from those streams only, never the engine's events), and on every desired change and every tick reconciles each cluster: read the
// lifecycle workflows running for it, observe it, record what changed, plan
// (``FleetController/plan(desired:observed:running:tuning:)``, pure) and start what closes
// the gap. Exactly-once starts come from the engine, not from memory here: the ids derive
// from the desired change, so a restart re-derives them and the engine refuses a duplicate.
public import Engine
public import EventLog
public import Fleet
import Foundation
public import Logging
public import ServiceLifecycle

/// Runs the fleet controller until graceful shutdown.
public actor FleetControllerService: Service {
    /// The seam for health checks (the remediation side): given a cluster that has nothing
    /// else to do (no lifecycle workflow running, control plane ready, not paused), what it
    /// observed and the time, the remediation workflows to start (ids derived from what they
    /// remedy, the cluster's unique key, as ``FleetController/Start``) and the facts to record
    /// (``HealthCheckRemediation/seam(log:tuning:rateLimit:)`` is the one serve uses).
    public typealias HealthChecks = @Sendable (DesiredCluster, ObservedCluster, Timestamp) -> HealthCheckActions

    public struct Options: Sendable {
        /// Between two reconciles of every cluster when nothing changes.
        public var interval: Duration
        public var tuning: FleetController.Tuning
        /// Clusters observed at once.
        public var concurrency: Int

        public init(interval: Duration = .seconds(2), tuning: FleetController.Tuning = .init(), concurrency: Int = 8) {
            self.interval = interval
            self.tuning = tuning
            self.concurrency = concurrency
        }
    }

    static let actor = "capstan-controller"

    private let log: EventLog
    private let engine: WorkflowEngine
    private let observer: FleetObserver
    private let clock: any EngineClock
    private let options: Options
    private let healthChecks: HealthChecks?
    private let logger: Logger
    private var fleet = DesiredFleet()
    private var dirty = true
    /// Workflow ids whose ControllerStartedWorkflow entry is known to be recorded.
    private var audited: Set<String> = []
    /// Reconcile passes done (for tests and logs).
    public private(set) var passes = 0

    public init(
        log: EventLog, engine: WorkflowEngine, observer: FleetObserver, clock: any EngineClock, options: Options = Options(),
        healthChecks: HealthChecks? = nil, logger: Logger = Logger(label: "capstan.controller")
    ) {
        self.log = log
        self.engine = engine
        self.observer = observer
        self.clock = clock
        self.options = options
        self.healthChecks = healthChecks
        self.logger = logger
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await self.loop() }
        } catch is CancellationError {
            // Graceful shutdown: every start and observation already recorded is committed.
        }
    }

    private func loop() async throws {
        // Everything desired so far, before planning anything (a partial fold could plan a
        // create for a cluster deleted later in the stream).
        try refreshDesired()
        logger.info("controller.started", metadata: ["controller.clusters": "\(fleet.clusters.count)"])
        while !Task.isCancelled {
            try await reconcileAll()
            try await waitForWork()
        }
    }

    /// The namespaces with desired state: those holding applied objects, and those of
    /// clusters observed (a deleted cluster's namespace may hold nothing else).
    private func namespaces() throws -> Set<String> {
        var result = Set(fleet.namespaceNames)
        for prefix in [FleetStateKey.objectPrefix, FleetStateKey.observedPrefix] {
            for (key, _) in try log.reader.stateEntries(withPrefix: prefix) {
                if let namespace = key.dropFirst(prefix.count).split(separator: "/").first { result.insert(String(namespace)) }
            }
        }
        return result
    }

    /// Folds what the desired streams gained since the last fold (reading only those streams,
    /// never the engine's events). Returns whether anything was folded.
    @discardableResult
    private func refreshDesired(_ known: Set<String>? = nil) throws -> Bool {
        var changed = false
        for namespace in try known ?? namespaces() {
            let stream = FleetEvent.desiredStream(namespace)
            guard let revision = try log.reader.streamRevision(stream) else { continue }
            let folded = fleet.revision(of: namespace)
            if let folded, folded >= revision.rawValue { continue }
            let from = folded.map { StreamRevision($0 + 1) } ?? StreamRevision(0)
            for recorded in try log.reader.readStream(stream, from: from) { try fleet.fold(recorded) }
            changed = true
        }
        if changed { dirty = true }
        return changed
    }

    /// Returns after the interval, or sooner when a known namespace's desired state changed
    /// (new namespaces are found at the next pass).
    private func waitForWork() async throws {
        let deadline = ContinuousClock.now + options.interval
        let step = min(options.interval, .milliseconds(25))
        let known = Set(fleet.namespaceNames)
        while !dirty, ContinuousClock.now < deadline {
            try await Task.sleep(for: step)
            try refreshDesired(known)
        }
    }

    /// One pass over every cluster.
    func reconcileAll() async throws {
        try refreshDesired()
        dirty = false
        passes += 1
        let clusters = fleet.clusters
        let runningIDs = await engine.runningWorkflowIDs
        try await withThrowingTaskGroup(of: Void.self) { group in
            var active = 0
            for cluster in clusters {
                let running = runningIDs.filter { FleetController.belongs($0, namespace: cluster.namespace, name: cluster.name) }
                if active >= max(1, options.concurrency) {
                    try await group.next()
                    active -= 1
                }
                group.addTask { try await self.reconcile(cluster, running: running) }
                active += 1
            }
            try await group.waitForAll()
        }
    }

    /// Observe, record the changes, plan, start. `running` was read before the observation,
    /// so a workflow that finished since left its effects in what was observed.
    private func reconcile(_ cluster: DesiredCluster, running: [String]) async throws {
        let observation: ClusterObservation
        do { observation = try await observer.observe(cluster.ref) } catch {
            logger.notice(
                "controller.observe.failed", metadata: ["cluster": "\(cluster.namespace)/\(cluster.name)", "error": "\(error)"])
            return  // no plan from a guess; the next pass tries again
        }
        let stored = try ObservedCluster.stored(log.reader, namespace: cluster.namespace, cluster: cluster.name)
        let changes = observation.changes(from: stored, namespace: cluster.namespace, cluster: cluster.name, at: clock.now())
        if !changes.isEmpty {
            _ = try await FleetRecorder.recordObserved(changes, actor: Self.actor, to: log)
        }
        let observed = try ObservedCluster.stored(log.reader, namespace: cluster.namespace, cluster: cluster.name)
        // A start whose decision a SIGKILL kept out of the timeline (the engine committed the
        // start, the audit append never ran): record it now, once.
        for id in running where FleetController.isTopLevel(id) && !audited.contains(id) {
            let type = await engine.record(of: id)?.type ?? "workflow"
            try await ensureAudited(id, type: type, reason: "running when this controller started", cluster: cluster)
        }
        var starts = FleetController.plan(desired: cluster, observed: observed, running: running, tuning: options.tuning)
        if starts.isEmpty, running.isEmpty, !cluster.deleted, !cluster.paused, observed.controlPlane?.ready == true,
            let healthChecks
        {
            let actions = healthChecks(cluster, observed, clock.now())
            if !actions.facts.isEmpty { _ = try await FleetRecorder.recordObserved(actions.facts, actor: Self.actor, to: log) }
            for start in actions.starts {
                if try await self.start(start, cluster: cluster), let fact = actions.onStarted[start.workflowID] {
                    _ = try await FleetRecorder.recordObserved([fact], actor: Self.actor, to: log)
                }
            }
            return
        }
        for start in starts { try await self.start(start, cluster: cluster) }
    }

    /// Starts `start`; false when the engine refused it (already acted on, or the cluster busy).
    @discardableResult
    private func start(_ start: FleetController.Start, cluster: DesiredCluster) async throws -> Bool {
        do {
            try await engine.start(workflowID: start.workflowID, type: start.type, input: start.input, uniqueKey: start.uniqueKey)
        } catch let error as EngineError where error.code == .workflowExists {
            // The change was acted on already (before a restart, or a moment ago): normal.
            logger.debug("controller.start.refused", metadata: ["workflow": "\(start.workflowID)", "reason": "\(error.code)"])
            try await ensureAudited(start.workflowID, type: start.type, reason: start.reason, cluster: cluster)
            return false
        } catch let error as EngineError where error.code == .alreadyRunning {
            // The change was acted on already (before a restart, or a moment ago), or another
            // lifecycle workflow holds the cluster: normal, the next pass sees the new level.
            logger.debug("controller.start.refused", metadata: ["workflow": "\(start.workflowID)", "reason": "\(error.code)"])
            return false
        } catch let error as EngineError where error.code == .stopped {
            return false
        }
        logger.info(
            "controller.started.workflow",
            metadata: ["workflow": "\(start.workflowID)", "type": "\(start.type)", "reason": "\(start.reason)"])
        try await recordDecision(start.workflowID, type: start.type, reason: start.reason, cluster: cluster)
        return true
    }

    private func recordDecision(_ id: String, type: String, reason: String, cluster: DesiredCluster) async throws {
        _ = try await FleetRecorder.recordObserved(
            [.workflowStarted(
                namespace: cluster.namespace, cluster: cluster.name, workflowID: id, workflowType: type, reason: reason,
                atNanoseconds: clock.now().nanoseconds)],
            actor: Self.actor, to: log)
        audited.insert(id)
    }

    /// Records the decision to start `id` unless the cluster's timeline has it.
    private func ensureAudited(_ id: String, type: String, reason: String, cluster: DesiredCluster) async throws {
        guard !audited.contains(id) else { return }
        let timeline = try FleetView.audit(log.reader, namespace: cluster.namespace, cluster: cluster.name)
        if timeline.contains(where: { $0.event == "ControllerStartedWorkflow" && $0.summary.contains(" \(id): ") }) {
            audited.insert(id)
            return
        }
        try await recordDecision(id, type: type, reason: reason, cluster: cluster)
    }
}
