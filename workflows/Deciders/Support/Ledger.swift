// The part of every decider's state that records what the engine has acknowledged: which
// activities, timers and children exist and how they ended. Each decider folds it with
// `Ledger.apply(_:)` and derives its commands from it with ``Script``, so "ask once, then
// wait for the answer" is written once rather than in every workflow.
//
// Field and case names are part of every decider's snapshot (its Codable state): rename
// only with a decider version bump.
public import Engine

/// What the engine has acknowledged for one run, folded from its events.
public struct Ledger: Codable, Equatable, Sendable {
    public enum ActivityStatus: Codable, Equatable, Sendable {
        /// Recorded; no final answer yet.
        case scheduled
        /// An attempt failed and another follows (the last failure, for progress views).
        case retrying(attempt: Int, kind: String, message: String)
        case completed(output: String)
        /// Failed for good (attempts exhausted or a non-retryable kind).
        case failed(kind: String, message: String)
    }

    public enum ChildStatus: Codable, Equatable, Sendable {
        case started
        case completed(output: String)
        case failed(reason: String)
    }

    public var activities: [String: ActivityStatus] = [:]
    /// Timer id → whether it fired.
    public var timers: [String: Bool] = [:]
    public var children: [String: ChildStatus] = [:]
    /// Signals in arrival order (name, payload).
    public var signals: [Signal] = []
    public var cancelReason: String?
    /// Set once the run has ended (completed, failed or cancelled): nothing more is asked.
    public var finished = false
    /// The latest engine time seen in an event (timers carry it); nil before any.
    public var latestTime: Timestamp?

    public struct Signal: Codable, Equatable, Sendable {
        public var name: String
        public var payload: String
    }

    public init() {}

    /// Folds one engine event.
    public mutating func apply(_ event: WorkflowEvent) {
        switch event {
        case .workflowStarted:
            break
        case .activityScheduled(let request):
            if activities[request.activityID] == nil { activities[request.activityID] = .scheduled }
        case .activityStarted:
            break
        case .activityCompleted(let activityID, _, let output):
            activities[activityID] = .completed(output: output)
        case .activityFailed(let failed):
            activities[failed.activityID] =
                failed.isFinal
                ? .failed(kind: failed.failure.kind, message: failed.failure.message)
                : .retrying(attempt: failed.attempt, kind: failed.failure.kind, message: failed.failure.message)
        case .timerStarted(let timerID, _):
            if timers[timerID] == nil { timers[timerID] = false }
        case .timerFired(let timerID, let firedAt):
            timers[timerID] = true
            latestTime = max(latestTime ?? firedAt, firedAt)
        case .signalReceived(let name, let payload):
            signals.append(Signal(name: name, payload: payload))
        case .childStarted(let childID, _):
            if children[childID] == nil { children[childID] = .started }
        case .childCompleted(let childID, let output):
            children[childID] = .completed(output: output)
        case .childFailed(let childID, let reason):
            children[childID] = .failed(reason: reason)
        case .cancelRequested(let reason):
            cancelReason = reason
        case .workflowCompleted, .workflowFailed, .workflowCancelled, .workflowContinuedAsNew:
            finished = true
        case .timerCancelled(let timerID):
            // No longer pending (the engine cancels timers at continue-as-new and at the end of a cleanup).
            timers[timerID] = true
        case .domainEvent, .childSignalled, .activityRetryRequested:
            break
        }
    }
}

/// The retry policies the deciders give their activities (one home for them).
public enum DeciderRetry {
    /// Failure kinds no retry can fix.
    public static let permanentKinds = [
        Activities.FailureKind.notOurs, Activities.FailureKind.invalidInput, Activities.FailureKind.rejected,
    ]

    /// A call to the management or workload cluster: transient faults retried with backoff.
    public static let standard = RetryPolicy(
        maxAttempts: 8, initialBackoff: .milliseconds(500), maxBackoff: .seconds(30),
        nonRetryableErrorKinds: permanentKinds)

    /// A drain: each attempt is one eviction pass, so many attempts (the executor's drain timeout
    /// bounds it in time; this bounds it in passes).
    public static let drain = RetryPolicy(
        maxAttempts: 400, initialBackoff: .seconds(1), maxBackoff: .seconds(5), nonRetryableErrorKinds: permanentKinds)
}

/// The state most deciders need: their typed input (decoded once, from the start event) and
/// the ledger. A decider with more state embeds it.
public struct RunState<Input: Codable & Equatable & Sendable>: Codable, Equatable, Sendable {
    public var input: Input?
    /// Why the start input did not decode (the run fails with it).
    public var inputError: String?
    public var ledger = Ledger()

    public init() {}

    /// Folds one engine event.
    public mutating func apply(_ event: WorkflowEvent) {
        if case .workflowStarted(let start) = event {
            do { input = try Activities.decode(Input.self, from: start.input) } catch {
                inputError = "workflow \(start.type): input is not \(Input.self): \(error)"
            }
        }
        ledger.apply(event)
    }

    /// The commands `body` asks for given the input; nothing before the start, a failure when
    /// the input did not decode.
    public func decide(_ body: (Input, inout Script) throws(Suspension) -> WorkflowCommand) -> [WorkflowCommand] {
        if let inputError { return Script.decide(ledger) { _ throws(Suspension) in throw .failed(inputError) } }
        guard let input else { return [] }
        return Script.decide(ledger) { script throws(Suspension) in try body(input, &script) }
    }
}
