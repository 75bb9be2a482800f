import CapstanSupport

/// The engine's records in the shared ``JSONWriter``: exactly what the synthesized `Codable`
/// conformances read back with `JSONDecoder`; tests round-trip both.
extension JSONWriter {
    mutating func retry(_ policy: RetryPolicy) {
        openObject()
        key("maxAttempts")
        integer(policy.maxAttempts)
        key("initialBackoffNanoseconds")
        integer(policy.initialBackoff.nanosecondsClamped)
        key("maxBackoffNanoseconds")
        integer(policy.maxBackoff.nanosecondsClamped)
        key("multiplier")
        double(policy.multiplier)
        key("nonRetryableErrorKinds")
        openArray()
        for kind in policy.nonRetryableErrorKinds { string(kind) }
        closeArray()
        closeObject()
    }

    /// ``ActivityRequest`` as its `Codable` conformance reads it.
    mutating func request(_ request: ActivityRequest) {
        openObject()
        key("activityID")
        string(request.activityID)
        key("name")
        string(request.name)
        key("input")
        string(request.input)
        key("retry")
        retry(request.retry)
        key("timeoutNanoseconds")
        integer(request.startToCloseTimeout.nanosecondsClamped)
        field("concurrencyKey", request.concurrencyKey)
        if request.repeatable { field("repeatable", true) }
        closeObject()
    }

    /// ``WorkflowRecord`` as its synthesized `Codable` conformance reads it.
    mutating func record(_ record: WorkflowRecord) {
        openObject()
        key("workflowID")
        string(record.workflowID)
        key("type")
        string(record.type)
        key("deciderVersion")
        integer(record.deciderVersion)
        key("input")
        string(record.input)
        field("parentID", record.parentID)
        field("uniqueKey", record.uniqueKey)
        field("run", record.run)
        key("status")
        string(record.status.rawValue)
        key("lastRevision")
        integer(record.lastRevision)
        key("lastEventAt")
        integer(record.lastEventAt.nanoseconds)
        key("activities")
        openObject()
        for (activityID, activity) in record.activities {
            key(activityID)
            openObject()
            key("request")
            request(activity.request)
            key("phase")
            string(activity.phase.rawValue)
            key("attempt")
            integer(activity.attempt)
            field("startedAt", activity.startedAt?.nanoseconds)
            field("nextRetryAt", activity.nextRetryAt?.nanoseconds)
            field("lastError", activity.lastError)
            field("attemptsBeforeRetry", activity.attemptsBeforeRetry)
            field("interruptions", activity.interruptions)
            closeObject()
        }
        closeObject()
        key("completedActivities")
        openArray()
        for activityID in record.completedActivities { string(activityID) }
        closeArray()
        key("timers")
        openObject()
        for (timerID, timer) in record.timers {
            key(timerID)
            openObject()
            key("fireAt")
            integer(timer.fireAt.nanoseconds)
            key("fired")
            bool(timer.fired)
            closeObject()
        }
        closeObject()
        key("children")
        openObject()
        for (childID, status) in record.children {
            key(childID)
            string(status.rawValue)
        }
        closeObject()
        key("paused")
        bool(record.paused)
        key("cancelRequested")
        bool(record.cancelRequested)
        field("cancelReason", record.cancelReason)
        field("lastError", record.lastError)
        field("result", record.result)
        if let recordedEvents = record.recordedEvents {
            key("recordedEvents")
            openArray()
            for id in recordedEvents.sorted() { string(id) }
            closeArray()
        }
        field("quarantine", record.quarantine)
        if let origin = record.forkedFrom {
            key("forkedFrom")
            openObject()
            key("workflowID")
            string(origin.workflowID)
            key("run")
            integer(origin.run)
            key("revision")
            integer(origin.revision)
            closeObject()
        }
        closeObject()
    }

    /// ``WorkflowView`` as its synthesized `Codable` conformance reads it.
    mutating func view(_ view: WorkflowView) {
        openObject()
        key("status")
        string(view.status.rawValue)
        key("waitingOn")
        string(view.waitingOn)
        key("since")
        integer(view.since.nanoseconds)
        field("lastError", view.lastError)
        field("attempt", view.attempt)
        field("nextRetryAt", view.nextRetryAt?.nanoseconds)
        closeObject()
    }
}
