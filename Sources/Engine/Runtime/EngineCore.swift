import CapstanSupport
import Collections
public import EventLog
import Foundation
import Synchronization

/// The engine without I/O: it turns inputs (a start, a signal, an activity's result, the
/// passing of time) into events for the log, snapshots for the `state` database and
/// activity calls to make once those are durable.
///
/// The same core runs under the real runtime (``WorkflowEngine``) and under the
/// deterministic simulation (one seed, a virtual clock, crashes at chosen points). It is
/// not thread-safe: one owner drives it. Every mutation goes first into the pending
/// batch; ``takeBatch()`` hands it over, and its ``EngineBatch/dispatches`` may only be
/// called after the batch's append has committed: `ActivityStarted` is durable before
/// the call.
public final class EngineCore {
    /// Concurrency limits and the seed of the jitter source.
    public struct Options: Sendable {
        /// Attempts running at once, in all.
        public var globalConcurrency: Int
        /// Attempts running at once per ``ActivityRequest/concurrencyKey``.
        public var perKeyConcurrency: Int
        /// Seeds the backoff jitter and event ids (the runtime holds randomness, not deciders);
        /// drawn from the system generator unless set (tests and simulations set it).
        public var seed: UInt64
        /// Written on every event's metadata.
        public var actor: String
        /// How long an attempt that timed out or whose workflow ended keeps its concurrency
        /// slot after its executor was told to cancel: the slot is free once the executor
        /// returns, or after this grace, recorded as `ActivityAttemptAbandoned`.
        public var abandonGrace: Duration
        /// How many times the engine's stop or crash may interrupt one activity before it
        /// fails for good (an activity that crashes the process must not retry forever).
        public var maxInterruptions: Int
        /// How many executors given up after ``abandonGrace`` may still run (their tasks
        /// cannot be killed, only told to cancel). At this bound the engine starts no new
        /// attempt until one of them returns, and says so once: hung executors cannot pile
        /// up without end.
        public var maxAbandonedExecutors: Int

        public init(
            globalConcurrency: Int = 1024, perKeyConcurrency: Int = 4, seed: UInt64 = SystemSeed.next(), actor: String = "engine",
            abandonGrace: Duration = .seconds(30), maxInterruptions: Int = 50, maxAbandonedExecutors: Int = 256
        ) {
            self.maxInterruptions = max(1, maxInterruptions)
            self.maxAbandonedExecutors = max(1, maxAbandonedExecutors)
            precondition(globalConcurrency >= 1 && perKeyConcurrency >= 1, "concurrency limits must be at least 1")
            precondition(abandonGrace >= .zero, "the abandon grace cannot be negative")
            self.globalConcurrency = globalConcurrency
            self.perKeyConcurrency = perKeyConcurrency
            self.seed = seed
            self.actor = actor
            self.abandonGrace = abandonGrace
        }
    }

    /// A workflow's activity, as the runtime tracks it.
    public struct ActivityKey: Hashable, Sendable, Comparable {
        public var workflowID: String
        public var activityID: String
        /// `<workflow id>/<activity id>`: what executors make their effect idempotent with.
        public var idempotencyKey: String { "\(workflowID)/\(activityID)" }
        public static func < (lhs: ActivityKey, rhs: ActivityKey) -> Bool {
            (lhs.workflowID, lhs.activityID) < (rhs.workflowID, rhs.activityID)
        }
    }

    struct Instance {
        var record: WorkflowRecord
        var state: any WorkflowStateBox
        let definition: WorkflowDefinition
        /// The revision the next event of the stream gets.
        var nextRevision: UInt64
    }

    private struct InFlight {
        var attempt: Int
        var concurrencyKey: String?
        /// Its armed wakeup: the deadline while it runs, the grace end while it drains.
        var wakeup: UInt64 = 0
    }

    private struct Wakeup: Comparable {
        enum Kind {
            case timer(workflowID: String, timerID: String)
            case retry(ActivityKey, failedAttempt: Int)
            case deadline(ActivityKey, attempt: Int)
            /// The end of the grace of an attempt told to cancel.
            case grace(ActivityKey, attempt: Int)
        }
        var at: Timestamp
        var sequence: UInt64
        var kind: Kind
        static func == (lhs: Wakeup, rhs: Wakeup) -> Bool { lhs.at == rhs.at && lhs.sequence == rhs.sequence }
        static func < (lhs: Wakeup, rhs: Wakeup) -> Bool { (lhs.at, lhs.sequence) < (rhs.at, rhs.sequence) }
    }

    public let options: Options
    private let definitions: [String: WorkflowDefinition]
    /// Whether a workflow id was ever used (a finished run's stream), asked of the store.
    /// It throws when the store cannot answer: that is never taken as an answer.
    private let idIsTaken: (String) throws -> Bool
    private var random: SplitMix64

    private(set) var instances: [String: Instance] = [:]
    private var uniqueKeys: [String: String] = [:]

    private var pendingStreams: OrderedDictionary<String, StreamAppend> = [:]
    private var touched: OrderedSet<String> = []
    private var finished: [String: Instance] = [:]
    private var pendingStateWrites: OrderedDictionary<String, StateWrite> = [:]
    private var pendingDispatches: [ActivityDispatch] = []

    /// Attempts whose result counts.
    private var inFlight: [ActivityKey: InFlight] = [:]
    /// Attempts told to cancel (timed out, workflow ended) whose executor has not returned:
    /// their result no longer counts, but they hold their slot until they return or their
    /// grace ends. At most one per key: a key's next attempt waits for it.
    private var draining: [ActivityKey: InFlight] = [:]
    /// Slots held per concurrency key, by live and draining attempts.
    private var inFlightPerKey: [String: Int] = [:]
    private var pendingCancellations: [ActivityAttempt] = []
    private var pendingNotices: [String] = []
    private var waiting: Deque<ActivityKey> = []
    /// Attempts waiting for a slot of their concurrency key, in arrival order.
    private var parked: [String: Deque<ActivityKey>] = [:]
    /// Attempts waiting for their previous attempt, told to cancel, to return.
    private var parkedBehindDrain: Set<ActivityKey> = []
    /// Workflows that finished in the batch handed out last: until it has committed (by the
    /// next ``takeBatch()``, one commit being in flight at a time) their stream is not
    /// visible to `idIsTaken`, and a start of the same id must still be refused.
    private var finishedInLastBatch: Set<String> = []
    private var wakeups = Heap<Wakeup>()
    private var wakeupSequence: UInt64 = 0
    /// Sequences of the wakeups still wanted. A wakeup whose attempt returned, whose timer
    /// was cancelled or whose workflow ended is disarmed (removed from here) at once, and
    /// the heap is compacted once it holds more stale entries than live ones: pending
    /// wakeups stay bounded by what is live, not by steps x timeout.
    private var liveWakeups: Set<UInt64> = []
    /// Armed timer wakeups per workflow and timer id, and armed retry wakeups per activity.
    private var timerWakeups: [String: [String: UInt64]] = [:]
    private var retryWakeups: [ActivityKey: UInt64] = [:]
    /// Attempts whose executor outlived its grace and has not returned (at most
    /// ``Options/maxAbandonedExecutors``).
    private var abandonedExecutors: Set<ActivityAttempt> = []
    private var saidAbandonedBound = false
    private var dispatchStopped = false

    /// The inbox position whose events are handled (persisted with the next batch).
    public private(set) var inboxPosition = LogPosition.start
    private var inboxPositionDirty = false

    /// - Parameters:
    ///   - workflows: the workflow types this engine runs.
    ///   - idIsTaken: whether a workflow id has a stream already (finished runs included);
    ///     it throws when the store cannot tell.
    public init(workflows: [WorkflowDefinition], options: Options, idIsTaken: @escaping (String) throws -> Bool) {
        var byType: [String: WorkflowDefinition] = [:]
        for definition in workflows {
            precondition(byType[definition.type] == nil, "workflow type \(definition.type) registered twice")
            byType[definition.type] = definition
        }
        definitions = byType
        self.options = options
        self.idIsTaken = idIsTaken
        random = SplitMix64(seed: options.seed)
    }

    // MARK: inputs

