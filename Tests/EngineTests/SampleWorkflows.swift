import Engine

// Small workflows that exercise every command; the real lifecycle workflows live in
// `workflows/`.

/// Runs `steps` activities one after another, each optionally behind a timer; fails when a
/// step fails for good. Input: `<steps>:<timer milliseconds>:<concurrency key or empty>`.
enum StepsWorkflow: Workflow {
    struct State: Codable, Equatable, Sendable {
        var started = false
        var steps = 0
        var timerMilliseconds = 0
        var concurrencyKey: String?
        var scheduled = 0
        var completed = 0
        var timersStarted: Set<String> = []
        var timersFired: Set<String> = []
        var failure: String?
        var lastSignal: String?
    }

    static let type = "steps"
    static let version = 1
    static let initial = State()

    static let retry = RetryPolicy(
        maxAttempts: 4, initialBackoff: .milliseconds(100), maxBackoff: .seconds(2), nonRetryableErrorKinds: ["invalid"])

    static func evolve(_ state: State, _ event: WorkflowEvent, at _: Timestamp) -> State {
        var state = state
        switch event {
        case .workflowStarted(let start):
            let parts = start.input.split(separator: ":", omittingEmptySubsequences: false)
            state.started = true
            state.steps = parts.count > 0 ? Int(parts[0]) ?? 1 : 1
            state.timerMilliseconds = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            state.concurrencyKey = parts.count > 2 && !parts[2].isEmpty ? String(parts[2]) : nil
        case .activityScheduled:
            state.scheduled += 1
        case .activityCompleted:
            state.completed += 1
        case .activityFailed(let failed):
            if failed.isFinal { state.failure = "step \(failed.activityID): \(failed.failure.message)" }
        case .timerStarted(let timerID, _):
            state.timersStarted.insert(timerID)
        case .timerFired(let timerID, _):
            state.timersFired.insert(timerID)
        case .signalReceived(let name, _):
            state.lastSignal = name
        case .activityStarted, .childStarted, .childCompleted, .childFailed, .cancelRequested, .workflowCompleted,
            .workflowFailed, .workflowCancelled, .timerCancelled, .domainEvent, .childSignalled, .activityRetryRequested,
            .workflowContinuedAsNew:
            break
        }
        return state
    }

    static func decide(_ state: State) -> [WorkflowCommand] {
        guard state.started else { return [] }
        if let failure = state.failure { return [.fail(reason: failure)] }
        if state.completed == state.steps { return [.complete(output: "completed \(state.steps) steps")] }
        let step = state.completed + 1
        guard state.scheduled < step else { return [] }
        if state.timerMilliseconds > 0 {
            let timerID = "before-step-\(step)"
            if !state.timersStarted.contains(timerID) {
                return [.startTimer(id: timerID, after: .milliseconds(state.timerMilliseconds))]
            }
            if !state.timersFired.contains(timerID) { return [] }
        }
        return [.runActivity(request(step: step, concurrencyKey: state.concurrencyKey))]
    }

    static func request(step: Int, concurrencyKey: String?) -> ActivityRequest {
        ActivityRequest(
            activityID: "step-\(step)", name: "work", input: "step \(step)", retry: retry,
            startToCloseTimeout: .seconds(5), concurrencyKey: concurrencyKey)
    }
}

/// Waits for `approve` (or fails when an hour passes), then applies one activity.
enum ApprovalWorkflow: Workflow {
    struct State: Codable, Equatable, Sendable {
        var started = false
        var approved = false
        var deadlineStarted = false
        var deadlinePassed = false
        var applyScheduled = false
        var applied = false
        var failure: String?
    }

    static let type = "approval"
    static let version = 1
    static let initial = State()

    static func evolve(_ state: State, _ event: WorkflowEvent, at _: Timestamp) -> State {
        var state = state
        switch event {
        case .workflowStarted: state.started = true
        case .signalReceived(let name, _): if name == EngineSignal.approve { state.approved = true }
        case .timerStarted: state.deadlineStarted = true
        case .timerFired: state.deadlinePassed = true
        case .activityScheduled: state.applyScheduled = true
        case .activityCompleted: state.applied = true
        case .activityFailed(let failed): if failed.isFinal { state.failure = failed.failure.message }
        case .activityStarted, .childStarted, .childCompleted, .childFailed, .cancelRequested, .workflowCompleted,
            .workflowFailed, .workflowCancelled, .timerCancelled, .domainEvent, .childSignalled, .activityRetryRequested,
            .workflowContinuedAsNew:
            break
        }
        return state
    }

    static func decide(_ state: State) -> [WorkflowCommand] {
        guard state.started else { return [] }
        if let failure = state.failure { return [.fail(reason: failure)] }
        if state.applied { return [.complete(output: "applied")] }
        if state.approved {
            return state.applyScheduled
                ? [] : [.runActivity(ActivityRequest(activityID: "apply", name: "work", input: "apply", retry: StepsWorkflow.retry, startToCloseTimeout: .seconds(5)))]
        }
        if state.deadlinePassed { return [.fail(reason: "not approved within an hour")] }
        var commands: [WorkflowCommand] = [.waitForSignal(name: EngineSignal.approve)]
        if !state.deadlineStarted { commands.append(.startTimer(id: "approval-deadline", after: .seconds(3600))) }
        return commands
    }
}

/// Starts two `steps` children (ids `<input>/child-1`, `<input>/child-2`) and completes
/// when both have; fails when one fails.
enum ParentWorkflow: Workflow {
    struct State: Codable, Equatable, Sendable {
        var prefix: String?
        var childrenStarted: Set<String> = []
        var childrenDone: Set<String> = []
        var failure: String?
    }

    static let type = "parent"
    static let version = 1
    static let initial = State()

    static func evolve(_ state: State, _ event: WorkflowEvent, at _: Timestamp) -> State {
        var state = state
        switch event {
        case .workflowStarted(let start): state.prefix = start.input
        case .childStarted(let childID, _): state.childrenStarted.insert(childID)
        case .childCompleted(let childID, _): state.childrenDone.insert(childID)
        case .childFailed(let childID, let reason): state.failure = "child \(childID): \(reason)"
        case .activityScheduled, .activityStarted, .activityCompleted, .activityFailed, .timerStarted, .timerFired,
            .signalReceived, .cancelRequested, .workflowCompleted, .workflowFailed, .workflowCancelled, .timerCancelled, .domainEvent, .childSignalled, .activityRetryRequested,
            .workflowContinuedAsNew:
            break
        }
        return state
    }

    static func decide(_ state: State) -> [WorkflowCommand] {
        guard let prefix = state.prefix else { return [] }
        if let failure = state.failure { return [.fail(reason: failure)] }
        let children = ["\(prefix)/child-1", "\(prefix)/child-2"]
        if state.childrenDone.count == children.count { return [.complete(output: "children done")] }
        return children.filter { !state.childrenStarted.contains($0) }.map { child in
            .startChild(ChildRequest(workflowID: child, type: StepsWorkflow.type, input: "2:0:"))
        }
    }
}

let sampleDefinitions = [
    WorkflowDefinition(StepsWorkflow.self), WorkflowDefinition(ApprovalWorkflow.self),
    WorkflowDefinition(ParentWorkflow.self),
]
