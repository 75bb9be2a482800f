@testable import Engine
import Testing

/// Snapshots are written by hand-rolled JSON (the hot path) and read by `JSONDecoder`: a
/// record using every field, with characters that need escaping, must come back equal.
@Suite struct SnapshotTests {
    @Test("Snapshot: round trip: a record with every field and escaped text decodes equal")
    func roundTrip() throws {
        var record = WorkflowRecord(workflowID: "upgrade/\"cluster\"\\a")
        let request = ActivityRequest(
            activityID: "step\t1", name: "work", input: "{\"json\": \"in\ninput\"}",
            retry: RetryPolicy(maxAttempts: 3, initialBackoff: .milliseconds(150), multiplier: 1.5, nonRetryableErrorKinds: ["invalid", "é"]),
            startToCloseTimeout: .seconds(7), concurrencyKey: "cluster-a")
        let events: [WorkflowEvent] = [
            .workflowStarted(WorkflowStart(type: "steps", deciderVersion: 2, input: "1:0:", parentID: "parent/1", uniqueKey: "u\u{1}")),
            .activityScheduled(request),
            .activityStarted(activityID: "step\t1", attempt: 1),
            .activityFailed(
                ActivityAttemptFailure(
                    activityID: "step\t1", attempt: 1, failure: ActivityFailure(kind: "http503", message: "busy \"now\""),
                    nextRetryAt: Timestamp(nanoseconds: 99))),
            .activityScheduled(ActivityRequest(activityID: "done", name: "work")),
            .activityCompleted(activityID: "done", attempt: 1, output: ""),
            .timerStarted(timerID: "t", fireAt: Timestamp(nanoseconds: 5)),
            .childStarted(childID: "c/1", type: "steps"),
            .childFailed(childID: "c/1", reason: "boom"),
            .signalReceived(name: EngineSignal.pause, payload: ""),
        ]
        for (revision, event) in events.enumerated() {
            record.apply(StampedWorkflowEvent(event, at: Timestamp(nanoseconds: Int64(revision))), revision: UInt64(revision))
        }
        let state = Array(#"{"x":1}"#.utf8)
        let bytes = WorkflowSnapshot.encode(record: record, state: state, commands: [.waitForSignal(name: "approve")])
        let decoded = try WorkflowSnapshot.decode(bytes, key: "k")
        #expect(decoded.record == record)
        #expect(decoded.state == state)
        #expect(decoded.view == WorkflowView(record: record, commands: [.waitForSignal(name: "approve")]))
        #expect(decoded.view.waitingOn == "signal resume (paused)")
    }

    @Test("Snapshot: bad input: a snapshot without its state line is named")
    func corrupt() {
        #expect {
            try WorkflowSnapshot.decode(Array("{}".utf8), key: "engine/run/x")
        } throws: { error in
            "\(error)".contains("snapshot engine/run/x")
        }
    }
}