    /// Starts a run of workflow `type` with id `workflowID`.
    ///
    /// - Throws: ``EngineError`` `.alreadyRunning` naming the run that holds `uniqueKey`,
    ///   `.workflowExists` when the id was used, `.unknownWorkflowType`, `.stopped`,
    ///   `.storeFailure` when the store cannot tell whether the id was used.
    public func start(workflowID: String, type: String, input: String, uniqueKey: String? = nil, now: Timestamp) throws {
        guard !dispatchStopped else { throw EngineError(.stopped, "the engine is stopping; workflow \(workflowID) not started") }
        guard let definition = definitions[type] else {
            throw EngineError(.unknownWorkflowType, "workflow \(workflowID): no workflow type named \(type) is registered")
        }
        guard !workflowID.isEmpty, !workflowID.contains("@"),
            StreamID.forWorkflow(workflowID, run: 1_000_000).rawValue.utf8.count <= StreamID.maxLengthBytes
        else {
            throw EngineError(.invalidInput, "workflow id \(workflowID.debugDescription): must be 1 to 220 bytes without @")
        }
        do { try definition.checkInput(input) } catch {
            throw EngineError(.invalidInput, "workflow \(workflowID): \((error as? EngineError)?.message ?? "\(error)")")
        }
        if let key = uniqueKey, let holder = uniqueKeys[key] {
            throw EngineError(.alreadyRunning, "unique key \(key) is held by running workflow \(holder); \(workflowID) not started")
        }
        guard instances[workflowID] == nil, finished[workflowID] == nil, !finishedInLastBatch.contains(workflowID),
            unfoldable[workflowID] == nil, try !isTakenInStore(workflowID)
        else {
            throw EngineError(.workflowExists, "workflow \(workflowID) exists already; workflow ids are never reused")
        }
        let start = WorkflowStart(type: type, deciderVersion: definition.version, input: input, uniqueKey: uniqueKey)
        begin(workflowID: workflowID, definition: definition, start: start, now: now)
    }

    /// Delivers a signal; `cancel`, `pause` and `resume` are acted on by the engine.
    /// Returns false when no running workflow has this id (the signal is dropped).
    @discardableResult
    public func signal(workflowID: String, name: String, payload: String, now: Timestamp) -> Bool {
        guard let instance = instances[workflowID] else { return false }
        if name == EngineSignal.cancel {
            cancel(workflowID: workflowID, reason: payload.isEmpty ? "cancelled by signal" : payload, now: now)
            return true
        }
        if name == EngineSignal.retry {
            return retryActivity(workflowID: workflowID, activityID: payload, by: "signal", now: now)
        }
        emit(.signalReceived(name: name, payload: payload), to: workflowID, now: now)
        let timeoutID = WorkflowCommand.signalTimeoutTimerID(name)
        if instances[workflowID]?.record.timers[timeoutID] != nil {
            emit(.timerCancelled(timerID: timeoutID), to: workflowID, now: now)
        }
        if name == EngineSignal.pause || name == EngineSignal.resume {
            // Pause and resume reach the children too.
            for (childID, status) in instance.record.children.sorted(by: { $0.key < $1.key }) where status == .running {
                signal(workflowID: childID, name: name, payload: payload, now: now)
            }
        }
        if name == EngineSignal.resume && instance.record.paused {
            requeueAfterResume(workflowID: workflowID, now: now)
        }
        decideLoop(workflowID, now: now)
        return true
    }

    /// Runs a failed activity of a running workflow again, as a new attempt with the retry
    /// policy's budget afresh (``WorkflowEvent/activityRetryRequested(activityID:by:)``).
    /// Returns false when the workflow does not run or the activity has not failed for good.
    @discardableResult
    public func retryActivity(workflowID: String, activityID: String, by: String, now: Timestamp) -> Bool {
        guard let instance = instances[workflowID], instance.record.quarantine == nil,
            instance.record.activities[activityID]?.phase == .failed
        else { return false }
        emit(.activityRetryRequested(activityID: activityID, by: by), to: workflowID, now: now)
        waiting.append(ActivityKey(workflowID: workflowID, activityID: activityID))
        decideLoop(workflowID, now: now)
        return true
    }

    /// Cancels a running workflow and, through it, its running children. A type that
    /// ``Workflow/cleansUpOnCancel`` keeps deciding (its decider sees
    /// ``WorkflowEvent/cancelRequested(reason:)``) and ends as cancelled once it asks for
    /// nothing new and no activity or child is open, or when it completes or fails.
    public func cancel(workflowID: String, reason: String, now: Timestamp) {
        guard let instance = instances[workflowID], !instance.record.cancelRequested else { return }
        emit(.cancelRequested(reason: reason), to: workflowID, now: now)
        guard instance.definition.cleansUpOnCancel, instance.record.quarantine == nil else {
            finish(workflowID, with: .workflowCancelled(reason: reason), now: now)
            pump(now: now)
            return
        }
        for (childID, status) in instance.record.children.sorted(by: { $0.key < $1.key }) where status == .running {
            cancel(workflowID: childID, reason: "parent \(workflowID) cancelled: \(reason)", now: now)
        }
        decideLoop(workflowID, now: now)
    }

    /// Reads a whole workflow stream from the log, for ``fork(workflowID:run:throughRevision:newID:signal:now:)``
    /// (``WorkflowEngine`` sets it from its store; without it a fork is refused).
    public var readStream: ((StreamID) throws -> [RecordedEvent])?

    /// Starts `newID` from a prefix of another run's history (Temporal's reset with a signal,
    /// DBOS's fork): events 0 through `throughRevision` of run `run` of `workflowID` are copied
    /// into `workflow/<newID>` with their recorded times (the start says where it came from,
    /// ``WorkflowStart/forkedFrom``), then the new run goes on as a restart at that point
    /// would: an attempt that was running at the cut is settled as interrupted and runs again
    /// as a new attempt (under the new id's idempotency keys), a scheduled one waits for its
    /// slot, a backoff re-arms its retry, a pending timer re-arms at its recorded time. Then
    /// `signal` is delivered (as ``signal(workflowID:name:payload:now:)`` would), or the
    /// decider asked what comes next, in this same step. The old stream is not written.
    ///
    /// The fork is a run of its own: no parent (a child's fork is not its parent's child), the
    /// old run's type, input and unique key, and the decider registered now.
    ///
    /// - Throws: ``EngineError`` `.invalidInput` (a bad new id, no such stream, a revision past
    ///   its end, a terminal event or a running child inside the prefix, a history the
    ///   decider cannot fold), `.alreadyRunning` (the unique key is held), `.workflowExists`
    ///   (the new id was used), `.unknownWorkflowType`, `.corruptHistory`, `.stopped`.
    public func fork(
        workflowID: String, run: Int = 1, throughRevision: UInt64, newID: String, signal: (name: String, payload: String)?,
        now: Timestamp
    ) throws {
        let what = "fork of workflow \(workflowID)\(run > 1 ? " run \(run)" : "") at revision \(throughRevision) as \(newID)"
        guard !dispatchStopped else { throw EngineError(.stopped, "the engine is stopping; \(what) not started") }
        guard !newID.isEmpty, !newID.contains("@"),
            StreamID.forWorkflow(newID, run: 1_000_000).rawValue.utf8.count <= StreamID.maxLengthBytes
        else {
            throw EngineError(.invalidInput, "\(what): new workflow id \(newID.debugDescription): must be 1 to 220 bytes without @")
        }
        guard let readStream else { throw EngineError(.invalidInput, "\(what): this engine was given no stream reader") }
        let stream = StreamID.forWorkflow(workflowID, run: run)
        let events = try readStream(stream)
        guard !events.isEmpty else { throw EngineError(.invalidInput, "\(what): stream \(stream) has no events") }
        guard throughRevision < UInt64(events.count) else {
            throw EngineError(
                .invalidInput, "\(what): stream \(stream) ends at revision \(events.count - 1); the prefix must end at or before it")
        }
        let prefix = Array(events[...Int(throughRevision)])
        var copied: [StampedWorkflowEvent] = []
        for event in prefix {
            let stamped = try WorkflowEventCodec.decode(event)
            guard !stamped.event.isTerminal else {
                throw EngineError(
                    .invalidInput,
                    "\(what): revision \(event.revision) (\(event.type)) ends the run; fork from a revision before it")
            }
            copied.append(stamped)
        }
        guard case .workflowStarted(let old) = copied[0].event else {
            throw EngineError(.corruptHistory, "\(what): stream \(stream) does not begin with WorkflowStarted")
        }
        // The decider must fold the prefix: a fork that would start quarantined is refused.
        let folded = try fold(prefix)
        if let reason = folded.record.quarantine { throw EngineError(.invalidInput, "\(what): its decider cannot fold the prefix: \(reason)") }
        if let child = folded.record.children.filter({ $0.value == .running }).keys.sorted().first {
            throw EngineError(
                .invalidInput,
                "\(what): child workflow \(child) was running at revision \(throughRevision) and belongs to \(workflowID); fork from before it started or after it ended")
        }
        guard let definition = definitions[old.type] else {
            throw EngineError(.unknownWorkflowType, "\(what): no workflow type named \(old.type) is registered")
        }
        if let key = old.uniqueKey, let holder = uniqueKeys[key] {
            throw EngineError(.alreadyRunning, "\(what): unique key \(key) is held by running workflow \(holder)")
        }
        guard instances[newID] == nil, finished[newID] == nil, !finishedInLastBatch.contains(newID), unfoldable[newID] == nil,
            try !isTakenInStore(newID)
        else {
            throw EngineError(.workflowExists, "\(what): workflow \(newID) exists already; workflow ids are never reused")
        }

        // Checked: from here on nothing throws. Copy the prefix, its start rewritten.
        let start = WorkflowStart(
            type: old.type, deciderVersion: definition.version, input: old.input, parentID: nil, uniqueKey: old.uniqueKey,
            run: 1, carriedState: old.carriedState,
            forkedFrom: WorkflowForkOrigin(workflowID: workflowID, run: run, revision: throughRevision))
        let state: any WorkflowStateBox
        do { state = try definition.startState(start) } catch { preconditionFailure("the fold above decoded this start: \(error)") }
        instances[newID] = Instance(
            record: WorkflowRecord(workflowID: newID), state: state, definition: definition, nextRevision: 0)
        if let key = start.uniqueKey {
            uniqueKeys[key] = newID
            pendingStateWrites[StateKey.unique(key)] = .put(key: StateKey.unique(key), value: Array(newID.utf8))
        }
        emit(.workflowStarted(start), to: newID, now: copied[0].at)
        for stamped in copied.dropFirst() { emit(stamped.event, to: newID, now: stamped.at) }

        // Open work at the cut goes on as after a restart there. An attempt running at the
        // cut never ended here: it counts as interrupted (not against the retry budget) and
        // runs again as a new attempt.
        resumeOpenWork(of: instances[newID]!.record, now: now) { key, attempt in
            settle(
                .failure(
                    ActivityFailure(
                        kind: ActivityFailure.interruptedKind,
                        message: "forked from \(workflowID) at revision \(throughRevision) while attempt \(attempt) ran")),
                of: key, attempt: attempt, now: now)
        }
        if let signal {
            self.signal(workflowID: newID, name: signal.name, payload: signal.payload, now: now)
        } else {
            decideLoop(newID, now: now)
        }
    }

