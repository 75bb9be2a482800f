/// A workflow type: a pure decider over the engine's ``WorkflowEvent``s.
///
/// State is always the fold of the workflow's events with ``evolve(_:_:at:)``, never replayed
/// code, so changing a workflow's code never breaks an old history. `evolve` and `decide`
/// use no clock, randomness, I/O or logging: time reaches them inside events and as the
/// recorded time `at` of each event (a timeout is a ``WorkflowCommand/startTimer(id:after:)``
/// whose firing comes back as ``WorkflowEvent/timerFired(timerID:firedAt:)``).
///
/// Payloads (the start input, activity inputs and outputs, signal payloads, domain events,
/// progress) are typed `Codable` values, stored as JSON text so histories stay readable;
/// read them with ``Payload/decode(_:from:field:)`` (or the typed accessors on the events).
/// `evolve` may throw when a payload does not decode: the workflow is then quarantined
/// (``WorkflowRecord/Status/quarantined``), its history untouched, and others keep running.
///
/// `decide` must be idempotent: once the events acknowledging a command are folded
/// (``WorkflowEvent/activityScheduled(_:)`` for a run, ``WorkflowEvent/timerStarted(timerID:fireAt:)``
/// for a timer, ``WorkflowEvent/childStarted(childID:type:)`` for a child,
/// ``WorkflowEvent/domainEvent(_:)`` for a recorded event), it stops asking for it. The
/// engine also ignores a command whose id it holds open already.
public protocol Workflow: Sendable {
    associatedtype State: Codable & Equatable & Sendable
    /// The start input (JSON; a `String` input also reads plain text). A start whose input
    /// does not decode is refused, naming the field, and writes nothing.
    associatedtype Input: Codable & Sendable = String
    /// What the type shows operators and read-only tools (JSON in the status snapshot).
    associatedtype Progress: Encodable & Sendable = NoProgress
    /// The stable name of the type, recorded in ``WorkflowEvent/workflowStarted(_:)``.
    static var type: String { get }
    /// The decider's version, recorded when a run starts and in every snapshot. Bump it when
    /// `State` or `evolve` changes: at start, a snapshot of another version is upcast
    /// (``upcastSnapshot(_:fromVersion:)``) or dropped and the run folded again from its
    /// stream under the new code.
    static var version: Int { get }
    static var initial: State { get }
    /// Folds one event, recorded by the engine at `at` (derive "since" and deadlines from it).
    static func evolve(_ state: State, _ event: WorkflowEvent, at: Timestamp) throws -> State
    static func decide(_ state: State) -> [WorkflowCommand]
    /// Whether a cancelled run keeps deciding (cleanup) before it ends as cancelled; see
    /// ``WorkflowEvent/cancelRequested(reason:)``. False: it ends at once.
    static var cleansUpOnCancel: Bool { get }
    /// The progress view of a state (nil: none).
    static func progress(_ state: State) -> Progress?
    /// The state of a snapshot written by decider version `fromVersion` (its JSON), as this
    /// version's `State`; nil (the default): fold the run again from its stream instead.
    /// Upcast only when the new `evolve` would give the same state from the history.
    static func upcastSnapshot(_ state: [UInt8], fromVersion: Int) throws -> State?
}

/// The progress of a type that shows none.
public struct NoProgress: Codable, Sendable {}

extension Workflow {
    public static var cleansUpOnCancel: Bool { false }
    public static func progress(_ state: State) -> Progress? { nil }
    public static func upcastSnapshot(_ state: [UInt8], fromVersion: Int) throws -> State? { nil }

    /// The state after folding `events` from ``initial``, all recorded at `at`.
    public static func replay(_ events: [WorkflowEvent], at: Timestamp = Timestamp(nanoseconds: 0)) throws -> State {
        try events.reduce(initial) { try evolve($0, $1, at: at) }
    }

    /// The state after folding recorded events from ``initial``.
    public static func replay(_ events: [StampedWorkflowEvent]) throws -> State {
        try events.reduce(initial) { try evolve($0, $1.event, at: $1.at) }
    }
}

