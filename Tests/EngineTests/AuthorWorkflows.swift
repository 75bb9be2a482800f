import Engine

// Workflows written the way the lifecycle workflows are: typed input, output and signal
// payloads, a domain event, a bounded poll loop, a signal with a timeout, cleanup on
// cancel, continue-as-new, a progress view, and a parent that steers its child.

/// Records a plan, polls a cluster until it is ready (an activity, then a timer, again),
/// then waits up to an hour for `approve`. Continues as new every `pollsPerRun` polls. A
/// poll that fails for good leaves it stuck until an operator retries the activity. A
/// cancel runs the `cleanup` activity first.
enum WatchWorkflow: Workflow {
    struct Input: Codable, Sendable, Equatable {
        var cluster: String
        var pollSeconds: Int
        var pollsPerRun: Int
    }
    struct Observation: Codable, Sendable { var ready: Bool }
    struct Plan: Codable, Sendable, Equatable { var steps: [String] }
    struct Approval: Codable, Sendable { var by: String }
    struct Output: Codable, Sendable, Equatable {
        var approvedBy: String
        var polls: Int
        var readySince: Timestamp
    }
    struct Progress: Codable, Sendable, Equatable {
        var phase: String
        var polls: Int
        var readySince: Timestamp?
    }

    struct State: Codable, Equatable, Sendable {
        var input: Input?
        var plan: Plan?
        var polls = 0
        var pollsThisRun = 0
        var dueToPoll = true
        var polling = false
        var waitingTimer = false
        var pollNow = false
        var ready = false
        var readySince: Timestamp?
        var approvedBy: String?
        var approvalTimedOut = false
        var stuck: String?
        var cancelling = false
        var cleanupScheduled = false
        var cleanedUp = false
    }

    static let type = "watch"
    static let version = 1
    static let initial = State()
    static let cleansUpOnCancel = true
    static let pollTimer = "poll-wait"
    static let approvalTimeout = Duration.seconds(3600)
    static let plan = Plan(steps: ["poll until ready", "approve"])

    static func pollRequest(_ input: Input) -> ActivityRequest {
        ActivityRequest(
            activityID: "poll", name: "observe", value: ["cluster": input.cluster], retry: RetryPolicy(maxAttempts: 1),
            startToCloseTimeout: .seconds(30), repeatable: true)
    }

    static let cleanupRequest = ActivityRequest(activityID: "cleanup", name: "cleanup", input: "", retry: RetryPolicy(maxAttempts: 3))

    static func evolve(_ state: State, _ event: WorkflowEvent, at: Timestamp) throws -> State {
        var state = state
        switch event {
        case .workflowStarted(let start):
            // A continued run starts from the carried state: only the per-run count resets.
            if start.run == 1 { state.input = try start.input(as: Input.self) }
            state.pollsThisRun = 0
        case .domainEvent(let recorded) where recorded.name == "plan":
            state.plan = try recorded.value(as: Plan.self)
        case .activityScheduled(let request):
            if request.activityID == "poll" {
                state.polling = true
                state.dueToPoll = false
            }
            if request.activityID == "cleanup" { state.cleanupScheduled = true }
        case .activityCompleted(let activityID, _, _) where activityID == "poll":
            state.polling = false
            state.polls += 1
            state.pollsThisRun += 1
            if try event.value(as: Observation.self).ready {
                state.ready = true
                state.readySince = at
            }
        case .activityCompleted(let activityID, _, _) where activityID == "cleanup":
            state.cleanedUp = true
        case .activityFailed(let failed) where failed.activityID == "poll" && failed.isFinal:
            state.polling = false
            state.stuck = failed.failure.message
        case .activityRetryRequested(let activityID, _) where activityID == "poll":
            state.stuck = nil
            state.polling = true
        case .timerStarted(let timerID, _) where timerID == pollTimer:
            state.waitingTimer = true
        case .timerFired(let timerID, _) where timerID == pollTimer, .timerCancelled(let timerID) where timerID == pollTimer:
            state.waitingTimer = false
            state.pollNow = false
            state.dueToPoll = true
        case .timerFired(let timerID, _) where timerID == WorkflowCommand.signalTimeoutTimerID("approve"):
            state.approvalTimedOut = true
        case .signalReceived(let name, _) where name == "approve":
            state.approvedBy = try event.value(as: Approval.self).by
        case .signalReceived(let name, _) where name == "poll-now":
            state.pollNow = true
        case .cancelRequested:
            state.cancelling = true
        default:
            break
        }
        return state
    }

