import CapstanSupport
public import EventLog
import Foundation

/// Encodes ``WorkflowEvent``s as log payloads (JSON with a schema version per type) and
/// decodes them, upcasting old schema versions.
public enum WorkflowEventCodec {
    /// The stored type name and current schema version of each case.
    static func typeAndVersion(of event: WorkflowEvent) -> (String, UInt16) {
        switch event {
        case .workflowStarted: ("WorkflowStarted", 1)
        case .activityScheduled: ("ActivityScheduled", 1)
        case .activityStarted: ("ActivityStarted", 1)
        case .activityCompleted: ("ActivityCompleted", 1)
        case .activityFailed: ("ActivityFailed", 2)
        case .timerStarted: ("TimerStarted", 1)
        case .timerFired: ("TimerFired", 1)
        case .signalReceived: ("SignalReceived", 1)
        case .childStarted: ("ChildStarted", 1)
        case .childCompleted: ("ChildCompleted", 1)
        case .childFailed: ("ChildFailed", 1)
        case .cancelRequested: ("CancelRequested", 1)
        case .workflowCompleted: ("WorkflowCompleted", 1)
        case .workflowFailed: ("WorkflowFailed", 1)
        case .workflowCancelled: ("WorkflowCancelled", 1)
        case .timerCancelled: ("TimerCancelled", 1)
        case .domainEvent(let event): AttemptAbandoned.isAbandonment(event) ? (AttemptAbandoned.name, 1) : ("DomainEventRecorded", 1)
        case .childSignalled: ("ChildSignalled", 1)
        case .activityRetryRequested: ("ActivityRetryRequested", 1)
        case .workflowContinuedAsNew: ("WorkflowContinuedAsNew", 1)
        }
    }

    /// The stored form of an event: type name, schema version and JSON payload.
    public static func encode(_ stamped: StampedWorkflowEvent) -> (type: String, schemaVersion: UInt16, payload: [UInt8]) {
        let (type, version) = typeAndVersion(of: stamped.event)
        var fields = StoredFields(at: stamped.at.nanoseconds)
        switch stamped.event {
        case .workflowStarted(let start):
            fields.type = start.type
            fields.deciderVersion = start.deciderVersion
            fields.input = start.input
            fields.parentID = start.parentID
            fields.uniqueKey = start.uniqueKey
            fields.run = start.run == 1 ? nil : start.run
            fields.carriedState = start.carriedState
            if let origin = start.forkedFrom {
                fields.forkedFrom = origin.workflowID
                fields.forkedFromRun = origin.run == 1 ? nil : origin.run
                fields.forkedFromRevision = origin.revision
            }
        case .activityScheduled(let request):
            fields.activityID = request.activityID
            fields.name = request.name
            fields.input = request.input
            fields.retry = StoredRetry(request.retry)
            fields.timeoutNanoseconds = request.startToCloseTimeout.nanosecondsClamped
            fields.concurrencyKey = request.concurrencyKey
            fields.repeatable = request.repeatable ? true : nil
        case .activityStarted(let activityID, let attempt):
            fields.activityID = activityID
            fields.attempt = attempt
        case .activityCompleted(let activityID, let attempt, let output):
            fields.activityID = activityID
            fields.attempt = attempt
            fields.output = output
        case .activityFailed(let failed):
            fields.activityID = failed.activityID
            fields.attempt = failed.attempt
            fields.errorKind = failed.failure.kind
            fields.error = failed.failure.message
            fields.retryable = failed.failure.retryable
            fields.nextRetryAt = failed.nextRetryAt?.nanoseconds
        case .timerStarted(let timerID, let fireAt):
            fields.timerID = timerID
            fields.fireAt = fireAt.nanoseconds
        case .timerFired(let timerID, let firedAt):
            fields.timerID = timerID
            fields.firedAt = firedAt.nanoseconds
        case .signalReceived(let name, let payload):
            fields.name = name
            fields.payload = payload
        case .childStarted(let childID, let childType):
            fields.childID = childID
            fields.type = childType
        case .childCompleted(let childID, let output):
            fields.childID = childID
            fields.output = output
        case .childFailed(let childID, let reason):
            fields.childID = childID
            fields.reason = reason
        case .cancelRequested(let reason), .workflowFailed(let reason), .workflowCancelled(let reason):
            fields.reason = reason
        case .workflowCompleted(let output):
            fields.output = output
        case .timerCancelled(let timerID):
            fields.timerID = timerID
        case .domainEvent(let event):
            fields.eventID = event.id
            fields.name = event.name
            fields.payload = event.payload
        case .childSignalled(let childID, let name):
            fields.childID = childID
            fields.name = name
        case .activityRetryRequested(let activityID, let by):
            fields.activityID = activityID
            fields.by = by
        case .workflowContinuedAsNew(let run):
            fields.run = run
        }
        return (type, version, fields.json())
    }