/// What a decider asks the engine to do.
public enum WorkflowCommand: Hashable, Sendable {
    /// Run an activity (at least once until it completes, with retries), identified by a
    /// stable id within the workflow. Once it completed, the same id is ignored, unless the
    /// request is ``ActivityRequest/repeatable`` (a poll: the id runs again, the record keeps
    /// no trace of earlier runs).
    case runActivity(ActivityRequest)
    /// Start a durable timer that fires `after` from now (the engine's now). The id may be
    /// started again once the timer fired or was cancelled (a poll loop).
    case startTimer(id: String, after: Duration)
    /// Cancel a pending timer (recorded as ``WorkflowEvent/timerCancelled(timerID:)``);
    /// ignored when no timer of that id is pending.
    case cancelTimer(id: String)
    /// Start a child workflow; its result comes back as ``WorkflowEvent/childCompleted(childID:output:)``
    /// or ``WorkflowEvent/childFailed(childID:reason:)``.
    case startChild(ChildRequest)
    /// Send a signal to a running child (recorded in this run as ``WorkflowEvent/childSignalled(childID:name:)``).
    case signalChild(childID: String, name: String, payload: String)
    /// Cancel a running child; it ends as cancelled (after its cleanup) and this run gets
    /// ``WorkflowEvent/childFailed(childID:reason:)``.
    case cancelChild(childID: String, reason: String)
    /// The workflow waits for a signal of this name (shown to operators as the step it waits
    /// on). With a `timeout`, the engine starts the timer ``WorkflowCommand/signalTimeoutTimerID(_:)``
    /// once, cancels it when the signal arrives, and otherwise it fires.
    case waitForSignal(name: String, timeout: Duration? = nil)
    /// Record a domain event of this workflow (folded like every other event, shown in history).
    case recordEvent(DomainEvent)
    /// End this run and start a new run of the same workflow id and type whose state starts
    /// as this run's current state (the old history stays in the log). Applied once no
    /// activity and no child runs; pending timers are cancelled.
    case continueAsNew
    /// The workflow succeeded with `output`.
    case complete(output: String)
    /// The workflow failed for `reason`.
    case fail(reason: String)

    /// The id of the timer of a ``waitForSignal(name:timeout:)`` with a timeout.
    public static func signalTimeoutTimerID(_ name: String) -> String { "signal-timeout/\(name)" }

    /// Completes with a typed output (stored as JSON).
    public static func complete(_ output: some Encodable) -> WorkflowCommand { .complete(output: Payload.encode(output)) }

    /// Signals a child with a typed payload (stored as JSON).
    public static func signalChild(childID: String, name: String, _ payload: some Encodable) -> WorkflowCommand {
        .signalChild(childID: childID, name: name, payload: Payload.encode(payload))
    }
}

/// A fact a decider records in its own history (for example the upgrade plan).
public struct DomainEvent: Hashable, Sendable {
    /// Unique within the run: the engine records an id once.
    public var id: String
    /// What kind of fact it is (for readers of the history).
    public var name: String
    /// JSON text.
    public var payload: String

    public init(id: String, name: String, payload: String) {
        self.id = id
        self.name = name
        self.payload = payload
    }

    /// A domain event with a typed payload (stored as JSON).
    public init(id: String, name: String, value: some Encodable) {
        self.init(id: id, name: name, payload: Payload.encode(value))
    }

    /// The payload as `T`.
    ///
    /// - Throws: ``EngineError`` `.invalidInput` naming the event and the reason.
    public func value<T: Decodable>(as type: T.Type) throws -> T {
        try Payload.decode(type, from: payload, field: "domain event \(id) (\(name)) payload")
    }
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
    /// Whether the id may run again once a run of it completed (a poll). Its idempotency key
    /// stays `<workflow id>/<activity id>`: use it for reads, or make each run's effect its own.
    public var repeatable: Bool

    public init(
        activityID: String, name: String, input: String = "", retry: RetryPolicy = RetryPolicy(),
        startToCloseTimeout: Duration = .seconds(60), concurrencyKey: String? = nil, repeatable: Bool = false
    ) {
        self.activityID = activityID
        self.name = name
        self.input = input
        self.retry = retry
        self.startToCloseTimeout = startToCloseTimeout
        self.concurrencyKey = concurrencyKey
        self.repeatable = repeatable
    }

    /// A request with a typed input (stored as JSON).
    public init(
        activityID: String, name: String, value: some Encodable, retry: RetryPolicy = RetryPolicy(),
        startToCloseTimeout: Duration = .seconds(60), concurrencyKey: String? = nil, repeatable: Bool = false
    ) {
        self.init(
            activityID: activityID, name: name, input: Payload.encode(value), retry: retry,
            startToCloseTimeout: startToCloseTimeout, concurrencyKey: concurrencyKey, repeatable: repeatable)
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

    /// A child with a typed input (stored as JSON).
    public init(workflowID: String, type: String, value: some Encodable) {
        self.init(workflowID: workflowID, type: type, input: Payload.encode(value))
    }
}

/// Why an activity attempt failed, as recorded in ``WorkflowEvent/activityFailed(_:)``.
public struct ActivityFailure: Error, Hashable, Sendable {
    /// The kind the engine records for an attempt its own stop or crash interrupted
    /// (reserved: executors do not throw it).
    public static let interruptedKind = "interrupted"

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
