import Engine
import Testing

/// Given events, when decide, then commands; and once the events acknowledging a command
/// are folded, decide stops asking for it.
@Suite struct DeciderTests {
    static let started = WorkflowEvent.workflowStarted(WorkflowStart(type: "steps", deciderVersion: 1, input: "2:0:"))

    @Test("Steps: decide: first step after start")
    func firstStep() throws {
        let state = try StepsWorkflow.replay([Self.started])
        #expect(StepsWorkflow.decide(state) == [.runActivity(StepsWorkflow.request(step: 1, concurrencyKey: nil))])
    }

    @Test("Steps: idempotency: a scheduled step is not asked for again")
    func scheduledNotAgain() throws {
        let request = StepsWorkflow.request(step: 1, concurrencyKey: nil)
        let state = try StepsWorkflow.replay([Self.started, .activityScheduled(request)])
        #expect(StepsWorkflow.decide(state) == [])
        let running = try StepsWorkflow.replay([Self.started, .activityScheduled(request), .activityStarted(activityID: "step-1", attempt: 1)])
        #expect(StepsWorkflow.decide(running) == [])
    }

    @Test("Steps: ordering: second step after the first completes, then complete")
    func secondStepThenComplete() throws {
        let first = StepsWorkflow.request(step: 1, concurrencyKey: nil)
        let second = StepsWorkflow.request(step: 2, concurrencyKey: nil)
        let afterFirst = try StepsWorkflow.replay([
            Self.started, .activityScheduled(first), .activityCompleted(activityID: "step-1", attempt: 1, output: ""),
        ])
        #expect(StepsWorkflow.decide(afterFirst) == [.runActivity(second)])
        let afterBoth = try StepsWorkflow.replay([
            Self.started, .activityScheduled(first), .activityCompleted(activityID: "step-1", attempt: 1, output: ""),
            .activityScheduled(second), .activityCompleted(activityID: "step-2", attempt: 2, output: ""),
        ])
        #expect(StepsWorkflow.decide(afterBoth) == [.complete(output: "completed 2 steps")])
    }

    @Test("Steps: failure: a retried failure waits, a final one fails the workflow")
    func failures() throws {
        let request = StepsWorkflow.request(step: 1, concurrencyKey: nil)
        let failure = ActivityFailure(kind: "conflict", message: "409")
        let retried = try StepsWorkflow.replay([
            Self.started, .activityScheduled(request),
            .activityFailed(ActivityAttemptFailure(activityID: "step-1", attempt: 1, failure: failure, nextRetryAt: Timestamp(nanoseconds: 5))),
        ])
        #expect(StepsWorkflow.decide(retried) == [])
        let final = try StepsWorkflow.replay([
            Self.started, .activityScheduled(request),
            .activityFailed(ActivityAttemptFailure(activityID: "step-1", attempt: 4, failure: failure, nextRetryAt: nil)),
        ])
        #expect(StepsWorkflow.decide(final) == [.fail(reason: "step step-1: 409")])
    }

    @Test("Steps: timers: a timer before each step, started once, step after it fires")
    func timers() throws {
        let start = WorkflowEvent.workflowStarted(WorkflowStart(type: "steps", deciderVersion: 1, input: "1:250:cluster-a"))
        #expect(StepsWorkflow.decide(try StepsWorkflow.replay([start])) == [.startTimer(id: "before-step-1", after: .milliseconds(250))])
        let armed = try StepsWorkflow.replay([start, .timerStarted(timerID: "before-step-1", fireAt: Timestamp(nanoseconds: 9))])
        #expect(StepsWorkflow.decide(armed) == [])
        let fired = try StepsWorkflow.replay([
            start, .timerStarted(timerID: "before-step-1", fireAt: Timestamp(nanoseconds: 9)),
            .timerFired(timerID: "before-step-1", firedAt: Timestamp(nanoseconds: 9)),
        ])
        #expect(StepsWorkflow.decide(fired) == [.runActivity(StepsWorkflow.request(step: 1, concurrencyKey: "cluster-a"))])
    }

