/// A workflow type: a pure decider over the engine's ``WorkflowEvent``s.
///
/// State is always the fold of the workflow's events with ``evolve(_:_:)``, never replayed
/// code, so changing a workflow's code never breaks an old history. `evolve` and `decide`
/// use no clock, randomness, I/O or logging: time reaches them inside events (a timeout is
/// a ``WorkflowCommand/startTimer(id:after:)`` whose firing comes back as
/// ``WorkflowEvent/timerFired(timerID:firedAt:)``).
///
/// `decide` must be idempotent: once the events acknowledging a command are folded
/// (``WorkflowEvent/activityScheduled(_:)`` for a run, ``WorkflowEvent/timerStarted(timerID:fireAt:)``
/// for a timer, ``WorkflowEvent/childStarted(childID:type:)`` for a child), it stops asking for
/// it. The engine also ignores a command whose id it has already recorded.
public protocol Workflow: Sendable {
    associatedtype State: Codable & Equatable & Sendable
    /// The stable name of the type, recorded in ``WorkflowEvent/workflowStarted(_:)``.
    static var type: String { get }
    /// The decider's version, recorded when a run starts (for audit and migrations).
    static var version: Int { get }
    static var initial: State { get }
    static func evolve(_ state: State, _ event: WorkflowEvent) -> State
    static func decide(_ state: State) -> [WorkflowCommand]
}

extension Workflow {
    /// The state after folding `events` from ``initial``.
    public static func replay(_ events: [WorkflowEvent]) -> State {
        events.reduce(initial, evolve)
    }
}

/// What a decider asks the engine to do.
public enum WorkflowCommand: Hashable, Sendable {
    /// Run an activity (at least once until it completes, with retries), identified by a
    /// stable id within the workflow.
    case runActivity(ActivityRequest)
    /// Start a durable timer that fires `after` from now (the engine's now).
    case startTimer(id: String, after: Duration)
    /// Start a child workflow; its result comes back as ``WorkflowEvent/childCompleted(childID:output:)``
    /// or ``WorkflowEvent/childFailed(childID:reason:)``.
    case startChild(ChildRequest)
    /// The workflow waits for a signal of this name (shown to operators as the step it waits on).
    case waitForSignal(name: String)
    /// The workflow succeeded with `output`.
    case complete(output: String)
    /// The workflow failed for `reason`.
    case fail(reason: String)
}

/// How an activity retries: exponential backoff with jitter, bounded attempts, and error
/// kinds that never retry.
public struct RetryPolicy: Hashable, Sendable {
    /// Attempts in all, the first included (1 means no retry).
    public var maxAttempts: Int
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    public var multiplier: Double
    /// ``ActivityFailure/kind`` values that fail the activity at once.
    public var nonRetryableErrorKinds: [String]

    public init(
        maxAttempts: Int = 5, initialBackoff: Duration = .seconds(1), maxBackoff: Duration = .seconds(60),
        multiplier: Double = 2, nonRetryableErrorKinds: [String] = []
    ) {
        precondition(maxAttempts >= 1, "maxAttempts must be at least 1")
        precondition(multiplier >= 1, "multiplier must be at least 1")
        self.maxAttempts = maxAttempts
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.multiplier = multiplier
        self.nonRetryableErrorKinds = nonRetryableErrorKinds
    }

    /// The backoff before attempt `failedAttempt + 1`, before jitter.
    public func backoff(afterAttempt failedAttempt: Int) -> Duration {
        let base = Double(initialBackoff.nanosecondsClamped)
        let scaled = base * pow(multiplier, Double(max(0, failedAttempt - 1)))
        let capped = min(scaled, Double(maxBackoff.nanosecondsClamped))
        return .nanoseconds(Int64(capped))
    }
}

/// One activity a workflow asks for.
public struct ActivityRequest: Hashable, Sendable {
    /// Stable within the workflow; with the workflow id it forms the idempotency key.
    public var activityID: String
    /// The executor to call (registered by name).
    public var name: String
    /// The input handed to the executor, usually JSON text.
    public var input: String
    public var retry: RetryPolicy
    /// How long one attempt may run before it counts as failed (kind `timeout`).
    public var startToCloseTimeout: Duration
    /// Activities with the same key share a concurrency limit (for example, one cluster).
    public var concurrencyKey: String?

    public init(
        activityID: String, name: String, input: String = "", retry: RetryPolicy = RetryPolicy(),
        startToCloseTimeout: Duration = .seconds(60), concurrencyKey: String? = nil
    ) {
        self.activityID = activityID
        self.name = name
        self.input = input
        self.retry = retry
        self.startToCloseTimeout = startToCloseTimeout
        self.concurrencyKey = concurrencyKey
    }
}

/// A child workflow a workflow asks for.
public struct ChildRequest: Hashable, Sendable {
    /// The child's workflow id (and stream name suffix); unique for ever.
    public var workflowID: String
    public var type: String
    public var input: String

    public init(workflowID: String, type: String, input: String = "") {
        self.workflowID = workflowID
        self.type = type
        self.input = input
    }
}

/// Why an activity attempt failed, as recorded in ``WorkflowEvent/activityFailed(_:)``.
public struct ActivityFailure: Error, Hashable, Sendable {
    /// A stable machine-readable kind (`timeout`, `conflict`, `invalidInput`…); retry
    /// policies list the kinds that never retry.
    public var kind: String
    /// For people; never holds credentials.
    public var message: String
    /// False when retrying cannot help, whatever the policy says.
    public var retryable: Bool

    public init(kind: String, message: String, retryable: Bool = true) {
        self.kind = kind
        self.message = message
        self.retryable = retryable
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