    /// Decodes a stored event, upcasting an old schema version.
    ///
    /// - Parameter context: names the event in errors (stream and revision).
    /// - Throws: ``EngineError`` `.corruptHistory` naming the event, field and reason.
    public static func decode(type: String, schemaVersion: UInt16, payload: [UInt8], context: String) throws
        -> StampedWorkflowEvent
    {
        let fields: StoredFields
        do {
            fields = try JSONDecoder().decode(StoredFields.self, from: Data(payload))
        } catch {
            throw EngineError(.corruptHistory, "\(context): \(type) v\(schemaVersion): payload is not valid JSON: \(error)")
        }
        let reader = FieldReader(fields: fields, context: "\(context): \(type) v\(schemaVersion)")
        let event: WorkflowEvent
        switch (type, schemaVersion) {
        case ("WorkflowStarted", 1):
            // `forkedFrom` came later (optional): older starts have none and are no fork.
            var origin: WorkflowForkOrigin?
            if let forkedFrom = fields.forkedFrom {
                origin = WorkflowForkOrigin(
                    workflowID: forkedFrom, run: fields.forkedFromRun ?? 1,
                    revision: try reader.require(\.forkedFromRevision, "forkedFromRevision"))
            }
            event = .workflowStarted(
                WorkflowStart(
                    type: try reader.require(\.type, "type"), deciderVersion: try reader.require(\.deciderVersion, "deciderVersion"),
                    input: fields.input ?? "", parentID: fields.parentID, uniqueKey: fields.uniqueKey, run: fields.run ?? 1,
                    carriedState: fields.carriedState, forkedFrom: origin))
        case ("ActivityScheduled", 1):
            let retry = try reader.require(\.retry, "retry")
            event = .activityScheduled(
                ActivityRequest(
                    activityID: try reader.require(\.activityID, "activityID"), name: try reader.require(\.name, "name"),
                    input: fields.input ?? "", retry: try retry.policy(context: reader.context),
                    startToCloseTimeout: .nanoseconds(try reader.require(\.timeoutNanoseconds, "timeoutNanoseconds")),
                    concurrencyKey: fields.concurrencyKey, repeatable: fields.repeatable ?? false))
        case ("ActivityStarted", 1):
            event = .activityStarted(
                activityID: try reader.require(\.activityID, "activityID"), attempt: try reader.require(\.attempt, "attempt"))
        case ("ActivityCompleted", 1):
            event = .activityCompleted(
                activityID: try reader.require(\.activityID, "activityID"), attempt: try reader.require(\.attempt, "attempt"),
                output: fields.output ?? "")
        case ("ActivityFailed", 1):
            // v1 had no error kind and no `retryable`: it retried exactly when a next
            // attempt was scheduled.
            event = .activityFailed(
                ActivityAttemptFailure(
                    activityID: try reader.require(\.activityID, "activityID"), attempt: try reader.require(\.attempt, "attempt"),
                    failure: ActivityFailure(
                        kind: "unknown", message: try reader.require(\.error, "error"), retryable: fields.nextRetryAt != nil),
                    nextRetryAt: fields.nextRetryAt.map(Timestamp.init(nanoseconds:))))
        case ("ActivityFailed", 2):
            event = .activityFailed(
                ActivityAttemptFailure(
                    activityID: try reader.require(\.activityID, "activityID"), attempt: try reader.require(\.attempt, "attempt"),
                    failure: ActivityFailure(
                        kind: try reader.require(\.errorKind, "errorKind"), message: try reader.require(\.error, "error"),
                        retryable: try reader.require(\.retryable, "retryable")),
                    nextRetryAt: fields.nextRetryAt.map(Timestamp.init(nanoseconds:))))
        case ("TimerStarted", 1):
            event = .timerStarted(
                timerID: try reader.require(\.timerID, "timerID"),
                fireAt: Timestamp(nanoseconds: try reader.require(\.fireAt, "fireAt")))
        case ("TimerFired", 1):
            event = .timerFired(
                timerID: try reader.require(\.timerID, "timerID"),
                firedAt: Timestamp(nanoseconds: try reader.require(\.firedAt, "firedAt")))
        case ("SignalReceived", 1):
            event = .signalReceived(name: try reader.require(\.name, "name"), payload: fields.payload ?? "")
        case ("ChildStarted", 1):
            event = .childStarted(childID: try reader.require(\.childID, "childID"), type: try reader.require(\.type, "type"))
        case ("ChildCompleted", 1):
            event = .childCompleted(childID: try reader.require(\.childID, "childID"), output: fields.output ?? "")
        case ("ChildFailed", 1):
            event = .childFailed(childID: try reader.require(\.childID, "childID"), reason: try reader.require(\.reason, "reason"))
        case ("CancelRequested", 1):
            event = .cancelRequested(reason: try reader.require(\.reason, "reason"))
        case ("WorkflowCompleted", 1):
            event = .workflowCompleted(output: fields.output ?? "")
        case ("WorkflowFailed", 1):
            event = .workflowFailed(reason: try reader.require(\.reason, "reason"))
        case ("WorkflowCancelled", 1):
            event = .workflowCancelled(reason: try reader.require(\.reason, "reason"))
        case ("TimerCancelled", 1):
            event = .timerCancelled(timerID: try reader.require(\.timerID, "timerID"))
        case ("DomainEventRecorded", 1), (AttemptAbandoned.name, 1):
            event = .domainEvent(
                DomainEvent(id: try reader.require(\.eventID, "eventID"), name: try reader.require(\.name, "name"), payload: fields.payload ?? ""))
        case ("ChildSignalled", 1):
            event = .childSignalled(childID: try reader.require(\.childID, "childID"), name: try reader.require(\.name, "name"))
        case ("ActivityRetryRequested", 1):
            event = .activityRetryRequested(activityID: try reader.require(\.activityID, "activityID"), by: fields.by ?? "")
        case ("WorkflowContinuedAsNew", 1):
            event = .workflowContinuedAsNew(run: try reader.require(\.run, "run"))
        default:
            throw EngineError(.corruptHistory, "\(context): unknown event type \(type) with schema version \(schemaVersion)")
        }
        return StampedWorkflowEvent(event, at: Timestamp(nanoseconds: fields.at))
    }