    @Test("Approval: signals: waits for approve with a deadline, then applies once")
    func approval() throws {
        let start = WorkflowEvent.workflowStarted(WorkflowStart(type: "approval", deciderVersion: 1, input: ""))
        #expect(
            ApprovalWorkflow.decide(try ApprovalWorkflow.replay([start]))
                == [.waitForSignal(name: "approve"), .startTimer(id: "approval-deadline", after: .seconds(3600))])
        let waiting = try ApprovalWorkflow.replay([start, .timerStarted(timerID: "approval-deadline", fireAt: Timestamp(nanoseconds: 1))])
        #expect(ApprovalWorkflow.decide(waiting) == [.waitForSignal(name: "approve")])
        let approved = try ApprovalWorkflow.replay([
            start, .timerStarted(timerID: "approval-deadline", fireAt: Timestamp(nanoseconds: 1)),
            .signalReceived(name: "approve", payload: "alice"),
        ])
        guard case .runActivity(let request) = ApprovalWorkflow.decide(approved).first else {
            Issue.record("expected a runActivity command")
            return
        }
        #expect(request.activityID == "apply")
        let late = try ApprovalWorkflow.replay([
            start, .timerStarted(timerID: "approval-deadline", fireAt: Timestamp(nanoseconds: 1)),
            .timerFired(timerID: "approval-deadline", firedAt: Timestamp(nanoseconds: 1)),
        ])
        #expect(ApprovalWorkflow.decide(late) == [.fail(reason: "not approved within an hour")])
    }

    @Test("Parent: children: starts both once, completes when both have")
    func parent() throws {
        let start = WorkflowEvent.workflowStarted(WorkflowStart(type: "parent", deciderVersion: 1, input: "p"))
        #expect(ParentWorkflow.decide(try ParentWorkflow.replay([start])).count == 2)
        let oneStarted = try ParentWorkflow.replay([start, .childStarted(childID: "p/child-1", type: "steps")])
        #expect(
            ParentWorkflow.decide(oneStarted)
                == [.startChild(ChildRequest(workflowID: "p/child-2", type: "steps", input: "2:0:"))])
        let done = try ParentWorkflow.replay([
            start, .childStarted(childID: "p/child-1", type: "steps"), .childStarted(childID: "p/child-2", type: "steps"),
            .childCompleted(childID: "p/child-1", output: ""), .childCompleted(childID: "p/child-2", output: ""),
        ])
        #expect(ParentWorkflow.decide(done) == [.complete(output: "children done")])
    }

    @Test("Operator view: a failing activity shows its step, attempt, error and next retry")
    func operatorView() throws {
        var record = WorkflowRecord(workflowID: "upgrade/cluster-a")
        let request = StepsWorkflow.request(step: 1, concurrencyKey: nil)
        let events: [WorkflowEvent] = [
            Self.started, .activityScheduled(request), .activityStarted(activityID: "step-1", attempt: 2),
            .activityFailed(
                ActivityAttemptFailure(
                    activityID: "step-1", attempt: 2, failure: ActivityFailure(kind: "http503", message: "unavailable"),
                    nextRetryAt: Timestamp(nanoseconds: 900))),
        ]
        for (revision, event) in events.enumerated() {
            record.apply(StampedWorkflowEvent(event, at: Timestamp(nanoseconds: Int64(revision * 100))), revision: UInt64(revision))
        }
        let view = WorkflowView(record: record, commands: [])
        #expect(view.waitingOn == "retry of activity step-1")
        #expect(view.since == Timestamp(nanoseconds: 300))
        #expect(view.attempt == 2)
        #expect(view.nextRetryAt == Timestamp(nanoseconds: 900))
        #expect(view.lastError == "activity step-1 attempt 2: http503: unavailable")
    }
}
