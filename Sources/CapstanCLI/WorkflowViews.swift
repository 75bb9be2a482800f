import CapstanSupport
import Engine
import EventLog
import Fleet
import Foundation

/// `workflow show`: the summary plus what is open (activities, children, timers).
struct WorkflowDetail: Encodable {
    struct Activity: Encodable {
        var id: String
        var name: String
        var phase: String
        var attempt: Int
        var startedAt: String?
        var nextRetryAt: String?
        var lastError: String?
    }

    struct Timer: Encodable {
        var id: String
        var firesAt: String
    }

    var summary: WorkflowSummary
    var deciderVersion: Int
    var input: ManifestValue?
    var result: String?
    var lastRevision: UInt64
    var activities: [Activity]
    var completedActivities: Int
    var children: [String: String]
    var timers: [Timer]
    var cancelRequested: Bool
    var quarantine: String?
    /// For a fork: `<id> revision <n>` (`<id> run <r> revision <n>`) it copied its history from.
    var forkedFrom: String?

    init(_ report: WorkflowStatusReport, now: Int64) {
        let record = report.record
        summary = WorkflowSummary(report)
        deciderVersion = record.deciderVersion
        input = try? JSONDecoder().decode(ManifestValue.self, from: Data(record.input.utf8))
        result = record.result
        lastRevision = record.lastRevision
        activities = record.activities.values.sorted { $0.request.activityID < $1.request.activityID }.map {
            Activity(
                id: $0.request.activityID, name: $0.request.name, phase: $0.phase.rawValue, attempt: $0.attempt,
                startedAt: $0.startedAt.map { rfc3339(nanoseconds: $0.nanoseconds) },
                nextRetryAt: $0.nextRetryAt.map { rfc3339(nanoseconds: $0.nanoseconds) }, lastError: $0.lastError)
        }
        completedActivities = record.completedActivities.count
        children = record.children.mapValues(\.rawValue)
        timers = record.timers.sorted { $0.key < $1.key }.map { Timer(id: $0.key, firesAt: rfc3339(nanoseconds: $0.value.fireAt.nanoseconds)) }
        cancelRequested = record.cancelRequested
        quarantine = record.quarantine
        forkedFrom = record.forkedFrom.map { "\($0.workflowID)\($0.run > 1 ? " run \($0.run)" : "") revision \($0.revision)" }
    }

    /// One line for a watch when piped: time, id, status, progress, the wait and for how long
    /// (without `now`: what counts as a change, the wait's numbers taken out, no ages or
    /// activity counts).
    func changeLine(now: Int64?) -> String {
        var parts = ["\(summary.id) \(summary.status)"]
        if let progress = summary.progress?.objectValue {
            var shown: [String] = []
            if let step = progress["step"]?.integerValue, let steps = progress["steps"]?.integerValue { shown.append("step \(step)/\(steps)") }
            for (key, value) in progress.sorted(by: { $0.key < $1.key })
            where !["step", "steps", "since", "waitingOn"].contains(key) {
                if let text = value.stringValue ?? value.integerValue.map(String.init), !text.isEmpty { shown.append("\(key)=\(text)") }
            }
            if !shown.isEmpty { parts.append(shown.joined(separator: " ")) }
        }
        // Not part of a change: a poll loop completes an activity per poll.
        if now != nil { parts.append("\(completedActivities) activities done, \(activities.count) open") }
        if !summary.waitingOn.isEmpty, summary.status == "running" || summary.status == "paused" {
            var wait = "waiting on " + (now == nil ? waitShape(summary.waitingOn) : summary.waitingOn)
            if let now { wait += " (for \(ageText(summary.sinceNanoseconds, now: now)))" }
            parts.append(wait)
        }
        if let error = summary.lastError { parts.append("last error: \(error)") }
        if let result, summary.status != "running" { parts.append("result: \(result)") }
        let line = parts.joined(separator: ", ")
        return now.map { "\(timeText($0)) \(line)" } ?? line
    }