    /// Handles an event of the signal inbox stream at `position` (once per position).
    ///
    /// - Throws: ``EngineError`` `.storeFailure` when a start cannot be checked against the
    ///   store; the request is then not consumed (the inbox position stays before it), so a
    ///   restarted engine handles it again.
    public func handleInbox(_ recorded: RecordedEvent, now: Timestamp) throws {
        guard recorded.position > inboxPosition else { return }
        let positionBefore = (inboxPosition, inboxPositionDirty)
        inboxPosition = recorded.position
        inboxPositionDirty = true
        let message: InboxMessage?
        do { message = try InboxMessage.decode(recorded) } catch {
            pendingNotices.append("inbox request skipped: \((error as? EngineError)?.message ?? "\(error)")")
            return
        }
        switch message {
        case nil:
            return
        case .signal(let workflowID, let name, let payload):
            if !signal(workflowID: workflowID, name: name, payload: payload, now: now) {
                pendingNotices.append("inbox signal \(name) at position \(recorded.position) dropped: no running workflow \(workflowID)")
            }
        case .start(let workflowID, let type, let input, let uniqueKey):
            // The CLI checks the state database for the result; the operator hears of a refusal.
            do { try start(workflowID: workflowID, type: type, input: input, uniqueKey: uniqueKey, now: now) } catch let error
                as EngineError where error.code == .storeFailure
            {
                (inboxPosition, inboxPositionDirty) = positionBefore
                throw error
            } catch {
                pendingNotices.append(
                    "inbox start of \(workflowID) at position \(recorded.position) refused: \((error as? EngineError)?.message ?? "\(error)")")
            }
        case .fork(let workflowID, let run, let throughRevision, let newID, let name, let payload):
            do {
                try fork(
                    workflowID: workflowID, run: run, throughRevision: throughRevision, newID: newID,
                    signal: name.map { (name: $0, payload: payload) }, now: now)
            } catch let error as EngineError where error.code == .storeFailure {
                (inboxPosition, inboxPositionDirty) = positionBefore
                throw error
            } catch let error where !(error is EngineError) {
                // The old stream could not be read: a store error, not a refusal.
                (inboxPosition, inboxPositionDirty) = positionBefore
                throw EngineError(.storeFailure, "inbox fork of \(workflowID) at position \(recorded.position): \(error)")
            } catch {
                pendingNotices.append(
                    "inbox fork at position \(recorded.position) refused: \((error as? EngineError)?.message ?? "\(error)")")
            }
        }
    }

    /// Reports how an attempt ended. Stale reports (a timed-out or re-dispatched attempt,
    /// a finished workflow) are ignored.
    public func activityFinished(_ dispatch: ActivityDispatch, result: Result<String, ActivityFailure>, now: Timestamp) {
        let key = dispatch.key
        if abandonedExecutors.remove(dispatch.attemptID) != nil {
            // An executor given up after its grace returned at last: one fewer hung task.
            pump(now: now)
            return
        }
        if let drained = draining[key], drained.attempt == dispatch.attempt {
            // A cancelled attempt returned: its slot is free now; its result was settled.
            releaseDraining(key)
            pump(now: now)
            return
        }
        guard let running = inFlight[key], running.attempt == dispatch.attempt else { return }
        release(key)
        settle(result, of: key, attempt: dispatch.attempt, now: now)
        decideLoop(key.workflowID, now: now)
    }

    /// Records how attempt `attempt` of `key` ended (its slot is settled by the caller).
    private func settle(_ result: Result<String, ActivityFailure>, of key: ActivityKey, attempt: Int, now: Timestamp) {
        guard let instance = instances[key.workflowID], let activity = instance.record.activities[key.activityID] else {
            return
        }
        let dispatch = (key: key, attempt: attempt)
        switch result {
        case .success(let output):
            emit(.activityCompleted(activityID: key.activityID, attempt: dispatch.attempt, output: output), to: key.workflowID, now: now)
        case .failure(let failure):
            let policy = activity.request.retry
            // Attempts since the last manual retry count against the policy.
            let used = dispatch.attempt - (activity.attemptsBeforeRetry ?? 0)
            let retries: Bool
            if failure.kind == ActivityFailure.interruptedKind {
                // The engine's own stop, not the activity's failure: bounded apart, so an
                // activity that crashes the process ends, and restarts do not use its budget.
                retries = (activity.interruptions ?? 0) + 1 < options.maxInterruptions
            } else {
                retries = failure.retryable && !policy.nonRetryableErrorKinds.contains(failure.kind)
                    && used - (activity.interruptions ?? 0) < policy.maxAttempts
            }
            var nextRetryAt: Timestamp?
            if retries {
                let backoff = policy.backoff(afterAttempt: used).nanosecondsClamped
                // Equal jitter: half the backoff, plus a random part of the other half.
                let jitter = backoff / 2 > 0 ? Int64(random.next() % UInt64(backoff / 2 + 1)) : 0
                nextRetryAt = now + .nanoseconds(backoff - backoff / 2 + jitter)
            }
            let failed = ActivityAttemptFailure(
                activityID: key.activityID, attempt: dispatch.attempt, failure: failure, nextRetryAt: nextRetryAt)
            emit(.activityFailed(failed), to: key.workflowID, now: now)
            if let nextRetryAt { armRetry(key, failedAttempt: dispatch.attempt, at: nextRetryAt) }
        }
    }

