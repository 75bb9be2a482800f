import EventLog
public import Logging
public import ServiceLifecycle

/// What an executor gets for one attempt.
public struct ActivityContext: Sendable {
    public var workflowID: String
    public var activityID: String
    /// `<workflow id>/<activity id>`: the executor makes its effect idempotent with it
    /// (an attempt may run again after a crash).
    public var idempotencyKey: String
    public var attempt: Int
    public var input: String
    /// When the start-to-close timeout ends, on the engine's clock: the engine then cancels
    /// this task, and the attempt's result no longer counts.
    public var deadline: Timestamp = Timestamp(nanoseconds: Int64.max)

    /// Whether the engine told this attempt to stop (a timeout, its workflow ended, the
    /// engine stops): the executor's task is cancelled. Long work checks it between steps;
    /// the Kubernetes client aborts its in-flight request on cancellation by itself.
    public var isCancelled: Bool { Task.isCancelled }

    /// Throws `CancellationError` once the engine told this attempt to stop.
    public func checkCancellation() throws { try Task.checkCancellation() }
}

/// An activity executor: an async function registered by name. It returns the output, or
/// throws ``ActivityFailure`` (any other error counts as a retryable failure of kind `error`,
/// `CancellationError` as one of kind `cancelled`). It runs in its own task, which the
/// engine cancels when the attempt times out or its workflow ends; the attempt holds its
/// concurrency slot until the executor returns (or ``EngineCore/Options/abandonGrace`` ends).
public typealias ActivityExecutor = @Sendable (ActivityContext) async throws -> String

