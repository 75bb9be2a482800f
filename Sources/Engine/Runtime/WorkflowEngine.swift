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
}

/// An activity executor: an async function registered by name. It returns the output, or
/// throws ``ActivityFailure`` (any other error counts as a retryable failure of kind `error`).
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
    /// Callers waiting for the commit of what they decided (resumed after the next append).
    private var commitWaiters: [CheckedContinuation<Void, any Error>] = []
    private var workWaiter: CheckedContinuation<Void, Never>?
    private let dispatches: AsyncStream<ActivityDispatch>
    private let dispatchContinuation: AsyncStream<ActivityDispatch>.Continuation

    /// Workflows rebuilt at start-up, and how long it took.
    public nonisolated let recoveredWorkflows: Int
    public nonisolated let recoveryDuration: Duration

    /// Opens the engine on `store` and rebuilds every unfinished workflow from its snapshot.
    ///
    /// - Parameters:
    ///   - tailsInbox: whether to deliver requests appended to ``InboxMessage/stream``.
    /// - Throws: ``EngineError`` when a snapshot cannot be read; store errors.
    public init(
        store: any EngineStore, workflows: [WorkflowDefinition], executors: [String: ActivityExecutor],
        clock: any EngineClock = WallClock(), options: EngineCore.Options = .init(), tailsInbox: Bool = true,
        logger: Logger = Logger(label: "capstan.engine")
    ) throws {
        self.store = store
        self.clock = clock
        self.executors = executors
        self.tailsInbox = tailsInbox
        self.logger = logger
        let core = EngineCore(workflows: workflows, options: options) { workflowID in
            (try? store.streamExists(.forWorkflow(workflowID))) ?? true
        }
        let began = ContinuousClock.now
        let snapshots = try store.stateEntries(withPrefix: StateKey.runningPrefix)
        let inboxPosition = try store.state(forKey: StateKey.inboxPosition)
            .flatMap { UInt64(String(decoding: $0, as: UTF8.self)) }.map { LogPosition($0) } ?? .start
        try core.recover(snapshots: snapshots, inboxPosition: inboxPosition, now: clock.now())
        recoveryDuration = ContinuousClock.now - began
        recoveredWorkflows = snapshots.count
        self.core = core
        (dispatches, dispatchContinuation) = AsyncStream<ActivityDispatch>.makeStream()
        logger.info(
            "engine.recovered",
            metadata: ["engine.workflows": "\(snapshots.count)", "engine.recoveryDuration": "\(recoveryDuration)"])
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

    /// How many attempts are running.
    public var inFlightCount: Int { core.inFlightCount }

    /// Appends committed, and the events they held (for benchmarks and metrics).
    public private(set) var commitCount = 0
    public private(set) var committedEventCount = 0

    /// Stops starting attempts; ``run()`` returns once in-flight attempts have reported and
    /// every decided event is committed.
    public func stop() {
        guard !stopping else { return }
        stopping = true
        core.stopDispatch()
        logger.info("engine.stopping", metadata: ["engine.inFlight": "\(core.inFlightCount)"])
        notify()
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
                group.addTask { await self.dispatchLoop() }
                if tailsInbox { group.addTask { try await self.inboxLoop() } }
                // The commit loop ends the run: then the other loops are stopped.
                try await group.next()
                dispatchContinuation.finish()
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
                if !batch.streams.isEmpty {
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
                for dispatch in batch.dispatches { dispatchContinuation.yield(dispatch) }
                continue
            }
            if stopping && core.inFlightCount == 0 { return }
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
            if let next = core.nextWakeup, next <= now {
                core.advance(now: now)
                notify()
                continue
            }
            let cap = now + longestSleep
            try await clock.sleep(until: core.nextWakeup.map { min($0, cap) } ?? cap)
        }
    }

    private func inboxLoop() async throws {
        for try await event in store.tail(InboxMessage.stream, after: core.inboxPosition) {
            core.handleInbox(event, now: clock.now())
            notify()
        }
    }

    private nonisolated func dispatchLoop() async {
        await withDiscardingTaskGroup { group in
            for await dispatch in dispatches {
                group.addTask { await self.call(dispatch) }
            }
        }
    }

    private func isWanted(_ dispatch: ActivityDispatch) -> Bool { core.isInFlight(dispatch) }

    private func finished(_ dispatch: ActivityDispatch, _ result: Result<String, ActivityFailure>) {
        core.activityFinished(dispatch, result: result, now: clock.now())
        notify()
    }

    private nonisolated func call(_ dispatch: ActivityDispatch) async {
        guard await isWanted(dispatch) else { return }
        guard let executor = executors[dispatch.name] else {
            let failure = ActivityFailure(kind: "unknownActivity", message: "no executor named \(dispatch.name)", retryable: false)
            await finished(dispatch, .failure(failure))
            return
        }
        let context = ActivityContext(
            workflowID: dispatch.key.workflowID, activityID: dispatch.key.activityID,
            idempotencyKey: dispatch.key.idempotencyKey, attempt: dispatch.attempt, input: dispatch.input)
        // The start-to-close timeout is the core's: a deadline wakeup records the timeout and
        // retries, and this attempt's late result is then ignored. Executors bound their own
        // work (curl timeouts); not racing each call with a sleep keeps a step cheap.
        let result: Result<String, ActivityFailure>
        do { result = .success(try await executor(context)) } catch let failure as ActivityFailure {
            result = .failure(failure)
        } catch {
            result = .failure(ActivityFailure(kind: "error", message: "\(error)"))
        }
        Failpoint.afterActivityCallBeforeCompletion.hit()
        await finished(dispatch, result)
    }
}