    /// Fires every timer, retry and timeout due at `now`, then starts what may start.
    public func advance(now: Timestamp) {
        while let next = wakeups.min, next.at <= now {
            _ = wakeups.popMin()
            // Disarmed (its attempt returned, its timer was cancelled, its run ended): skip.
            guard liveWakeups.remove(next.sequence) != nil else { continue }
            switch next.kind {
            case .timer(let workflowID, let timerID):
                if timerWakeups[workflowID]?[timerID] == next.sequence { forgetTimerWakeup(workflowID, timerID) }
                // A cancelled timer left the record; one re-armed under the same id fires later.
                guard let instance = instances[workflowID], instance.record.quarantine == nil,
                    let timer = instance.record.timers[timerID], !timer.fired, timer.fireAt == next.at
                else { continue }
                emit(.timerFired(timerID: timerID, firedAt: now), to: workflowID, now: now)
                decideLoop(workflowID, now: now)
            case .retry(let key, let failedAttempt):
                if retryWakeups[key] == next.sequence { retryWakeups[key] = nil }
                guard let activity = instances[key.workflowID]?.record.activities[key.activityID],
                    activity.phase == .backoff, activity.attempt == failedAttempt
                else { continue }
                waiting.append(key)
            case .deadline(let key, let attempt):
                guard let running = inFlight[key], running.attempt == attempt,
                    let timeout = instances[key.workflowID]?.record.activities[key.activityID]?.request.startToCloseTimeout
                else { continue }
                // The executor is told to cancel and keeps its slot until it returns (or
                // its grace ends); the timeout is recorded now, so the retry is planned.
                abandon(key, now: now)
                settle(
                    .failure(ActivityFailure(kind: "timeout", message: "start-to-close timeout of \(timeout) exceeded")),
                    of: key, attempt: attempt, now: now)
                decideLoop(key.workflowID, now: now)
            case .grace(let key, let attempt):
                guard let drained = draining[key], drained.attempt == attempt else { continue }
                releaseDraining(key)
                abandonedExecutors.insert(ActivityAttempt(key: key, attempt: attempt))
                let reason = "its executor did not return within \(options.abandonGrace) of being told to cancel"
                if instances[key.workflowID] != nil {
                    emit(.domainEvent(AttemptAbandoned(activityID: key.activityID, attempt: attempt, reason: reason).event),
                        to: key.workflowID, now: now)
                    decideLoop(key.workflowID, now: now)
                } else {
                    // Its workflow ended: its stream is closed, so the operator hears of it in the log.
                    pendingNotices.append("activity \(key.idempotencyKey) attempt \(attempt) abandoned: \(reason)")
                }
            }
        }
        pump(now: now)
    }

    /// When ``advance(now:)`` next has something to do.
    public var nextWakeup: Timestamp? {
        while let top = wakeups.min, !liveWakeups.contains(top.sequence) { _ = wakeups.popMin() }
        return wakeups.min?.at
    }

    /// Wakeups held in memory (live and not yet compacted away): bounded by twice the live
    /// ones (running attempts, draining ones, armed timers and retries) plus a constant.
    public var pendingWakeupCount: Int { wakeups.count }

    /// Executors given up after their grace that have not returned.
    public var abandonedExecutorCount: Int { abandonedExecutors.count }

    /// Stops starting attempts (graceful shutdown); in-flight ones still report.
    public func stopDispatch() { dispatchStopped = true }

    // MARK: output

    /// Takes what must be appended (events, snapshots, unique keys, inbox position) and the
    /// calls to make once it has committed. Nil when there is nothing.
    public func takeBatch() -> EngineBatch? {
        guard hasPendingOutput else { return nil }
        var writes = pendingStateWrites
        for workflowID in touched {
            if let instance = instances[workflowID] {
                writes[StateKey.running(workflowID)] = .put(key: StateKey.running(workflowID), value: snapshot(of: instance))
            } else if let instance = finished[workflowID] {
                writes[StateKey.running(workflowID)] = .delete(key: StateKey.running(workflowID))
                writes[StateKey.finished(workflowID)] = .put(key: StateKey.finished(workflowID), value: snapshot(of: instance))
                if let key = instance.record.uniqueKey, uniqueKeys[key] == nil {
                    writes[StateKey.unique(key)] = .delete(key: StateKey.unique(key))
                }
            }
        }
        if inboxPositionDirty && !pendingStreams.isEmpty {
            writes[StateKey.inboxPosition] = .put(key: StateKey.inboxPosition, value: Array(String(inboxPosition.rawValue).utf8))
            inboxPositionDirty = false
        }
        let batch = EngineBatch(
            streams: Array(pendingStreams.values), stateWrites: Array(writes.values), dispatches: pendingDispatches,
            cancellations: pendingCancellations, notices: pendingNotices)
        pendingCancellations = []
        pendingNotices = []
        pendingStreams = [:]
        touched = []
        finishedInLastBatch = Set(finished.keys)
        finished = [:]
        pendingStateWrites = [:]
        pendingDispatches = []
        return batch
    }

    /// Whether ``takeBatch()`` has something to hand over.
    public var hasPendingOutput: Bool {
        !pendingStreams.isEmpty || !pendingDispatches.isEmpty || !pendingCancellations.isEmpty || !pendingNotices.isEmpty
            || !pendingStateWrites.isEmpty || !touched.isEmpty
    }

    /// Whether an attempt is still wanted (call it right before calling the executor).
    public func isInFlight(_ dispatch: ActivityDispatch) -> Bool {
        inFlight[dispatch.key]?.attempt == dispatch.attempt
    }

    /// Whether an attempt still holds a concurrency slot: it runs and counts, or it was told
    /// to cancel and neither returned nor outlived its grace.
    public func holdsSlot(_ dispatch: ActivityDispatch) -> Bool {
        inFlight[dispatch.key]?.attempt == dispatch.attempt || draining[dispatch.key]?.attempt == dispatch.attempt
    }

    /// Attempts running now whose result counts.
    public var inFlightCount: Int { inFlight.count }
    /// Attempts told to cancel that still hold their slot.
    public var drainingCount: Int { draining.count }
    /// How many workflows are running.
    public var runningCount: Int { instances.count }
    /// The unfinished workflows by the status `workflow list` shows: quarantined (their
    /// history cannot fold, or their decider failed on it), else paused, else running.
    public var runningStatusCounts: (running: Int, paused: Int, quarantined: Int) {
        var counts = (running: 0, paused: 0, quarantined: unfoldable.count)
        for instance in instances.values {
            if instance.record.quarantine != nil { counts.quarantined += 1 } else if instance.record.paused { counts.paused += 1 } else { counts.running += 1 }
        }
        return counts
    }
    /// Ids of the running workflows, sorted.
    public var runningWorkflowIDs: [String] { instances.keys.sorted() }

    /// The live record and view of a running workflow.
    public func record(of workflowID: String) -> WorkflowRecord? { instances[workflowID]?.record }

    /// The encoded snapshot of a running workflow, as ``takeBatch()`` would write it.
    public func liveSnapshot(of workflowID: String) -> [UInt8]? { instances[workflowID].map(snapshot(of:)) }

    // MARK: checks (tests and tools)

    /// Folds a workflow stream from its first event with the registered decider: the
    /// engine's record and the decider's state, as a ``WorkflowStatusReport`` would show them.
    ///
    /// - Throws: ``EngineError`` `.corruptHistory` or `.unknownWorkflowType`.
    func fold(_ events: [RecordedEvent]) throws -> (record: WorkflowRecord, state: any WorkflowStateBox) {
        guard let first = events.first else { throw EngineError(.corruptHistory, "empty workflow stream") }
        let name = first.streamID.rawValue.dropFirst("workflow/".count)
        let workflowID = String(name[..<(name.firstIndex(of: "@") ?? name.endIndex)])
        var record = WorkflowRecord(workflowID: workflowID)
        var state: (any WorkflowStateBox)?
        for event in events {
            let stamped = try WorkflowEventCodec.decode(event)
            record.apply(stamped, revision: event.revision.rawValue)
            if state == nil {
                guard case .workflowStarted(let start) = stamped.event else {
                    throw EngineError(.corruptHistory, "stream \(first.streamID): does not begin with WorkflowStarted")
                }
                guard let definition = definitions[start.type] else {
                    throw EngineError(.unknownWorkflowType, "stream \(first.streamID): type \(start.type) is not registered")
                }
                state = try definition.startState(start)
            }
            guard record.quarantine == nil, let current = state else { continue }
            do { state = try current.evolved(stamped.event, at: stamped.at) } catch {
                record.quarantine = Self.quarantineReason(error, revision: event.revision.rawValue)
            }
        }
        return (record, state!)
    }

    /// Why a run is quarantined: its decider's `evolve` threw at `revision`.
    static func quarantineReason(_ error: any Error, revision: UInt64) -> String {
        "evolve failed at revision \(revision): \((error as? EngineError)?.message ?? "\(error)")"
    }

    /// Whether folding `events` (a workflow's whole stream) gives this core's live record
    /// and decider state for that workflow.
    ///
    /// - Throws: ``EngineError`` when the stream cannot be read.
    public func liveStateEqualsFold(of workflowID: String, events: [RecordedEvent]) throws -> Bool {
        guard let instance = instances[workflowID] else { return false }
        let folded = try fold(events)
        return folded.record == instance.record && folded.state.isEqual(to: instance.state)
    }