    static func decide(_ state: State) -> [WorkflowCommand] {
        guard let input = state.input else { return [] }
        if state.cancelling {
            return state.cleanupScheduled ? [] : [.runActivity(cleanupRequest)]
        }
        guard state.plan != nil else { return [.recordEvent(DomainEvent(id: "plan", name: "plan", value: plan))] }
        if state.stuck != nil { return [] }
        if state.ready {
            if let by = state.approvedBy, let since = state.readySince {
                return [.complete(Output(approvedBy: by, polls: state.polls, readySince: since))]
            }
            if state.approvalTimedOut { return [.fail(reason: "not approved within an hour")] }
            return [.waitForSignal(name: "approve", timeout: approvalTimeout)]
        }
        if state.polling { return [] }
        if state.dueToPoll { return [.runActivity(pollRequest(input))] }
        if state.waitingTimer { return state.pollNow ? [.cancelTimer(id: pollTimer)] : [] }
        if state.pollsThisRun >= input.pollsPerRun { return [.continueAsNew] }
        return [.startTimer(id: pollTimer, after: .seconds(input.pollSeconds))]
    }

    static func progress(_ state: State) -> Progress? {
        let phase =
            state.cancelling ? "cleaning up" : state.stuck != nil ? "stuck" : state.ready ? "awaiting approval" : "polling"
        return Progress(phase: phase, polls: state.polls, readySince: state.readySince)
    }
}

/// Starts one `watch` child; forwards an operator's `approve-child` to it as `approve`, and
/// cancels it on `abort`. Ends as the child ends.
enum SteeringWorkflow: Workflow {
    struct State: Codable, Equatable, Sendable {
        var child: String?
        var childStarted = false
        var approver: String?
        var forwarded = false
        var abort: String?
        var aborted = false
        var childResult: String?
        var childFailure: String?
    }

    static let type = "steering"
    static let version = 1
    static let initial = State()

    static func evolve(_ state: State, _ event: WorkflowEvent, at: Timestamp) throws -> State {
        var state = state
        switch event {
        case .workflowStarted(let start): state.child = start.input + "/watch"
        case .childStarted: state.childStarted = true
        case .signalReceived(let name, _) where name == "approve-child":
            state.approver = try event.value(as: WatchWorkflow.Approval.self).by
        case .signalReceived(let name, let payload) where name == "abort": state.abort = payload
        case .childSignalled(_, let name) where name == "approve": state.forwarded = true
        case .childCompleted(_, let output): state.childResult = output
        case .childFailed(_, let reason): state.childFailure = reason
        default: break
        }
        return state
    }

    static func decide(_ state: State) -> [WorkflowCommand] {
        guard let child = state.child else { return [] }
        if let output = state.childResult { return [.complete(output: output)] }
        if let failure = state.childFailure { return [.fail(reason: failure)] }
        guard state.childStarted else {
            return [
                .startChild(
                    ChildRequest(
                        workflowID: child, type: WatchWorkflow.type,
                        value: WatchWorkflow.Input(cluster: child, pollSeconds: 10, pollsPerRun: 100)))
            ]
        }
        if let reason = state.abort { return [.cancelChild(childID: child, reason: reason)] }
        if let approver = state.approver, !state.forwarded {
            return [.signalChild(childID: child, name: "approve", WatchWorkflow.Approval(by: approver))]
        }
        return []
    }
}

let authorDefinitions = sampleDefinitions + [WorkflowDefinition(WatchWorkflow.self), WorkflowDefinition(SteeringWorkflow.self)]
