public import EventLog

/// The engine's own fold of a workflow's events: what runs, what waits, what failed.
///
/// Like a decider's state it is a pure function of the events (times come from the
/// events), so the record folded from the log always equals the live one; it goes into
/// every snapshot, with the decider's state, and it is what operators read.
public struct WorkflowRecord: Codable, Equatable, Sendable {
    public enum Status: String, Codable, Sendable {
        case running, completed, failed, cancelled
        /// This run ended with a continue-as-new (only in the fold of an old run's stream).
        case continuedAsNew
        /// Its history cannot fold (shown in ``WorkflowView``; the record keeps `running`).
        case quarantined
    }

    public struct Activity: Codable, Equatable, Sendable {
        public enum Phase: String, Codable, Sendable {
            /// Recorded, waiting for a concurrency slot.
            case scheduled
            /// An attempt started and has not finished.
            case running
            /// An attempt failed; the next starts at `nextRetryAt`.
            case backoff
            case completed
            /// Failed for good.
            case failed
        }

        public var request: ActivityRequest
        public var phase: Phase
        /// The last attempt started (0 before the first).
        public var attempt: Int
        public var startedAt: Timestamp?
        public var nextRetryAt: Timestamp?
        public var lastError: String?
        /// The attempts made before an operator's manual retry gave the retry policy's budget
        /// afresh (nil: none).
        public var attemptsBeforeRetry: Int?
        /// Attempts the engine's own stop or crash interrupted (failures of kind
        /// ``ActivityFailure/interruptedKind``): they count as attempts, not against the
        /// retry policy's budget, and are bounded by ``EngineCore/Options/maxInterruptions``.
        public var interruptions: Int?
    }

    /// A pending timer (a fired or cancelled one leaves the record, so a poll loop that
    /// re-arms one id keeps the record bounded).
    public struct Timer: Codable, Equatable, Sendable {
        public var fireAt: Timestamp
        /// Always false for records written since timers leave the record once fired.
        public var fired: Bool
    }

    public enum ChildStatus: String, Codable, Sendable {
        case running, completed, failed
    }

    public var workflowID: String
    public var type: String = ""
    public var deciderVersion: Int = 0
    public var input: String = ""
    public var parentID: String?
    public var uniqueKey: String?
    /// The run number (nil: 1); a continue-as-new starts the next run in its own stream.
    public var run: Int?
    public var status: Status = .running
    /// Revision of the last event folded.
    public var lastRevision: UInt64 = 0
    public var lastEventAt: Timestamp = Timestamp(nanoseconds: 0)
    /// Activities not completed (a completed one moves to ``completedActivities``, so a
    /// snapshot stays small however long the history grows).
    public var activities: [String: Activity] = [:]
    /// Ids of the activities that completed.
    public var completedActivities: Set<String> = []
    public var timers: [String: Timer] = [:]
    public var children: [String: ChildStatus] = [:]
    public var paused = false
    public var cancelRequested = false
    /// Why it was cancelled, once a cancel was requested.
    public var cancelReason: String?
    public var lastError: String?
    /// The output of a completed run, or the reason of a failed or cancelled one.
    public var result: String?
    /// Ids of the domain events this run recorded (the engine records an id once).
    public var recordedEvents: Set<String>?
    /// Why the decider cannot fold this run's history (set by the engine, not by an event):
    /// nothing more is decided or dispatched for it until a fixed decider is deployed.
    public var quarantine: String?
    /// The run this one was forked from (nil: not a fork).
    public var forkedFrom: WorkflowForkOrigin?

    public init(workflowID: String) { self.workflowID = workflowID }

    /// The run number (1 unless continued as new).
    public var runNumber: Int { run ?? 1 }

    /// The stream this run writes to.
    public var streamID: StreamID { .forWorkflow(workflowID, run: runNumber) }

    /// Whether the activity was ever scheduled in this run.
    public func knowsActivity(_ activityID: String) -> Bool {
        activities[activityID] != nil || completedActivities.contains(activityID)
    }

    /// Folds one event recorded at `revision` of the workflow's stream.
    public mutating func apply(_ stamped: StampedWorkflowEvent, revision: UInt64) {
        lastRevision = revision
        lastEventAt = stamped.at
        switch stamped.event {
        case .workflowStarted(let start):
            type = start.type
            deciderVersion = start.deciderVersion
            input = start.input
            parentID = start.parentID
            uniqueKey = start.uniqueKey
            run = start.run == 1 ? nil : start.run
            forkedFrom = start.forkedFrom
            status = .running
        case .activityScheduled(let request):
            activities[request.activityID] = Activity(request: request, phase: .scheduled, attempt: 0)
        case .activityStarted(let activityID, let attempt):
            activities[activityID]?.phase = .running
            activities[activityID]?.attempt = attempt
            activities[activityID]?.startedAt = stamped.at
            activities[activityID]?.nextRetryAt = nil
        case .activityCompleted(let activityID, _, _):
            let repeatable = activities[activityID]?.request.repeatable ?? false
            activities[activityID] = nil
            if !repeatable { completedActivities.insert(activityID) }
        case .activityFailed(let failed):
            let text = "\(failed.failure.kind): \(failed.failure.message)"
            activities[failed.activityID]?.phase = failed.isFinal ? .failed : .backoff
            activities[failed.activityID]?.nextRetryAt = failed.nextRetryAt
            activities[failed.activityID]?.lastError = text
            if failed.failure.kind == ActivityFailure.interruptedKind, activities[failed.activityID] != nil {
                activities[failed.activityID]!.interruptions = (activities[failed.activityID]!.interruptions ?? 0) + 1
            }
            lastError = "activity \(failed.activityID) attempt \(failed.attempt): \(text)"
        case .timerStarted(let timerID, let fireAt):
            timers[timerID] = Timer(fireAt: fireAt, fired: false)
        case .timerFired(let timerID, _), .timerCancelled(let timerID):
            timers[timerID] = nil
        case .signalReceived(let name, _):
            if name == EngineSignal.pause { paused = true }
            if name == EngineSignal.resume { paused = false }
        case .childStarted(let childID, _):
            children[childID] = .running
        case .childCompleted(let childID, _):
            children[childID] = .completed
        case .childFailed(let childID, let reason):
            children[childID] = .failed
            lastError = "child \(childID): \(reason)"
        case .cancelRequested(let reason):
            cancelRequested = true
            cancelReason = reason
            paused = false
        case .domainEvent(let event):
            recordedEvents = (recordedEvents ?? []).union([event.id])
            if let abandoned = AttemptAbandoned(event) {
                lastError = "activity \(abandoned.activityID) attempt \(abandoned.attempt) abandoned: \(abandoned.reason)"
            }
        case .childSignalled:
            break
        case .activityRetryRequested(let activityID, _):
            guard var activity = activities[activityID] else { break }
            activity.phase = .scheduled
            activity.attemptsBeforeRetry = activity.attempt
            activity.nextRetryAt = nil
            activities[activityID] = activity
        case .workflowContinuedAsNew:
            status = .continuedAsNew
        case .workflowCompleted(let output):
            status = .completed
            result = output
        case .workflowFailed(let reason):
            status = .failed
            result = reason
            lastError = reason
        case .workflowCancelled(let reason):
            status = .cancelled
            result = reason
        }
    }