    /// Whether a stored snapshot equals the fold of the workflow's whole stream.
    ///
    /// - Throws: ``EngineError`` when the snapshot or stream cannot be read.
    public func snapshotEqualsFold(snapshot: [UInt8], key: String, events: [RecordedEvent]) throws -> Bool {
        let decoded = try WorkflowSnapshot.decode(snapshot, key: key)
        let folded = try fold(events)
        guard let definition = definitions[decoded.record.type] else { return false }
        let state = try definition.decode(decoded.state)
        return folded.record == decoded.record && folded.state.isEqual(to: state)
    }

    // MARK: recovery

    /// How the last ``recover(snapshots:inboxPosition:now:readStream:)`` rebuilt each
    /// unfinished workflow.
    public struct RecoveryStats: Sendable, Equatable {
        /// From a snapshot of the registered decider version.
        public var fromSnapshot = 0
        /// From a snapshot of another version, through the type's upcast.
        public var upcast = 0
        /// Folded again from the stream: the snapshot did not decode, or named another
        /// decider version (or none) without an upcast.
        public var refolded = 0
        /// Events read and folded for those.
        public var refoldedEvents = 0
        /// Quarantined: their history cannot fold (unknown type, an event that does not decode).
        public var quarantined = 0
    }

    public private(set) var recoveryStats = RecoveryStats()

    /// Runs whose history cannot fold at all, by id (record with its `quarantine` reason):
    /// nothing of them runs; their snapshot says why; their stream is untouched.
    private var unfoldable: [String: WorkflowRecord] = [:]

    /// Every quarantined run with its reason, sorted by id: those whose history cannot fold
    /// and those whose decider failed on it.
    public var quarantinedWorkflows: [(workflowID: String, reason: String)] {
        let running = instances.compactMap { id, instance in instance.record.quarantine.map { (id, $0) } }
        let stuck = unfoldable.map { ($0.key, $0.value.quarantine ?? "") }
        return (running + stuck).sorted { $0.0 < $1.0 }.map { (workflowID: $0.0, reason: $0.1) }
    }

    /// Rebuilds the running workflows (the `engine/run/` entries of the state database),
    /// re-arms timers and retries, and records every attempt that started and did not
    /// finish as interrupted (retried as a new attempt). Nothing else repeats.
    ///
    /// A snapshot is used as it is only when it decodes and names the registered decider
    /// version; one of another version goes through the type's upcast, else (and when it
    /// does not decode) it is dropped and the run is folded again from its stream with
    /// `readStream`. A run whose history cannot fold (its type is not registered, an event
    /// does not decode) is quarantined: its snapshot says why, its stream is untouched, and
    /// every other workflow runs.
    ///
    /// - Throws: nothing today (kept for source compatibility).
    public func recover(
        snapshots: [(key: String, value: [UInt8])], inboxPosition: LogPosition, now: Timestamp,
        readStream: ((StreamID) throws -> [RecordedEvent])? = nil
    ) throws {
        precondition(instances.isEmpty, "recover runs on a fresh core")
        self.inboxPosition = inboxPosition
        recoveryStats = RecoveryStats()
        var interrupted: [(ActivityKey, Int)] = []
        var rebuilt: [(WorkflowRecord, any WorkflowStateBox, WorkflowDefinition)] = []
        for decoded in Self.decodeSnapshots(snapshots, definitions: definitions) {
            switch decoded {
            case .ready(let record, let state, let definition, let upcast):
                if upcast { recoveryStats.upcast += 1 } else { recoveryStats.fromSnapshot += 1 }
                rebuilt.append((record, state, definition))
            case .refold(let workflowID, let why):
                switch refold(workflowID, why: why, readStream: readStream) {
                case .success(let folded): rebuilt.append(folded)
                case .failure(let stuck): holdUnfoldable(stuck.record)
                case nil: break
                }
            case .quarantine(let record):
                holdUnfoldable(record)
            }
        }
        for (record, state, definition) in rebuilt {
            instances[record.workflowID] = Instance(
                record: record, state: state, definition: definition, nextRevision: record.lastRevision + 1)
            if let unique = record.uniqueKey { uniqueKeys[unique] = record.workflowID }
            // A quarantined run keeps its place (and unique key) but nothing of it runs.
            guard record.quarantine == nil else { continue }
            // Started and unfinished: the process stopped during the attempt. It counts as a
            // failed attempt, retried under the policy as a new attempt (the executor is
            // idempotent by key), so an activity that crashes the process does not retry forever.
            resumeOpenWork(of: record, now: now) { key, attempt in interrupted.append((key, attempt)) }
        }
        for (key, attempt) in interrupted {
            settle(
                .failure(
                    ActivityFailure(kind: ActivityFailure.interruptedKind, message: "the engine stopped while attempt \(attempt) ran")),
                of: key, attempt: attempt, now: now)
        }
        // A newer decider may want more than the old one asked for; deciding is idempotent.
        for workflowID in instances.keys.sorted() { decideLoop(workflowID, now: now) }
        advance(now: now)
    }

    /// Keeps a run whose history cannot fold out of the working set, holding its id and
    /// unique key, and rewrites its snapshot (not its stream) to say why.
    private func holdUnfoldable(_ record: WorkflowRecord) {
        recoveryStats.quarantined += 1
        unfoldable[record.workflowID] = record
        if let unique = record.uniqueKey { uniqueKeys[unique] = record.workflowID }
        let key = StateKey.running(record.workflowID)
        pendingStateWrites[key] = .put(
            key: key, value: WorkflowSnapshot.encode(record: record, state: Array("null".utf8), commands: []))
        pendingNotices.append("workflow \(record.workflowID) quarantined: \(record.quarantine ?? "")")
    }

    /// Folds a run again from its stream (following continue-as-new to the current run).
    /// Failure: the record to quarantine, with its reason. Nil: nothing to rebuild (the
    /// stream is empty or finished; the stale entry is dropped).
    private func refold(
        _ workflowID: String, why: String, readStream: ((StreamID) throws -> [RecordedEvent])?
    ) -> Result<(WorkflowRecord, any WorkflowStateBox, WorkflowDefinition), Unfoldable>? {
        var record = WorkflowRecord(workflowID: workflowID)
        func stuck(_ reason: String) -> Result<(WorkflowRecord, any WorkflowStateBox, WorkflowDefinition), Unfoldable> {
            record.quarantine = "\(why); folding its stream failed: \(reason)"
            return .failure(Unfoldable(record))
        }
        guard let readStream else { return stuck("no stream reader was given to recover") }
        var events: [RecordedEvent]
        do {
            events = try readStream(.forWorkflow(workflowID))
            // A run that continued as new lives on in the next run's stream.
            while let last = events.last, last.type == "WorkflowContinuedAsNew",
                case .workflowContinuedAsNew(let run) = try WorkflowEventCodec.decode(last).event
            {
                events = try readStream(.forWorkflow(workflowID, run: run))
            }
        } catch {
            return stuck((error as? EngineError)?.message ?? "\(error)")
        }
        // The engine's own record folds without the decider: the operator sees how far it got.
        for event in events {
            guard let stamped = try? WorkflowEventCodec.decode(event) else { break }
            record.apply(stamped, revision: event.revision.rawValue)
        }
        guard !events.isEmpty else {
            pendingStateWrites[StateKey.running(workflowID)] = .delete(key: StateKey.running(workflowID))
            pendingNotices.append("workflow \(workflowID): \(why); its stream is empty: entry dropped")
            return nil
        }
        do {
            let folded = try fold(events)
            guard let definition = definitions[folded.record.type] else { return stuck("type \(folded.record.type) is not registered") }
            guard !folded.record.isFinished else {
                pendingStateWrites[StateKey.running(workflowID)] = .delete(key: StateKey.running(workflowID))
                pendingNotices.append("workflow \(workflowID): \(why); its stream has ended: entry dropped")
                return nil
            }
            recoveryStats.refolded += 1
            recoveryStats.refoldedEvents += events.count
            touched.append(workflowID)  // its snapshot is written again, of this version
            return .success((folded.record, folded.state, definition))
        } catch {
            return stuck((error as? EngineError)?.message ?? "\(error)")
        }
    }

    struct Unfoldable: Error {
        var record: WorkflowRecord
        init(_ record: WorkflowRecord) { self.record = record }
    }