    /// Decodes a recorded event of a workflow stream.
    public static func decode(_ recorded: RecordedEvent) throws -> StampedWorkflowEvent {
        try decode(
            type: recorded.type, schemaVersion: recorded.schemaVersion, payload: recorded.payload,
            context: "stream \(recorded.streamID) revision \(recorded.revision)")
    }
}

/// Every field any engine event stores; each type uses some. Optional so old payloads
/// decode and new optional fields can be added.
struct StoredFields: Codable {
    var at: Int64
    var type: String?
    var deciderVersion: Int?
    var input: String?
    var parentID: String?
    var uniqueKey: String?
    var activityID: String?
    var name: String?
    var retry: StoredRetry?
    var timeoutNanoseconds: Int64?
    var concurrencyKey: String?
    var attempt: Int?
    var output: String?
    var errorKind: String?
    var error: String?
    var retryable: Bool?
    var nextRetryAt: Int64?
    var timerID: String?
    var fireAt: Int64?
    var firedAt: Int64?
    var payload: String?
    var childID: String?
    var reason: String?
    var run: Int?
    var carriedState: String?
    var repeatable: Bool?
    var eventID: String?
    var by: String?
    var forkedFrom: String?
    var forkedFromRun: Int?
    var forkedFromRevision: UInt64?