    func text(now: Int64) -> String {
        var lines: [String] = []
        func field(_ name: String, _ value: String) { lines.append((name + ":").padding(toLength: 13, withPad: " ", startingAt: 0) + value) }
        field("Workflow", summary.id)
        field("Type", "\(summary.type) (decider version \(deciderVersion))")
        field("Status", statusText(summary.status) + (cancelRequested && summary.status == "running" ? " (cancel requested)" : ""))
        if let cluster = summary.cluster { field("Cluster", "\(summary.namespace ?? "")/\(cluster)") }
        if let parent = summary.parentID { field("Parent", parent) }
        if summary.run > 1 { field("Run", "\(summary.run)") }
        if let forkedFrom { field("Forked from", forkedFrom) }
        field("Waiting on", summary.waitingOn)
        field("Since", "\(summary.since) (\(ageText(summary.sinceNanoseconds, now: now)) ago)")
        if let attempt = summary.attempt { field("Attempt", "\(attempt)") }
        if let next = summary.nextRetryAt { field("Next retry", next) }
        if let error = summary.lastError { field("Last error", error) }
        if let result { field("Result", result) }
        if let quarantine { field("Quarantine", quarantine) }
        if let progress = summary.progress?.objectValue, !progress.isEmpty {
            lines.append("Progress:")
            for (key, value) in progress.sorted(by: { $0.key < $1.key }) {
                lines.append("  \(key): \(value.stringValue ?? value.integerValue.map(String.init) ?? String(decoding: value.canonicalJSON, as: UTF8.self))")
            }
        }
        lines.append("Activities:   \(completedActivities) completed, \(activities.count) open")
        if !activities.isEmpty {
            var table = Table(["  id", "name", "phase", "attempt", "next retry", "last error"])
            for activity in activities {
                table.append([
                    "  " + activity.id, activity.name, activity.phase, "\(activity.attempt)", activity.nextRetryAt ?? "-",
                    activity.lastError ?? "-",
                ])
            }
            lines.append(table.render(wide: true))
        }
        if !children.isEmpty {
            lines.append("Children:")
            for (child, status) in children.sorted(by: { $0.key < $1.key }) { lines.append("  \(child)  \(statusText(status))") }
        }
        if !timers.isEmpty {
            lines.append("Timers:")
            for timer in timers { lines.append("  \(timer.id)  fires at \(timer.firesAt)") }
        }
        return lines.joined(separator: "\n")
    }
}

/// A status word, coloured on a terminal.
func statusText(_ status: String) -> String {
    switch status {
    case "failed", "quarantined": Style.red(status)
    case "paused", "cancelled": Style.yellow(status)
    case "completed": Style.green(status)
    default: status
    }
}

/// One event of `workflow history`.
struct HistoryRow: Encodable {
    var position: UInt64
    var revision: UInt64
    var run: Int
    var time: String
    var actor: String
    var type: String
    var payload: ManifestValue?
    var payloadText: String

    init(_ event: RecordedEvent, run: Int) {
        position = event.position.rawValue
        revision = event.revision.rawValue
        self.run = run
        time = rfc3339(nanoseconds: event.recordedAtNanoseconds, fractionDigits: 3)
        actor = event.metadata.actor
        type = event.type
        payloadText = String(decoding: event.payload, as: UTF8.self)
        payload = try? JSONDecoder().decode(ManifestValue.self, from: Data(event.payload))
    }

    enum CodingKeys: String, CodingKey { case position, revision, run, time, actor, type, payload }
}

/// `workflow diagnose`: what a workflow waits on and what would move it.
struct Diagnosis: Encodable {
    struct Wait: Encodable {
        /// activity, retry, slot, child, timer, signal, paused, decider, nothing.
        var kind: String
        var detail: String
        var since: String
        var attempts: Int?
        var nextRetryAt: String?
        var lastError: String?
    }

    var workflowID: String
    var status: String
    var waitingOn: String
    var since: String
    var waits: [Wait]
    var lastError: String?
    /// The child it waits on, diagnosed the same way (one level).
    var child: [Diagnosis]
    /// What an operator can do.
    var hints: [String]