    private enum DecodedSnapshot {
        case ready(WorkflowRecord, any WorkflowStateBox, WorkflowDefinition, upcast: Bool)
        case refold(workflowID: String, why: String)
        case quarantine(WorkflowRecord)
    }

    /// Decodes snapshots on every core (decoding is pure and dominates start-up), in key order.
    private static func decodeSnapshots(
        _ snapshots: [(key: String, value: [UInt8])], definitions: [String: WorkflowDefinition]
    ) -> [DecodedSnapshot] {
        let sorted = snapshots.sorted { $0.key < $1.key }
        let chunkSize = 256
        let chunks = (sorted.count + chunkSize - 1) / chunkSize
        let results = Mutex<[Int: [DecodedSnapshot]]>([:])
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            var decoded: [DecodedSnapshot] = []
            for (key, value) in sorted[(chunk * chunkSize)..<min(sorted.count, (chunk + 1) * chunkSize)] {
                decoded.append(decodeSnapshot(key: key, value: value, definitions: definitions))
            }
            results.withLock { $0[chunk] = decoded }
        }
        let byChunk = results.withLock { $0 }
        return (0..<chunks).flatMap { byChunk[$0] ?? [] }
    }

    private static func decodeSnapshot(key: String, value: [UInt8], definitions: [String: WorkflowDefinition]) -> DecodedSnapshot {
        let workflowID = String(key.dropFirst(StateKey.runningPrefix.count))
        let snapshot: WorkflowSnapshot.Decoded
        do { snapshot = try WorkflowSnapshot.decode(value, key: key) } catch {
            return .refold(workflowID: workflowID, why: (error as? EngineError)?.message ?? "snapshot \(key): \(error)")
        }
        guard let definition = definitions[snapshot.record.type] else {
            var record = snapshot.record
            record.quarantine = "workflow type \(snapshot.record.type) is not registered"
            return .quarantine(record)
        }
        guard let version = snapshot.deciderVersion, version == definition.version else {
            guard let version = snapshot.deciderVersion else {
                return .refold(workflowID: workflowID, why: "snapshot \(key) names no decider version")
            }
            let why = "snapshot \(key) is of decider version \(version), the registered one is \(definition.version)"
            do {
                if let state = try definition.upcast(snapshot.state, version) {
                    return .ready(snapshot.record, state, definition, upcast: true)
                }
                return .refold(workflowID: workflowID, why: why)
            } catch {
                return .refold(workflowID: workflowID, why: "\(why); its upcast failed: \(error)")
            }
        }
        do { return .ready(snapshot.record, try definition.decode(snapshot.state), definition, upcast: false) } catch {
            return .refold(workflowID: workflowID, why: "snapshot \(key): decider state does not decode: \(error)")
        }
    }

    // MARK: internals

    private func begin(workflowID: String, definition: WorkflowDefinition, start: WorkflowStart, now: Timestamp) {
        instances[workflowID] = Instance(
            record: WorkflowRecord(workflowID: workflowID), state: definition.initial(), definition: definition,
            nextRevision: 0)
        if let key = start.uniqueKey {
            uniqueKeys[key] = workflowID
            pendingStateWrites[StateKey.unique(key)] = .put(key: StateKey.unique(key), value: Array(workflowID.utf8))
        }
        emit(.workflowStarted(start), to: workflowID, now: now)
        decideLoop(workflowID, now: now)
    }

    private func emit(_ event: WorkflowEvent, to workflowID: String, now: Timestamp) {
        guard var instance = instances[workflowID] else { preconditionFailure("emit to unknown workflow \(workflowID)") }
        precondition(!instance.record.isFinished, "emit \(event) to finished workflow \(workflowID)")
        let stamped = StampedWorkflowEvent(event, at: now)
        let encoded = WorkflowEventCodec.encode(stamped)
        let proposed = ProposedEvent(
            id: EventID(high: random.next(), low: random.next()), type: encoded.type, schemaVersion: encoded.schemaVersion,
            metadata: EventMetadata(actor: options.actor), payload: encoded.payload)
        let streamID: StreamID
        if case .workflowStarted(let start) = event {
            streamID = .forWorkflow(workflowID, run: start.run)
        } else {
            streamID = instance.record.streamID
        }
        if pendingStreams[streamID.rawValue] == nil {
            let expected: ExpectedRevision =
                instance.nextRevision == 0 ? .noStream : .exact(StreamRevision(instance.nextRevision - 1))
            pendingStreams[streamID.rawValue] = StreamAppend(streamID: streamID, expectedRevision: expected, events: [])
        }
        pendingStreams[streamID.rawValue]!.events.append(proposed)
        instance.record.apply(stamped, revision: instance.nextRevision)
        if instance.record.quarantine == nil {
            do { instance.state = try instance.state.evolved(event, at: now) } catch {
                instance.record.quarantine = Self.quarantineReason(error, revision: instance.nextRevision)
            }
        }
        instance.nextRevision += 1
        instances[workflowID] = instance
        touched.append(workflowID)
        switch event {
        case .timerCancelled(let timerID):
            disarmTimer(workflowID, timerID)
        case .workflowCompleted, .workflowFailed, .workflowCancelled, .workflowContinuedAsNew:
            // The run's timers and retries will never be wanted (a next run arms its own).
            for timerID in Array((timerWakeups[workflowID] ?? [:]).keys) { disarmTimer(workflowID, timerID) }
            for activityID in instance.record.activities.keys {
                let key = ActivityKey(workflowID: workflowID, activityID: activityID)
                if let sequence = retryWakeups.removeValue(forKey: key) { disarm(sequence) }
            }
        default:
            break
        }
    }

    /// Acts on the decider's commands until it asks for nothing new. A decider that keeps
    /// asking for new work without waiting is quarantined, naming the command.
    private func decideLoop(_ workflowID: String, now: Timestamp) {
        var rounds = 0
        rounds: while let instance = instances[workflowID], instance.record.quarantine == nil, !instance.record.paused {
            rounds += 1
            var progressed = false
            for command in instance.state.decide() {
                guard let current = instances[workflowID], current.record.quarantine == nil else { break rounds }
                if rounds > Self.maxDecideRounds {
                    quarantine(workflowID, "its decider asked for new work \(Self.maxDecideRounds) rounds in a row without waiting (last: \(command))", now: now)
                    break rounds
                }
                switch command {
                case .runActivity(let request):
                    guard !current.record.knowsActivity(request.activityID) else { continue }
                    emit(.activityScheduled(request), to: workflowID, now: now)
                    waiting.append(ActivityKey(workflowID: workflowID, activityID: request.activityID))
                    progressed = true
                case .startTimer(let timerID, let after):
                    guard current.record.timers[timerID] == nil else { continue }
                    startTimer(timerID, after: after, workflowID: workflowID, now: now)
                    progressed = true
                case .cancelTimer(let timerID):
                    guard current.record.timers[timerID] != nil else { continue }
                    emit(.timerCancelled(timerID: timerID), to: workflowID, now: now)
                    progressed = true
                case .startChild(let request):
                    guard current.record.children[request.workflowID] == nil else { continue }
                    startChild(request, parentID: workflowID, now: now)
                    progressed = true
                case .signalChild(let childID, let name, let payload):
                    guard current.record.children[childID] == .running, instances[childID] != nil else { continue }
                    emit(.childSignalled(childID: childID, name: name), to: workflowID, now: now)
                    signal(workflowID: childID, name: name, payload: payload, now: now)
                    progressed = true
                case .cancelChild(let childID, let reason):
                    guard current.record.children[childID] == .running, let child = instances[childID],
                        !child.record.cancelRequested
                    else { continue }
                    cancel(workflowID: childID, reason: reason, now: now)
                    progressed = true
                case .waitForSignal(let name, let timeout):
                    let timerID = WorkflowCommand.signalTimeoutTimerID(name)
                    guard let timeout, current.record.timers[timerID] == nil else { continue }
                    startTimer(timerID, after: timeout, workflowID: workflowID, now: now)
                    progressed = true
                case .recordEvent(let event):
                    guard current.record.recordedEvents?.contains(event.id) != true else { continue }
                    emit(.domainEvent(event), to: workflowID, now: now)
                    progressed = true
                case .continueAsNew:
                    guard !current.record.hasOpenWork, !current.record.cancelRequested else { continue }
                    continueAsNew(workflowID, now: now)
                    progressed = true
                case .complete(let output):
                    if let reason = current.record.cancelReason {
                        finish(workflowID, with: .workflowCancelled(reason: reason), now: now)
                    } else {
                        finish(workflowID, with: .workflowCompleted(output: output), now: now)
                    }
                    break rounds
                case .fail(let reason):
                    if let cancelReason = current.record.cancelReason {
                        finish(workflowID, with: .workflowCancelled(reason: "\(cancelReason); cleanup failed: \(reason)"), now: now)
                    } else {
                        finish(workflowID, with: .workflowFailed(reason: reason), now: now)
                    }
                    break rounds
                }
            }
            if !progressed {
                // A cancelled run that cleans up ends once it asks for nothing and nothing is open.
                if let current = instances[workflowID], let reason = current.record.cancelReason, !current.record.hasOpenWork {
                    for timerID in current.record.timers.keys.sorted() {
                        emit(.timerCancelled(timerID: timerID), to: workflowID, now: now)
                    }
                    finish(workflowID, with: .workflowCancelled(reason: reason), now: now)
                }
                break
            }
        }
        pump(now: now)
    }

    /// Rounds of new commands in a row after which a decider counts as looping.
    static let maxDecideRounds = 64

    private func startTimer(_ timerID: String, after: Duration, workflowID: String, now: Timestamp) {
        let fireAt = now + after
        emit(.timerStarted(timerID: timerID, fireAt: fireAt), to: workflowID, now: now)
        armTimer(workflowID, timerID, at: fireAt)
    }

    /// Stops deciding and dispatching for a run (its history stays as it is).
    private func quarantine(_ workflowID: String, _ reason: String, now: Timestamp) {
        guard instances[workflowID] != nil else { return }
        instances[workflowID]!.record.quarantine = reason
        touched.append(workflowID)
        for (activityID, activity) in instances[workflowID]!.record.activities.sorted(by: { $0.key < $1.key })
        where activity.phase == .running {
            abandon(ActivityKey(workflowID: workflowID, activityID: activityID), now: now)
        }
    }

    /// Ends this run and starts the next in its own stream, carrying the decider's state.
    private func continueAsNew(_ workflowID: String, now: Timestamp) {
        guard let old = instances[workflowID] else { return }
        for timerID in old.record.timers.keys.sorted() { emit(.timerCancelled(timerID: timerID), to: workflowID, now: now) }
        let run = old.record.runNumber + 1
        emit(.workflowContinuedAsNew(run: run), to: workflowID, now: now)
        guard let ended = instances[workflowID] else { return }
        let start = WorkflowStart(
            type: ended.record.type, deciderVersion: ended.definition.version, input: ended.record.input,
            parentID: ended.record.parentID, uniqueKey: ended.record.uniqueKey, run: run,
            carriedState: String(decoding: ended.state.encoded(), as: UTF8.self), forkedFrom: ended.record.forkedFrom)
        instances[workflowID] = Instance(
            record: WorkflowRecord(workflowID: workflowID), state: ended.state, definition: ended.definition, nextRevision: 0)
        emit(.workflowStarted(start), to: workflowID, now: now)
    }

    /// Asks the store whether `workflowID` has a stream; its error becomes `.storeFailure`.
    private func isTakenInStore(_ workflowID: String) throws -> Bool {
        do { return try idIsTaken(workflowID) } catch {
            throw EngineError(.storeFailure, "workflow \(workflowID): cannot tell whether the id was used: \(error)")
        }
    }

    /// Puts a rebuilt run's open work back in motion, as after a restart: scheduled attempts
    /// wait for a slot, backoffs re-arm their retry, unfired timers re-arm; an attempt that
    /// was running goes to `running` (recovery and fork settle it differently).
    private func resumeOpenWork(of record: WorkflowRecord, now: Timestamp, running: (ActivityKey, Int) -> Void) {
        for (activityID, activity) in record.activities.sorted(by: { $0.key < $1.key }) {
            let key = ActivityKey(workflowID: record.workflowID, activityID: activityID)
            switch activity.phase {
            case .running:
                running(key, activity.attempt)
            case .scheduled:
                waiting.append(key)
            case .backoff:
                armRetry(key, failedAttempt: activity.attempt, at: activity.nextRetryAt ?? now)
            case .completed, .failed:
                break
            }
        }
        for (timerID, timer) in record.timers.sorted(by: { $0.key < $1.key }) where !timer.fired {
            armTimer(record.workflowID, timerID, at: timer.fireAt)
        }
    }

    private func startChild(_ request: ChildRequest, parentID: String, now: Timestamp) {
        emit(.childStarted(childID: request.workflowID, type: request.type), to: parentID, now: now)
        guard let definition = definitions[request.type] else {
            emit(.childFailed(childID: request.workflowID, reason: "no workflow type named \(request.type)"), to: parentID, now: now)
            return
        }
        let takenInStore: Bool
        do { takenInStore = try isTakenInStore(request.workflowID) } catch {
            // The parent sees why its child did not start, in its history, rather than a
            // read error silently taken as "the id exists".
            emit(.childFailed(childID: request.workflowID, reason: (error as? EngineError)?.message ?? "\(error)"), to: parentID, now: now)
            return
        }
        guard instances[request.workflowID] == nil, finished[request.workflowID] == nil,
            !finishedInLastBatch.contains(request.workflowID), unfoldable[request.workflowID] == nil, !takenInStore
        else {
            emit(.childFailed(childID: request.workflowID, reason: "workflow id \(request.workflowID) exists already"), to: parentID, now: now)
            return
        }
        do { try definition.checkInput(request.input) } catch {
            emit(
                .childFailed(childID: request.workflowID, reason: (error as? EngineError)?.message ?? "\(error)"), to: parentID,
                now: now)
            return
        }
        let start = WorkflowStart(type: request.type, deciderVersion: definition.version, input: request.input, parentID: parentID)
        begin(workflowID: request.workflowID, definition: definition, start: start, now: now)
    }

    private func finish(_ workflowID: String, with terminal: WorkflowEvent, now: Timestamp) {
        precondition(terminal.isTerminal)
        emit(terminal, to: workflowID, now: now)
        guard let instance = instances.removeValue(forKey: workflowID) else { return }
        finished[workflowID] = instance
        if let key = instance.record.uniqueKey, uniqueKeys[key] == workflowID { uniqueKeys[key] = nil }
        // Attempts still running are told to cancel: their results are ignored from now on,
        // their slots stay held until they return or their grace ends.
        for (activityID, activity) in instance.record.activities.sorted(by: { $0.key < $1.key }) where activity.phase == .running {
            abandon(ActivityKey(workflowID: workflowID, activityID: activityID), now: now)
        }
        for (childID, status) in instance.record.children.sorted(by: { $0.key < $1.key }) where status == .running {
            if instances[childID] != nil {
                cancel(workflowID: childID, reason: "parent \(workflowID) ended (\(instance.record.status.rawValue))", now: now)
            }
        }
        if let parentID = instance.record.parentID, instances[parentID] != nil {
            switch instance.record.status {
            case .completed:
                emit(.childCompleted(childID: workflowID, output: instance.record.result ?? ""), to: parentID, now: now)
            case .failed, .cancelled:
                emit(
                    .childFailed(childID: workflowID, reason: "\(instance.record.status.rawValue): \(instance.record.result ?? "")"),
                    to: parentID, now: now)
            case .running, .continuedAsNew, .quarantined:
                preconditionFailure("finished workflow \(workflowID) is \(instance.record.status)")
            }
            decideLoop(parentID, now: now)
        }
    }

    private func requeueAfterResume(workflowID: String, now: Timestamp) {
        guard let record = instances[workflowID]?.record else { return }
        for (activityID, activity) in record.activities.sorted(by: { $0.key < $1.key }) {
            let due = activity.phase == .scheduled || (activity.phase == .backoff && (activity.nextRetryAt ?? now) <= now)
            if due { waiting.append(ActivityKey(workflowID: workflowID, activityID: activityID)) }
        }
    }

    /// Starts waiting attempts while slots are free. An attempt blocked by its concurrency
    /// key, or by its own previous attempt still draining, is parked until that slot frees,
    /// so a pump never scans the blocked again (no quadratic rescans behind a busy key).
    private func pump(now: Timestamp) {
        guard !dispatchStopped else { return }
        if abandonedExecutors.count >= options.maxAbandonedExecutors {
            // Hung executors at their bound: nothing new starts until one returns.
            if !saidAbandonedBound, !waiting.isEmpty {
                saidAbandonedBound = true
                pendingNotices.append(
                    "\(abandonedExecutors.count) executors outlived their grace and still run (bound \(options.maxAbandonedExecutors)): no new attempt starts until one returns")
            }
            return
        }
        saidAbandonedBound = false
        while inFlight.count + draining.count < options.globalConcurrency, let key = waiting.popFirst() {
            guard let instance = instances[key.workflowID], let activity = instance.record.activities[key.activityID],
                inFlight[key] == nil
            else { continue }
            if draining[key] != nil {
                // Its previous attempt was told to cancel and still runs: this one waits.
                parkedBehindDrain.insert(key)
                continue
            }
            let ready = activity.phase == .scheduled || (activity.phase == .backoff && (activity.nextRetryAt ?? now) <= now)
            guard ready, !instance.record.paused, instance.record.quarantine == nil else { continue }
            if let concurrencyKey = activity.request.concurrencyKey,
                inFlightPerKey[concurrencyKey, default: 0] >= options.perKeyConcurrency
            {
                parked[concurrencyKey, default: []].append(key)
                continue
            }
            let attempt = activity.attempt + 1
            emit(.activityStarted(activityID: key.activityID, attempt: attempt), to: key.workflowID, now: now)
            let deadline = arm(.deadline(key, attempt: attempt), at: now + activity.request.startToCloseTimeout)
            occupy(key, attempt: attempt, concurrencyKey: activity.request.concurrencyKey, wakeup: deadline)
            pendingDispatches.append(
                ActivityDispatch(
                    key: key, attempt: attempt, name: activity.request.name, input: activity.request.input,
                    timeout: activity.request.startToCloseTimeout, deadline: now + activity.request.startToCloseTimeout))
        }
    }

    /// Whether a parked key may still start (its workflow runs, the activity waits).
    private func stillWaits(_ key: ActivityKey) -> Bool {
        guard let instance = instances[key.workflowID], let activity = instance.record.activities[key.activityID],
            inFlight[key] == nil, instance.record.quarantine == nil
        else { return false }
        return activity.phase == .scheduled || activity.phase == .backoff
    }

    private func occupy(_ key: ActivityKey, attempt: Int, concurrencyKey: String?, wakeup: UInt64) {
        inFlight[key] = InFlight(attempt: attempt, concurrencyKey: concurrencyKey, wakeup: wakeup)
        if let concurrencyKey { inFlightPerKey[concurrencyKey, default: 0] += 1 }
    }

    private func release(_ key: ActivityKey) {
        guard let running = inFlight.removeValue(forKey: key) else { return }
        disarm(running.wakeup)
        freeSlot(of: running)
    }

    private func releaseDraining(_ key: ActivityKey) {
        guard let drained = draining.removeValue(forKey: key) else { return }
        disarm(drained.wakeup)
        freeSlot(of: drained)
        if parkedBehindDrain.remove(key) != nil { waiting.prepend(key) }
    }

    private func freeSlot(of attempt: InFlight) {
        guard let concurrencyKey = attempt.concurrencyKey else { return }
        inFlightPerKey[concurrencyKey, default: 1] -= 1
        if inFlightPerKey[concurrencyKey] == 0 { inFlightPerKey[concurrencyKey] = nil }
        // The first parked attempt of this key that still waits gets the slot next; stale
        // ones are dropped here (each parked entry is looked at once).
        while var queue = parked[concurrencyKey], let next = queue.popFirst() {
            parked[concurrencyKey] = queue.isEmpty ? nil : queue
            if stillWaits(next) {
                waiting.prepend(next)
                break
            }
        }
    }

    /// Tells a live attempt's executor to cancel: its result no longer counts, and it keeps
    /// its slot until it returns or the grace ends.
    private func abandon(_ key: ActivityKey, now: Timestamp) {
        guard var running = inFlight.removeValue(forKey: key) else { return }
        disarm(running.wakeup)
        running.wakeup = arm(.grace(key, attempt: running.attempt), at: now + options.abandonGrace)
        draining[key] = running
        pendingCancellations.append(ActivityAttempt(key: key, attempt: running.attempt))
    }

    @discardableResult
    private func arm(_ kind: Wakeup.Kind, at: Timestamp) -> UInt64 {
        wakeupSequence += 1
        wakeups.insert(Wakeup(at: at, sequence: wakeupSequence, kind: kind))
        liveWakeups.insert(wakeupSequence)
        return wakeupSequence
    }

    private func armTimer(_ workflowID: String, _ timerID: String, at: Timestamp) {
        disarmTimer(workflowID, timerID)
        timerWakeups[workflowID, default: [:]][timerID] = arm(.timer(workflowID: workflowID, timerID: timerID), at: at)
    }

    private func armRetry(_ key: ActivityKey, failedAttempt: Int, at: Timestamp) {
        if let previous = retryWakeups[key] { disarm(previous) }
        retryWakeups[key] = arm(.retry(key, failedAttempt: failedAttempt), at: at)
    }

    private func disarmTimer(_ workflowID: String, _ timerID: String) {
        guard let sequence = timerWakeups[workflowID]?[timerID] else { return }
        forgetTimerWakeup(workflowID, timerID)
        disarm(sequence)
    }

    private func forgetTimerWakeup(_ workflowID: String, _ timerID: String) {
        timerWakeups[workflowID]?[timerID] = nil
        if timerWakeups[workflowID]?.isEmpty == true { timerWakeups[workflowID] = nil }
    }

    /// Drops a wakeup that is no longer wanted; compacts the heap once stale entries
    /// outnumber live ones (amortized O(1) per disarm).
    private func disarm(_ sequence: UInt64) {
        guard liveWakeups.remove(sequence) != nil else { return }
        if wakeups.count > 2 * liveWakeups.count + 64 {
            wakeups = Heap(wakeups.unordered.filter { liveWakeups.contains($0.sequence) })
        }
    }

    private func snapshot(of instance: Instance) -> [UInt8] {
        WorkflowSnapshot.encode(
            record: instance.record, state: instance.state.encoded(), commands: instance.state.decide(),
            progress: instance.state.progressJSON(), deciderVersion: instance.definition.version)
    }
}