/// The durable workflow runtime: drives an ``EngineCore`` against an ``EngineStore`` with a
/// clock, calls executors, fires timers, tails the signal inbox, and stops gracefully on
/// SIGTERM as a swift-service-lifecycle `Service`.
///
/// Creating it recovers the unfinished workflows from their snapshots; ``run()`` then
/// re-dispatches the attempts that were in flight. One commit is in flight at a time and
/// everything decided meanwhile goes into the next one (group commit at the engine).
public actor WorkflowEngine: Service {
    private let store: any EngineStore
    private let clock: any EngineClock
    private let executors: [String: ActivityExecutor]
    private let tailsInbox: Bool
    private let logger: Logger
    private let core: EngineCore

    private var stopping = false
    private var isRunning = false
    /// The bound of a graceful stop: attempts may finish until ``stopGrace`` after the stop;
    /// then their tasks are cancelled, and ``run()`` returns at the latest ``stopGrace`` later.
    public nonisolated let stopGrace: Duration
    private var stopRequestedAt: Timestamp?
    private var stopCancelled = false
    /// The executor task of each attempt that has not returned (live or told to cancel).
    private var tasks: [ActivityAttempt: Task<Void, Never>] = [:]
    /// Callers waiting for the commit of what they decided (resumed after the next append).
    private var commitWaiters: [CheckedContinuation<Void, any Error>] = []
    private var workWaiter: CheckedContinuation<Void, Never>?
    /// Where the timer loop sleeps until (nil while it runs).
    private var timerSleepsUntil: Timestamp?
    private var launchedCount = 0
    private var reportedCount = 0

    /// Workflows rebuilt at start-up, and how long it took.
    public nonisolated let recoveredWorkflows: Int
    public nonisolated let recoveryDuration: Duration

    /// Opens the engine on `store` and rebuilds every unfinished workflow from its snapshot.
    ///
    /// - Parameters:
    ///   - tailsInbox: whether to deliver requests appended to ``InboxMessage/stream``.
    ///   - stopGrace: how long a graceful stop lets attempts finish before cancelling them
    ///     (the stop then takes at most twice this).
    /// - Throws: ``EngineError`` when a snapshot cannot be read; store errors.
    public init(
        store: any EngineStore, workflows: [WorkflowDefinition], executors: [String: ActivityExecutor],
        clock: any EngineClock = WallClock(), options: EngineCore.Options = .init(), tailsInbox: Bool = true,
        logger: Logger = Logger(label: "capstan.engine"), stopGrace: Duration = .seconds(10)
    ) throws {
        self.stopGrace = stopGrace
        self.store = store
        self.clock = clock
        self.executors = executors
        self.tailsInbox = tailsInbox
        self.logger = logger
        let core = EngineCore(workflows: workflows, options: options) { workflowID in
            try store.streamExists(.forWorkflow(workflowID))
        }
        let began = ContinuousClock.now
        let snapshots = try store.stateEntries(withPrefix: StateKey.runningPrefix)
        let inboxPosition = try store.state(forKey: StateKey.inboxPosition)
            .flatMap { UInt64(String(decoding: $0, as: UTF8.self)) }.map { LogPosition($0) } ?? .start
        try core.recover(
            snapshots: snapshots, inboxPosition: inboxPosition, now: clock.now(), readStream: { try store.readStream($0) })
        // A fork (an inbox request) reads the prefix it copies from the log.
        core.readStream = { try store.readStream($0) }
        recoveryDuration = ContinuousClock.now - began
        recoveredWorkflows = snapshots.count
        recoveredStats = core.recoveryStats
        self.core = core
        let stats = core.recoveryStats
        logger.info(
            "engine.recovered",
            metadata: [
                "engine.workflows": "\(snapshots.count)", "engine.recoveryDuration": "\(recoveryDuration)",
                "engine.fromSnapshot": "\(stats.fromSnapshot)", "engine.upcast": "\(stats.upcast)",
                "engine.refolded": "\(stats.refolded)", "engine.refoldedEvents": "\(stats.refoldedEvents)",
                "engine.quarantined": "\(stats.quarantined)",
            ])
        for (workflowID, reason) in core.quarantinedWorkflows {
            logger.error("engine.quarantined", metadata: ["engine.workflow": "\(workflowID)", "engine.reason": "\(reason)"])
        }
    }

    // MARK: API

    /// Starts a workflow run; returns once its start is durable (or, before ``run()``, once
    /// it is queued for the first commit).
    ///
    /// - Throws: ``EngineError`` `.alreadyRunning` (naming the running one), `.workflowExists`,
    ///   `.unknownWorkflowType`, `.stopped`; the append's error.
    public func start(workflowID: String, type: String, input: String = "", uniqueKey: String? = nil) async throws {
        try core.start(workflowID: workflowID, type: type, input: input, uniqueKey: uniqueKey, now: clock.now())
        notify()
        guard isRunning else { return }
        try await withCheckedThrowingContinuation { commitWaiters.append($0) }
    }

    /// Delivers a signal in this process (other processes append an ``InboxMessage``).
    @discardableResult
    public func signal(workflowID: String, name: String, payload: String = "") -> Bool {
        let delivered = core.signal(workflowID: workflowID, name: name, payload: payload, now: clock.now())
        notify()
        return delivered
    }

    /// The live record of a running workflow (nil when finished or unknown).
    public func record(of workflowID: String) -> WorkflowRecord? { core.record(of: workflowID) }

    /// Ids of the running workflows.
    public var runningWorkflowIDs: [String] { core.runningWorkflowIDs }

    /// How many workflows are running.
    public var runningCount: Int { core.runningCount }

    /// The unfinished workflows by status: running, paused, quarantined (for metrics).
    public var runningStatusCounts: (running: Int, paused: Int, quarantined: Int) { core.runningStatusCounts }

    /// How many attempts are running.
    public var inFlightCount: Int { core.inFlightCount }

    /// How the start-up rebuilt the unfinished workflows (from snapshots, upcast, folded
    /// again from their streams, quarantined).
    public nonisolated var recoveryStats: EngineCore.RecoveryStats { recoveredStats }
    private nonisolated let recoveredStats: EngineCore.RecoveryStats

    /// Quarantined workflows with their reasons (their history cannot fold, or their
    /// decider failed on it).
    public var quarantinedWorkflows: [(workflowID: String, reason: String)] { core.quarantinedWorkflows }

    /// Executor tasks that have not returned (running attempts, those told to cancel, and
    /// those given up after their grace: at most `globalConcurrency + maxAbandonedExecutors`).
    public var executorTaskCount: Int { tasks.count }

    /// Executors given up after their grace that still run.
    public var abandonedExecutorCount: Int { core.abandonedExecutorCount }

    /// Where the runtime stands, for a simulation that drives it on a ``VirtualClock``: it has
    /// settled once the commit loop waits with nothing pending, the timer loop sleeps until a
    /// time still ahead, every executor task launched has entered its executor, and every
    /// executor that returned has been reported (the simulation counts the executor side).
    public struct LoopState: Sendable {
        public var commitLoopWaits: Bool
        public var pendingOutput: Bool
        public var timerLoopSleepsUntil: Timestamp?
        /// Executor tasks launched, and results reported back, since the engine was created.
        public var launched: Int
        public var reported: Int
        /// When the core next has something to do (a timer, retry, deadline or grace).
        public var nextWakeup: Timestamp?
        /// The inbox position handled (a log position).
        public var inboxPosition: UInt64
    }

    public var loopState: LoopState {
        LoopState(
            commitLoopWaits: workWaiter != nil, pendingOutput: core.hasPendingOutput, timerLoopSleepsUntil: timerSleepsUntil,
            launched: launchedCount, reported: reportedCount, nextWakeup: core.nextWakeup, inboxPosition: core.inboxPosition.rawValue)
    }

    /// Appends committed, and the events they held (for benchmarks and metrics).
    public private(set) var commitCount = 0
    public private(set) var committedEventCount = 0

    /// Stops starting attempts; ``run()`` returns once in-flight attempts have reported and
    /// every decided event is committed, in bounded time: after ``stopGrace`` the executors
    /// still running are cancelled (a cancelled attempt stays open in the log and runs again,
    /// as a new attempt, at the next start), and after twice ``stopGrace`` it returns anyway.
    public func stop() {
        guard !stopping else { return }
        stopping = true
        stopRequestedAt = clock.now()
        core.stopDispatch()
        logger.info("engine.stopping", metadata: ["engine.inFlight": "\(core.inFlightCount)"])
        notify()
    }

    /// Moves a graceful stop along its bound; true once ``run()`` should return anyway.
    private func stopBoundReached(now: Timestamp) -> Bool {
        guard let since = stopRequestedAt else { return false }
        if !stopCancelled, now >= since + stopGrace {
            stopCancelled = true
            logger.warning(
                "engine.stop.cancellingExecutors",
                metadata: ["engine.executors": "\(tasks.count)", "engine.stopGrace": "\(stopGrace)"])
            for task in tasks.values { task.cancel() }
        }
        return now >= since + stopGrace + stopGrace
    }

    // MARK: running

    /// Runs until ``stop()`` or graceful shutdown (SIGTERM through ServiceLifecycle).
    ///
    /// - Throws: an append error (the engine's memory is then ahead of the log: restart it).
    public func run() async throws {
        isRunning = true
        defer {
            isRunning = false
            for waiter in commitWaiters { waiter.resume(throwing: EngineError(.stopped, "the engine stopped before the commit")) }
            commitWaiters = []
        }
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.commitLoop() }
                group.addTask { try await self.timerLoop() }
                if tailsInbox { group.addTask { try await self.inboxLoop() } }
                // The commit loop ends the run: then the other loops are stopped.
                try await group.next()
                group.cancelAll()
                while let _ = try? await group.next() {}
            }
        } onGracefulShutdown: {
            Task { await self.stop() }
        }
    }

    private func notify() {
        if let waiter = workWaiter {
            workWaiter = nil
            waiter.resume()
        }
    }

    private func commitLoop() async throws {
        while true {
            if let batch = core.takeBatch() {
                let waiters = commitWaiters
                commitWaiters = []
                Failpoint.beforeCommit.hit()
                if !batch.streams.isEmpty || !batch.stateWrites.isEmpty {
                    do {
                        _ = try await store.append(batch.streams, stateWrites: batch.stateWrites)
                    } catch {
                        for waiter in waiters { waiter.resume(throwing: error) }
                        throw error
                    }
                    commitCount += 1
                    committedEventCount += batch.streams.reduce(0) { $0 + $1.events.count }
                    Failpoint.afterCommit.hit()
                    if Failpoint.isArmed { hitCommitFailpoints(batch) }
                }
                for waiter in waiters { waiter.resume() }
                for notice in batch.notices { logger.warning("engine.notice", metadata: ["engine.notice": "\(notice)"]) }
                for attempt in batch.cancellations { tasks[attempt]?.cancel() }
                for dispatch in batch.dispatches { launch(dispatch) }
                continue
            }
            if stopping {
                if tasks.isEmpty { return }
                if stopBoundReached(now: clock.now()) {
                    logger.error(
                        "engine.stop.abandoningExecutors",
                        metadata: [
                            "engine.executors": "\(tasks.count)",
                            "engine.attempts": "\(tasks.keys.map { "\($0.key.idempotencyKey)#\($0.attempt)" }.sorted())",
                        ])
                    return
                }
            }
            if Task.isCancelled { throw CancellationError() }
            await withTaskCancellationHandler {
                await withCheckedContinuation { workWaiter = $0 }
            } onCancel: {
                Task { await self.notify() }
            }
            // Let the results queued behind the wake-up join this batch (fewer, larger commits).
            await Task.yield()
        }
    }

    private func hitCommitFailpoints(_ batch: EngineBatch) {
        let types = Set(batch.streams.flatMap { $0.events.map(\.type) })
        if types.contains("ActivityStarted") { Failpoint.afterActivityStartedCommit.hit() }
        if types.contains("TimerFired") || types.contains("WorkflowCompleted") { Failpoint.afterTerminalOrTimerCommit.hit() }
    }

    private func timerLoop() async throws {
        // Sleeps at most this long, so a timer armed meanwhile for sooner is not missed by much.
        let longestSleep = Duration.milliseconds(20)
        while !Task.isCancelled {
            let now = clock.now()
            if stopping, stopBoundReached(now: now) || stopCancelled { notify() }
            if let next = core.nextWakeup, next <= now {
                core.advance(now: now)
                notify()
                continue
            }
            let cap = now + longestSleep
            let until = core.nextWakeup.map { min($0, cap) } ?? cap
            timerSleepsUntil = until
            defer { timerSleepsUntil = nil }
            try await clock.sleep(until: until)
        }
    }

    private func inboxLoop() async throws {
        for try await event in store.tail(InboxMessage.stream, after: core.inboxPosition) {
            try core.handleInbox(event, now: clock.now())
            notify()
        }
    }

    /// Calls the executor of `dispatch` in a task of its own, which the engine cancels when
    /// the attempt times out, its workflow ends, or a stop runs out of grace.
    private func launch(_ dispatch: ActivityDispatch) {
        guard core.isInFlight(dispatch) else { return }
        let executor = executors[dispatch.name]
        let id = dispatch.attemptID
        launchedCount += 1
        tasks[id] = Task { [self] in
            let result = await Self.call(executor, dispatch)
            await finished(dispatch, result)
        }
    }

    private func finished(_ dispatch: ActivityDispatch, _ result: Result<String, ActivityFailure>) {
        tasks[dispatch.attemptID] = nil
        reportedCount += 1
        defer { notify() }
        if stopCancelled, case .failure(let failure) = result, failure.kind == "cancelled", core.isInFlight(dispatch) {
            // Cancelled by the stop, not failed: the attempt stays open in the log and runs
            // again at the next start.
            return
        }
        core.activityFinished(dispatch, result: result, now: clock.now())
    }

    private static func call(_ executor: ActivityExecutor?, _ dispatch: ActivityDispatch) async -> Result<String, ActivityFailure> {
        guard let executor else {
            return .failure(ActivityFailure(kind: "unknownActivity", message: "no executor named \(dispatch.name)", retryable: false))
        }
        let context = ActivityContext(
            workflowID: dispatch.key.workflowID, activityID: dispatch.key.activityID,
            idempotencyKey: dispatch.key.idempotencyKey, attempt: dispatch.attempt, input: dispatch.input,
            deadline: dispatch.deadline)
        // The start-to-close timeout is the core's: at its deadline the core records the
        // timeout and the engine cancels this task; the attempt keeps its slot until the
        // executor returns or the abandon grace ends.
        let result: Result<String, ActivityFailure>
        do { result = .success(try await executor(context)) } catch let failure as ActivityFailure {
            result = .failure(failure)
        } catch is CancellationError {
            result = .failure(ActivityFailure(kind: "cancelled", message: "the attempt was cancelled"))
        } catch {
            result = .failure(ActivityFailure(kind: "error", message: "\(error)"))
        }
        Failpoint.afterActivityCallBeforeCompletion.hit()
        return result
    }
}