    init(_ report: WorkflowStatusReport, snapshot: FleetSnapshot, depth: Int = 0) throws {
        let record = report.record
        workflowID = record.workflowID
        status = WorkflowSummary(report).status
        waitingOn = report.view.waitingOn
        since = rfc3339(nanoseconds: report.view.since.nanoseconds)
        lastError = record.lastError
        var waits: [Wait] = []
        var hints: [String] = []
        let id = record.workflowID
        if let quarantine = record.quarantine {
            waits.append(Wait(kind: "decider", detail: "quarantined: \(quarantine)", since: since))
            hints.append("deploy a decider that folds this history, then restart capstan serve")
        }
        if record.isFinished {
            waits.append(Wait(kind: "nothing", detail: "it ended: \(record.status.rawValue)\(record.result.map { " (\($0))" } ?? "")", since: since))
        } else if record.paused {
            waits.append(Wait(kind: "paused", detail: "paused by a pause signal", since: since))
            hints.append("capstan workflow resume \(id)")
        }
        for activity in record.activities.values.sorted(by: { $0.request.activityID < $1.request.activityID }) {
            let started = activity.startedAt.map { rfc3339(nanoseconds: $0.nanoseconds) } ?? since
            let retry = activity.nextRetryAt.map { rfc3339(nanoseconds: $0.nanoseconds) }
            switch activity.phase {
            case .running:
                waits.append(Wait(
                    kind: "activity", detail: "\(activity.request.activityID) (\(activity.request.name)) attempt \(activity.attempt) running, "
                        + "timeout \(activity.request.startToCloseTimeout)", since: started, attempts: activity.attempt,
                    lastError: activity.lastError))
            case .backoff:
                waits.append(Wait(
                    kind: "retry", detail: "\(activity.request.activityID) (\(activity.request.name)) failed attempt \(activity.attempt) "
                        + "of \(activity.request.retry.maxAttempts)", since: started, attempts: activity.attempt, nextRetryAt: retry,
                    lastError: activity.lastError))
            case .scheduled:
                waits.append(Wait(
                    kind: "slot", detail: "\(activity.request.activityID) (\(activity.request.name)) waits for a concurrency slot"
                        + (activity.request.concurrencyKey.map { " (key \($0))" } ?? ""), since: since, attempts: activity.attempt))
            case .failed:
                waits.append(Wait(
                    kind: "activity", detail: "\(activity.request.activityID) (\(activity.request.name)) failed for good after "
                        + "\(activity.attempt) attempts", since: started, attempts: activity.attempt, lastError: activity.lastError))
                hints.append("capstan workflow retry \(id) --activity \(activity.request.activityID)")
            case .completed:
                break
            }
        }
        var children: [Diagnosis] = []
        for (childID, childStatus) in record.children.sorted(by: { $0.key < $1.key }) where childStatus == .running {
            waits.append(Wait(kind: "child", detail: "child workflow \(childID)", since: since))
            if depth < 1, let child = try WorkflowStatusReport.read(workflowID: childID, state: snapshot.state.value) {
                children.append(try Diagnosis(child, snapshot: snapshot, depth: depth + 1))
            }
        }
        for (timerID, timer) in record.timers.sorted(by: { $0.key < $1.key }) {
            waits.append(Wait(kind: "timer", detail: "timer \(timerID) fires at \(rfc3339(nanoseconds: timer.fireAt.nanoseconds))", since: since))
        }
        if !record.isFinished, waits.isEmpty {
            waits.append(Wait(kind: report.view.waitingOn.hasPrefix("signal") ? "signal" : "decider", detail: report.view.waitingOn, since: since))
            if report.view.waitingOn.contains(EngineSignal.approve) { hints.append("capstan workflow approve \(id)") }
            if report.view.waitingOn.contains("retry-step") { hints.append("capstan workflow signal \(id) retry-step") }
        }
        if !record.isFinished { hints.append("capstan workflow cancel \(id) --reason TEXT   (gives up; children are cancelled)") }
        self.waits = waits
        self.child = children
        self.hints = hints
    }

    var text: String {
        var lines = ["Workflow \(workflowID): \(statusText(status)), waiting on \(waitingOn) since \(since)"]
        for wait in waits {
            var line = "  \(wait.kind): \(wait.detail) (since \(wait.since))"
            if let next = wait.nextRetryAt { line += "; next retry at \(next)" }
            lines.append(line)
            if let error = wait.lastError { lines.append("    last error: " + Style.red(error)) }
        }
        if let lastError, !waits.contains(where: { $0.lastError != nil }) { lines.append("  last error: " + Style.red(lastError)) }
        for child in child { lines.append(contentsOf: child.text.split(separator: "\n").map { "  " + $0 }) }
        if !hints.isEmpty {
            lines.append("Next:")
            for hint in hints { lines.append("  " + hint) }
        }
        return lines.joined(separator: "\n")
    }
}