    init(at: Int64) { self.at = at }

    /// The JSON `JSONDecoder` reads back as these fields (written by hand: the hot path).
    func json() -> [UInt8] {
        var out = JSONWriter()
        out.openObject()
        out.key("at")
        out.integer(at)
        out.field("type", type)
        out.field("deciderVersion", deciderVersion)
        out.field("input", input)
        out.field("parentID", parentID)
        out.field("uniqueKey", uniqueKey)
        out.field("activityID", activityID)
        out.field("name", name)
        if let retry {
            out.key("retry")
            out.openObject()
            out.key("maxAttempts")
            out.integer(retry.maxAttempts)
            out.key("initialBackoffNanoseconds")
            out.integer(retry.initialBackoffNanoseconds)
            out.key("maxBackoffNanoseconds")
            out.integer(retry.maxBackoffNanoseconds)
            out.key("multiplier")
            out.double(retry.multiplier)
            out.key("nonRetryableErrorKinds")
            out.openArray()
            for kind in retry.nonRetryableErrorKinds { out.string(kind) }
            out.closeArray()
            out.closeObject()
        }
        out.field("timeoutNanoseconds", timeoutNanoseconds)
        out.field("concurrencyKey", concurrencyKey)
        out.field("attempt", attempt)
        out.field("output", output)
        out.field("errorKind", errorKind)
        out.field("error", error)
        out.field("retryable", retryable)
        out.field("nextRetryAt", nextRetryAt)
        out.field("timerID", timerID)
        out.field("fireAt", fireAt)
        out.field("firedAt", firedAt)
        out.field("payload", payload)
        out.field("childID", childID)
        out.field("reason", reason)
        out.field("run", run)
        out.field("carriedState", carriedState)
        out.field("repeatable", repeatable)
        out.field("eventID", eventID)
        out.field("by", by)
        out.field("forkedFrom", forkedFrom)
        out.field("forkedFromRun", forkedFromRun)
        out.field("forkedFromRevision", forkedFromRevision)
        out.closeObject()
        return out.bytes
    }
}

struct StoredRetry: Codable {
    var maxAttempts: Int
    var initialBackoffNanoseconds: Int64
    var maxBackoffNanoseconds: Int64
    var multiplier: Double
    var nonRetryableErrorKinds: [String]

    init(_ policy: RetryPolicy) {
        maxAttempts = policy.maxAttempts
        initialBackoffNanoseconds = policy.initialBackoff.nanosecondsClamped
        maxBackoffNanoseconds = policy.maxBackoff.nanosecondsClamped
        multiplier = policy.multiplier
        nonRetryableErrorKinds = policy.nonRetryableErrorKinds
    }

    func policy(context: String) throws -> RetryPolicy {
        guard maxAttempts >= 1 else { throw EngineError(.corruptHistory, "\(context): retry.maxAttempts: must be at least 1, is \(maxAttempts)") }
        guard multiplier >= 1 else { throw EngineError(.corruptHistory, "\(context): retry.multiplier: must be at least 1, is \(multiplier)") }
        return RetryPolicy(
            maxAttempts: maxAttempts, initialBackoff: .nanoseconds(initialBackoffNanoseconds),
            maxBackoff: .nanoseconds(maxBackoffNanoseconds), multiplier: multiplier,
            nonRetryableErrorKinds: nonRetryableErrorKinds)
    }
}

private struct FieldReader {
    var fields: StoredFields
    var context: String

    func require<T>(_ path: KeyPath<StoredFields, T?>, _ name: String) throws -> T {
        guard let value = fields[keyPath: path] else {
            throw EngineError(.corruptHistory, "\(context): field \(name) is missing")
        }
        return value
    }
}
