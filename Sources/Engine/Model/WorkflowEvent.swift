// The engine's events: the case names, the stored type names (`WorkflowStarted`…) and the
// JSON field names of `StoredFields` below are the STORED FORMAT of every workflow history.
// Never rename or remove one; add optional fields, or bump a type's schema version and
// upcast the old version in `WorkflowEventCodec.decode` (see `ActivityFailed` v1 → v2).
// `Tests/EngineTests/Fixtures/history-v1.jsonl` is a history written by the first version
// and must always fold.

/// What happened to a workflow run. The decider folds these; the engine writes them.
public enum WorkflowEvent: Hashable, Sendable {
    case workflowStarted(WorkflowStart)
    case activityScheduled(ActivityRequest)
    /// An attempt began: durable before the executor is called.
    case activityStarted(activityID: String, attempt: Int)
    case activityCompleted(activityID: String, attempt: Int, output: String)
    case activityFailed(ActivityAttemptFailure)
    case timerStarted(timerID: String, fireAt: Timestamp)
    case timerFired(timerID: String, firedAt: Timestamp)
    case signalReceived(name: String, payload: String)
    case childStarted(childID: String, type: String)
    case childCompleted(childID: String, output: String)
    case childFailed(childID: String, reason: String)
    case cancelRequested(reason: String)
    case workflowCompleted(output: String)
    case workflowFailed(reason: String)
    case workflowCancelled(reason: String)
    /// A pending timer was cancelled (by the decider, or because the signal it bounded came).
    case timerCancelled(timerID: String)
    /// A fact the decider recorded (``WorkflowCommand/recordEvent(_:)``).
    case domainEvent(DomainEvent)
    /// This run sent a signal to its child.
    case childSignalled(childID: String, name: String)
    /// An operator asked to run a failed activity again: the next attempt is a new one, with
    /// the retry policy's budget afresh.
    case activityRetryRequested(activityID: String, by: String)
    /// This run ended and run `run` of the same workflow carries on (in its own stream).
    case workflowContinuedAsNew(run: Int)

    /// Whether this event ends the run.
    public var isTerminal: Bool {
        switch self {
        case .workflowCompleted, .workflowFailed, .workflowCancelled, .workflowContinuedAsNew: true
        case .workflowStarted, .activityScheduled, .activityStarted, .activityCompleted, .activityFailed,
            .timerStarted, .timerFired, .signalReceived, .childStarted, .childCompleted, .childFailed,
            .cancelRequested, .timerCancelled, .domainEvent, .childSignalled, .activityRetryRequested:
            false
        }
    }
}

/// The start of a run.
public struct WorkflowStart: Hashable, Sendable {
    public var type: String
    public var deciderVersion: Int
    public var input: String
    /// The parent run, for a child workflow.
    public var parentID: String?
    /// At most one running workflow holds a unique key (such as `upgrade/cluster-a`).
    public var uniqueKey: String?
    /// The run number: 1, or more after ``WorkflowCommand/continueAsNew``.
    public var run: Int
    /// The decider state the run starts from (JSON), after a continue-as-new; nil: `initial`.
    public var carriedState: String?
    /// For a fork (``EngineCore/fork(workflowID:run:throughRevision:newID:signal:now:)``): the
    /// run whose history prefix this one copied; nil for every other run.
    public var forkedFrom: WorkflowForkOrigin?

    public init(
        type: String, deciderVersion: Int, input: String, parentID: String? = nil, uniqueKey: String? = nil, run: Int = 1,
        carriedState: String? = nil, forkedFrom: WorkflowForkOrigin? = nil
    ) {
        self.type = type
        self.deciderVersion = deciderVersion
        self.input = input
        self.parentID = parentID
        self.uniqueKey = uniqueKey
        self.run = run
        self.carriedState = carriedState
        self.forkedFrom = forkedFrom
    }
}

/// Where a forked workflow's history came from: events 0 through `revision` of run `run`
/// of workflow `workflowID` (that stream itself is never written by the fork).
public struct WorkflowForkOrigin: Codable, Hashable, Sendable {
    public var workflowID: String
    public var run: Int
    public var revision: UInt64

    public init(workflowID: String, run: Int, revision: UInt64) {
        self.workflowID = workflowID
        self.run = run
        self.revision = revision
    }
}

/// A failed attempt, and whether and when the engine retries it.
public struct ActivityAttemptFailure: Hashable, Sendable {
    public var activityID: String
    public var attempt: Int
    public var failure: ActivityFailure
    /// When the next attempt starts; nil when the activity has failed for good.
    public var nextRetryAt: Timestamp?

    public init(activityID: String, attempt: Int, failure: ActivityFailure, nextRetryAt: Timestamp?) {
        self.activityID = activityID
        self.attempt = attempt
        self.failure = failure
        self.nextRetryAt = nextRetryAt
    }

    /// True when no further attempt follows.
    public var isFinal: Bool { nextRetryAt == nil }
}

/// An event with the engine time at which it was decided (stored with it).
public struct StampedWorkflowEvent: Hashable, Sendable {
    public var event: WorkflowEvent
    public var at: Timestamp

    public init(_ event: WorkflowEvent, at: Timestamp) {
        self.event = event
        self.at = at
    }
}

/// What the engine records when an attempt told to cancel (a start-to-close timeout, its
/// workflow ended) kept running past the grace (``EngineCore/Options/abandonGrace``): its
/// slot was then freed while its executor may still run.
///
/// Stored as its own type, `ActivityAttemptAbandoned`; deciders see it as a
/// ``WorkflowEvent/domainEvent(_:)`` named ``name`` (so the cases of ``WorkflowEvent``, which
/// deciders switch over, stay as they are).
public struct AttemptAbandoned: Codable, Hashable, Sendable {
    public static let name = "ActivityAttemptAbandoned"
    static let idPrefix = "engine/abandoned/"

    public var activityID: String
    public var attempt: Int
    public var reason: String

    public init(activityID: String, attempt: Int, reason: String) {
        self.activityID = activityID
        self.attempt = attempt
        self.reason = reason
    }

    /// Reads one from a domain event the engine recorded; nil for any other.
    public init?(_ event: DomainEvent) {
        guard Self.isAbandonment(event),
            let decoded = try? Payload.decode(AttemptAbandoned.self, from: event.payload, field: "ActivityAttemptAbandoned")
        else { return nil }
        self = decoded
    }

    static func isAbandonment(_ event: DomainEvent) -> Bool {
        event.name == name && event.id.hasPrefix(idPrefix)
    }

    /// The domain event that carries it.
    public var event: DomainEvent { DomainEvent(id: "\(Self.idPrefix)\(activityID)/\(attempt)", name: Self.name, value: self) }
}
