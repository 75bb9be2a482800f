// Test support for the deciders: event builders, the acknowledging event of each command, an
// idempotency check, and a small synchronous simulation that runs a decider (and its children)
// against a fake cluster on a virtual clock.
import Engine
import Testing
@testable import Workflows

enum Given {
    static func started<Input: Encodable>(_ type: String, _ input: Input) -> WorkflowEvent {
        .workflowStarted(WorkflowStart(type: type, deciderVersion: 1, input: Activities.encode(input)))
    }

    static func completed<Output: Encodable>(_ activityID: String, _ output: Output) -> WorkflowEvent {
        .activityCompleted(activityID: activityID, attempt: 1, output: Activities.encode(output))
    }

    static func scheduled(_ activityID: String, _ name: String = "any") -> WorkflowEvent {
        .activityScheduled(ActivityRequest(activityID: activityID, name: name))
    }

    static func failed(_ activityID: String, kind: String, message: String = "refused", final: Bool = true) -> WorkflowEvent {
        .activityFailed(
            ActivityAttemptFailure(
                activityID: activityID, attempt: 1, failure: ActivityFailure(kind: kind, message: message, retryable: !final),
                nextRetryAt: final ? nil : Timestamp(nanoseconds: 1)))
    }

    static func timerStarted(_ id: String) -> WorkflowEvent { .timerStarted(timerID: id, fireAt: Timestamp(nanoseconds: 1)) }
    static func fired(_ id: String) -> WorkflowEvent { .timerFired(timerID: id, firedAt: Timestamp(nanoseconds: 1)) }

    /// An activity scheduled and completed.
    static func ran<Output: Encodable>(_ activityID: String, _ output: Output) -> [WorkflowEvent] {
        [scheduled(activityID), completed(activityID, output)]
    }

    /// A wait timer started and fired.
    static func waited(_ id: String) -> [WorkflowEvent] { [timerStarted(id), fired(id)] }
}

/// The event with which the engine acknowledges `command` (nil for a signal wait).
func acknowledgement(of command: WorkflowCommand) -> WorkflowEvent? {
    switch command {
    case .runActivity(let request): .activityScheduled(request)
    case .startTimer(let id, _): .timerStarted(timerID: id, fireAt: Timestamp(nanoseconds: 1))
    case .startChild(let request): .childStarted(childID: request.workflowID, type: request.type)
    case .waitForSignal, .cancelChild: nil
    case .cancelTimer(let id): .timerCancelled(timerID: id)
    case .signalChild(let childID, let name, _): .childSignalled(childID: childID, name: name)
    case .recordEvent(let event): .domainEvent(event)
    case .continueAsNew: .workflowContinuedAsNew(run: 2)
    case .complete(let output): .workflowCompleted(output: output)
    case .fail(let reason): .workflowFailed(reason: reason)
    }
}

/// Checks that once the acknowledgements of what `decide` asks after `events` are folded, it
/// no longer asks for any of it (signal waits excepted: they are declarations, not requests).
func expectIdempotent<W: Workflow>(
    _ workflow: W.Type, _ events: [WorkflowEvent], sourceLocation: SourceLocation = #_sourceLocation
) {
    let asked = replayed(W.self, events, sourceLocation: sourceLocation)
    let acknowledged = events + asked.compactMap(acknowledgement(of:))
    let again = replayed(W.self, acknowledged, sourceLocation: sourceLocation)
    for command in asked {
        if case .waitForSignal = command { continue }
        #expect(!again.contains(command), "asked again after acknowledgement: \(command)", sourceLocation: sourceLocation)
    }
}

/// The activity ids a list of commands asks to run.
func activityIDs(_ commands: [WorkflowCommand]) -> [String] {
    commands.compactMap { if case .runActivity(let request) = $0 { request.activityID } else { nil } }
}

func request(_ commands: [WorkflowCommand], _ activityID: String) -> ActivityRequest? {
    for case .runActivity(let request) in commands where request.activityID == activityID { return request }
    return nil
}

func askedInput<Value: Decodable>(_ commands: [WorkflowCommand], _ activityID: String, as type: Value.Type) -> Value? {
    guard let request = request(commands, activityID) else { return nil }
    return try? Activities.decode(type, from: request.input)
}

func failure(_ commands: [WorkflowCommand]) -> String? {
    for case .fail(let reason) in commands { return reason }
    return nil
}

func completion<Output: Decodable>(_ commands: [WorkflowCommand], as type: Output.Type) -> Output? {
    for case .complete(let output) in commands { return try? Activities.decode(type, from: output) }
    return nil
}

/// A type-erased decider for the simulation.
struct AnyDecider {
    let decide: ([WorkflowEvent]) -> [WorkflowCommand]
    init<W: Workflow>(_ workflow: W.Type) { decide = { replayed(W.self, $0) } }
}

/// What `W` decides after `events`; a fold that throws is recorded as an issue (no commands).
func replayed<W: Workflow>(
    _ workflow: W.Type, _ events: [WorkflowEvent], sourceLocation: SourceLocation = #_sourceLocation
) -> [WorkflowCommand] {
    do { return W.decide(try W.replay(events)) } catch {
        Issue.record("\(W.type): the fold threw: \(error)", sourceLocation: sourceLocation)
        return []
    }
}

/// Runs deciders synchronously against a fake cluster: activities answer at once (the
/// responder decides how), children run to their end when started, and the virtual clock
/// jumps to the earliest timer whenever a run has nothing else to do.
final class DeciderSimulation {
    struct Call {
        var workflowID: String
        var request: ActivityRequest
        var at: Timestamp
    }