    public var isFinished: Bool { status != .running }

    /// Whether an activity or a child is still open (scheduled, running, in backoff).
    public var hasOpenWork: Bool {
        activities.values.contains { $0.phase != .failed && $0.phase != .completed }
            || children.values.contains(.running)
    }
}

/// Signal names the engine itself acts on; others only reach the decider.
public enum EngineSignal {
    /// Stop starting activities until `resume` (in-flight attempts finish).
    public static let pause = "pause"
    public static let resume = "resume"
    /// Cancel the workflow and its children.
    public static let cancel = "cancel"
    /// A conventional name for an operator's approval (workflows decide what it means).
    public static let approve = "approve"
    /// Run a failed activity again as a new attempt; the payload is the activity id.
    public static let retry = "retry"
}

/// What an operator needs to see a stuck workflow: the step it waits on, since when, the
/// last error, the attempt count and the next retry time.
public struct WorkflowView: Codable, Equatable, Sendable {
    public var status: WorkflowRecord.Status
    public var waitingOn: String
    public var since: Timestamp
    public var lastError: String?
    public var attempt: Int?
    public var nextRetryAt: Timestamp?

    /// Derives the view from the record and the decider's current commands (pure).
    public init(record: WorkflowRecord, commands: [WorkflowCommand]) {
        status = record.status
        since = record.lastEventAt
        lastError = record.lastError
        if let quarantine = record.quarantine {
            status = .quarantined
            waitingOn = "a decider that can fold its history (quarantined: \(quarantine))"
            return
        }
        if record.isFinished {
            waitingOn = "nothing (\(record.status.rawValue))"
            return
        }
        if record.paused {
            waitingOn = "signal \(EngineSignal.resume) (paused)"
            return
        }
        let open = record.activities.values.filter { $0.phase != .completed && $0.phase != .failed }
            .sorted { naturalLess($0.request.activityID, $1.request.activityID) }
        if let activity = open.first {
            attempt = activity.attempt
            nextRetryAt = activity.nextRetryAt
            switch activity.phase {
            case .running: waitingOn = "activity \(activity.request.activityID) (attempt \(activity.attempt))"
            case .backoff: waitingOn = "retry of activity \(activity.request.activityID)"
            case .scheduled: waitingOn = "a concurrency slot for activity \(activity.request.activityID)"
            case .completed, .failed: waitingOn = "activity \(activity.request.activityID)"
            }
            return
        }
        if let child = record.children.filter({ $0.value == .running }).keys.sorted().first {
            waitingOn = "child workflow \(child)"
            return
        }
        if let timer = record.timers.filter({ !$0.value.fired }).sorted(by: { $0.key < $1.key }).first {
            waitingOn = "timer \(timer.key) (fires at \(timer.value.fireAt))"
            return
        }
        let signals = commands.compactMap { command -> String? in
            if case .waitForSignal(let name, _) = command { return name }
            return nil
        }
        waitingOn = signals.isEmpty ? "its decider (no command pending)" : "signal \(signals.joined(separator: ", "))"
    }
}

/// Orders ids with numbers by value (`step-2` before `step-10`), deterministically (no locale).
func naturalLess(_ lhs: String, _ rhs: String) -> Bool {
    func chunks(_ text: String) -> [(digits: Bool, text: Substring)] {
        var result: [(Bool, Substring)] = []
        var start = text.startIndex
        while start < text.endIndex {
            let isDigit = text[start].isASCII && text[start].isNumber
            var end = text.index(after: start)
            while end < text.endIndex, (text[end].isASCII && text[end].isNumber) == isDigit { end = text.index(after: end) }
            result.append((isDigit, text[start..<end]))
            start = end
        }
        return result
    }
    let left = chunks(lhs)
    let right = chunks(rhs)
    for (a, b) in zip(left, right) where a.text != b.text {
        if a.digits && b.digits {
            let x = a.text.drop { $0 == "0" }
            let y = b.text.drop { $0 == "0" }
            if x.count != y.count { return x.count < y.count }
            if x != y { return x < y }
            continue
        }
        return a.text < b.text
    }
    if left.count != right.count { return left.count < right.count }
    return lhs < rhs
}
