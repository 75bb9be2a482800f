/// The engine's own fold of a workflow's events: what runs, what waits, what failed.
///
/// Like a decider's state it is a pure function of the events (times come from the
/// events), so the record folded from the log always equals the live one; it goes into
/// every snapshot, with the decider's state, and it is what operators read.
public struct WorkflowRecord: Codable, Equatable, Sendable {
    public enum Status: String, Codable, Sendable {
        case running, completed, failed, cancelled
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
    }

    public struct Timer: Codable, Equatable, Sendable {
        public var fireAt: Timestamp
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
    public var lastError: String?
    /// The output of a completed run, or the reason of a failed or cancelled one.
    public var result: String?

    public init(workflowID: String) { self.workflowID = workflowID }

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
            status = .running
        case .activityScheduled(let request):
            activities[request.activityID] = Activity(request: request, phase: .scheduled, attempt: 0)
        case .activityStarted(let activityID, let attempt):
            activities[activityID]?.phase = .running
            activities[activityID]?.attempt = attempt
            activities[activityID]?.startedAt = stamped.at
            activities[activityID]?.nextRetryAt = nil
        case .activityCompleted(let activityID, _, _):
            activities[activityID] = nil
            completedActivities.insert(activityID)
        case .activityFailed(let failed):
            let text = "\(failed.failure.kind): \(failed.failure.message)"
            activities[failed.activityID]?.phase = failed.isFinal ? .failed : .backoff
            activities[failed.activityID]?.nextRetryAt = failed.nextRetryAt
            activities[failed.activityID]?.lastError = text
            lastError = "activity \(failed.activityID) attempt \(failed.attempt): \(text)"
        case .timerStarted(let timerID, let fireAt):
            timers[timerID] = Timer(fireAt: fireAt, fired: false)
        case .timerFired(let timerID, _):
            timers[timerID]?.fired = true
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
        case .cancelRequested:
            cancelRequested = true
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
        if record.isFinished {
            waitingOn = "nothing (\(record.status.rawValue))"
            return
        }
        if record.paused {
            waitingOn = "signal \(EngineSignal.resume) (paused)"
            return
        }
        let open = record.activities.values.filter { $0.phase != .completed && $0.phase != .failed }
            .sorted { $0.request.activityID < $1.request.activityID }
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
            if case .waitForSignal(let name) = command { return name }
            return nil
        }
        waitingOn = signals.isEmpty ? "its decider (no command pending)" : "signal \(signals.joined(separator: ", "))"
    }
}