    var deciders: [String: AnyDecider] = [:]
    /// Answers one attempt of an activity at the virtual time.
    var respond: (Call) -> Result<String, ActivityFailure>
    /// Events to inject into a run (signals) before it decides; called with its history.
    var inject: (String, [WorkflowEvent]) -> [WorkflowEvent] = { _, _ in [] }
    private(set) var now = Timestamp(nanoseconds: 1_000_000_000)
    private(set) var calls: [Call] = []
    private(set) var histories: [String: [WorkflowEvent]] = [:]
    /// Rounds in all (bounds every run).
    var roundsMax = 20_000

    init(_ types: [any Workflow.Type], respond: @escaping (Call) -> Result<String, ActivityFailure>) {
        for type in types { deciders[type.type] = Self.erase(type) }
        self.respond = respond
    }

    private static func erase<W: Workflow>(_ type: W.Type) -> AnyDecider { AnyDecider(type) }

    /// Runs workflow `id` of `type` to its end; returns its terminal event (nil when it waits
    /// for something the simulation cannot give: a signal nobody injects).
    @discardableResult
    func run(_ id: String, type: String, input: String) -> WorkflowEvent? {
        guard let decider = deciders[type] else { return .workflowFailed(reason: "no decider \(type)") }
        var events: [WorkflowEvent] = [.workflowStarted(WorkflowStart(type: type, deciderVersion: 1, input: input))]
        var timers: [(id: String, fireAt: Timestamp)] = []
        defer { histories[id] = events }
        for _ in 0..<roundsMax {
            events += inject(id, events)
            let commands = decider.decide(events)
            var acted = false
            for command in commands {
                switch command {
                case .runActivity(let request):
                    acted = true
                    events.append(.activityScheduled(request))
                    events += attempt(request, workflowID: id)
                case .startTimer(let timerID, let after):
                    acted = true
                    let fireAt = now + after
                    events.append(.timerStarted(timerID: timerID, fireAt: fireAt))
                    timers.append((timerID, fireAt))
                case .startChild(let child):
                    acted = true
                    events.append(.childStarted(childID: child.workflowID, type: child.type))
                    histories[id] = events
                    switch run(child.workflowID, type: child.type, input: child.input) {
                    case .workflowCompleted(let output): events.append(.childCompleted(childID: child.workflowID, output: output))
                    case .workflowFailed(let reason), .workflowCancelled(let reason):
                        events.append(.childFailed(childID: child.workflowID, reason: reason))
                    default: events.append(.childFailed(childID: child.workflowID, reason: "child stalled"))
                    }
                case .waitForSignal:
                    continue
                case .recordEvent(let event):
                    acted = true
                    events.append(.domainEvent(event))
                case .cancelTimer(let timerID):
                    acted = true
                    timers.removeAll { $0.id == timerID }
                    events.append(.timerCancelled(timerID: timerID))
                case .signalChild, .cancelChild, .continueAsNew:
                    Issue.record("DeciderSimulation does not model \(command)")
                    return nil
                case .complete(let output):
                    events.append(.workflowCompleted(output: output))
                    return events.last
                case .fail(let reason):
                    events.append(.workflowFailed(reason: reason))
                    return events.last
                }
            }
            if acted { continue }
            // Idle: fire the earliest timer (ties in start order).
            guard let next = timers.indices.min(by: { timers[$0].fireAt < timers[$1].fireAt }) else {
                // Nothing to fire: one more chance for an injected signal, else stalled.
                let injected = inject(id, events)
                if injected.isEmpty { return nil }
                events += injected
                continue
            }
            let timer = timers.remove(at: next)
            if timer.fireAt > now { now = timer.fireAt }
            events.append(.timerFired(timerID: timer.id, firedAt: now))
        }
        Issue.record("workflow \(id) ran more than \(roundsMax) rounds")
        return nil
    }

    /// Runs `request`'s attempts as the engine would (retry policy, non-retryable kinds).
    private func attempt(_ request: ActivityRequest, workflowID: String) -> [WorkflowEvent] {
        var events: [WorkflowEvent] = []
        for attempt in 1...request.retry.maxAttempts {
            events.append(.activityStarted(activityID: request.activityID, attempt: attempt))
            let call = Call(workflowID: workflowID, request: request, at: now)
            calls.append(call)
            switch respond(call) {
            case .success(let output):
                events.append(.activityCompleted(activityID: request.activityID, attempt: attempt, output: output))
                return events
            case .failure(let failure):
                let final =
                    !failure.retryable || request.retry.nonRetryableErrorKinds.contains(failure.kind)
                    || attempt == request.retry.maxAttempts
                let backoff = request.retry.backoff(afterAttempt: attempt)
                if !final { now = now + backoff }
                events.append(
                    .activityFailed(
                        ActivityAttemptFailure(
                            activityID: request.activityID, attempt: attempt, failure: failure,
                            nextRetryAt: final ? nil : now)))
                if final { return events }
            }
        }
        return events
    }

    /// The inputs of the calls to activity `name`, decoded.
    func inputs<Value: Decodable>(of name: String, as type: Value.Type) -> [Value] {
        calls.filter { $0.request.name == name }.compactMap { try? Activities.decode(type, from: $0.request.input) }
    }
}

func ok<Value: Encodable>(_ value: Value) -> Result<String, ActivityFailure> { .success(Activities.encode(value)) }
