/// A small JSON writer for the engine's hot paths (every event and every snapshot):
/// Foundation's `JSONEncoder` took half the engine's CPU time. It writes exactly what the
/// synthesized `Codable` conformances read back with `JSONDecoder`; tests round-trip both.
struct JSONOut {
    private(set) var bytes: [UInt8] = []
    private var needsComma = false

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func openObject() {
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func closeObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func openArray() {
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    mutating func closeArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Writes `"name":` (after a comma when needed); the value follows.
    mutating func key(_ name: String) {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        appendString(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    mutating func string(_ value: String) {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        appendString(value)
        needsComma = true
    }

    mutating func integer<T: BinaryInteger>(_ value: T) {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        bytes.append(contentsOf: String(value).utf8)
        needsComma = true
    }

    mutating func bool(_ value: Bool) {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
        needsComma = true
    }

    mutating func double(_ value: Double) {
        precondition(value.isFinite, "JSON numbers are finite")
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        bytes.append(contentsOf: String(value).utf8)
        needsComma = true
    }

    mutating func field(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    mutating func field<T: BinaryInteger>(_ name: String, _ value: T?) {
        guard let value else { return }
        key(name)
        integer(value)
    }

    mutating func field(_ name: String, _ value: Bool?) {
        guard let value else { return }
        key(name)
        bool(value)
    }

    private mutating func appendString(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0x0F)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension JSONOut {
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
        field("lastError", record.lastError)
        field("result", record.result)
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