/// One append's worth of engine output.
public struct EngineBatch: Sendable {
    /// Events per workflow stream, each with the revision it expects.
    public var streams: [StreamAppend]
    /// Snapshots, unique keys and the inbox position, atomic with the events.
    public var stateWrites: [StateWrite]
    /// Calls to make after the append has committed.
    public var dispatches: [ActivityDispatch]
    /// Running attempts whose executor should stop now (a timeout, the workflow ended):
    /// cancel their tasks; each keeps its slot until it returns (report it with
    /// ``EngineCore/activityFinished(_:result:now:)``) or its grace ends.
    public var cancellations: [ActivityAttempt] = []
    /// What the operator should hear of that no stream records (log them).
    public var notices: [String] = []
}

/// One attempt of one activity.
public struct ActivityAttempt: Hashable, Sendable {
    public var key: EngineCore.ActivityKey
    public var attempt: Int
}

/// One attempt to call an executor.
public struct ActivityDispatch: Sendable, Hashable {
    public var key: EngineCore.ActivityKey
    public var attempt: Int
    public var name: String
    public var input: String
    public var timeout: Duration
    /// When the start-to-close timeout ends (the engine's clock).
    public var deadline: Timestamp = Timestamp(nanoseconds: Int64.max)

    /// Which attempt this is.
    public var attemptID: ActivityAttempt { ActivityAttempt(key: key, attempt: attempt) }
}

/// Keys of the engine's entries in the `state` database.
public enum StateKey {
    /// Prefix of the snapshots of unfinished workflows: the recovery index.
    public static let runningPrefix = "engine/run/"
    public static let finishedPrefix = "engine/done/"
    public static let uniquePrefix = "engine/unique/"
    /// The last inbox position the engine has handled.
    public static let inboxPosition = "engine/inbox-position"

    public static func running(_ workflowID: String) -> String { runningPrefix + workflowID }
    public static func finished(_ workflowID: String) -> String { finishedPrefix + workflowID }
    public static func unique(_ key: String) -> String { uniquePrefix + key }
}

extension StreamID {
    /// The stream of a workflow's first run: `workflow/<id>`.
    public static func forWorkflow(_ workflowID: String) -> StreamID { StreamID("workflow/" + workflowID) }

    /// The stream of run `run` of a workflow: `workflow/<id>` for the first, then
    /// `workflow/<id>@run<n>` (workflow ids hold no `@`).
    public static func forWorkflow(_ workflowID: String, run: Int) -> StreamID {
        run <= 1 ? forWorkflow(workflowID) : StreamID("workflow/\(workflowID)@run\(run)")
    }
}
