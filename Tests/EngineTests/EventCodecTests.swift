import Engine
import Foundation
import Testing

/// The stored format: every event round-trips, old schema versions upcast, a history
/// written by the first version folds, and bad payloads are named precisely.
@Suite struct EventCodecTests {
    static let at = Timestamp(nanoseconds: 1_700_000_000_123_456_789)

    static let everyEvent: [WorkflowEvent] = [
        .workflowStarted(WorkflowStart(type: "steps", deciderVersion: 3, input: "{\"a\":1}", parentID: "p", uniqueKey: "u")),
        .workflowStarted(
            WorkflowStart(
                type: "steps", deciderVersion: 1, input: "", run: 2, carriedState: "{}",
                forkedFrom: WorkflowForkOrigin(workflowID: "steps/old", run: 3, revision: 17))),
        .workflowStarted(
            WorkflowStart(
                type: "steps", deciderVersion: 1, input: "", forkedFrom: WorkflowForkOrigin(workflowID: "steps/old", run: 1, revision: 0))),
        .activityScheduled(StepsWorkflow.request(step: 1, concurrencyKey: "cluster-a")),
        .activityStarted(activityID: "step-1", attempt: 2),
        .activityCompleted(activityID: "step-1", attempt: 2, output: "out"),
        .activityFailed(
            ActivityAttemptFailure(
                activityID: "step-1", attempt: 1, failure: ActivityFailure(kind: "http409", message: "conflict", retryable: true),
                nextRetryAt: Timestamp(nanoseconds: 42))),
        .activityFailed(
            ActivityAttemptFailure(
                activityID: "step-1", attempt: 4, failure: ActivityFailure(kind: "invalid", message: "bad", retryable: false),
                nextRetryAt: nil)),
        .timerStarted(timerID: "t", fireAt: Timestamp(nanoseconds: 7)),
        .timerFired(timerID: "t", firedAt: Timestamp(nanoseconds: 8)),
        .signalReceived(name: "approve", payload: "alice"),
        .childStarted(childID: "c", type: "steps"),
        .childCompleted(childID: "c", output: "o"),
        .childFailed(childID: "c", reason: "r"),
        .cancelRequested(reason: "operator"),
        .workflowCompleted(output: "done"),
        .workflowFailed(reason: "broken"),
        .workflowCancelled(reason: "operator"),
    ]

    @Test("Codec: round trip: every event type decodes to itself")
    func roundTrip() throws {
        for event in Self.everyEvent {
            let stamped = StampedWorkflowEvent(event, at: Self.at)
            let encoded = WorkflowEventCodec.encode(stamped)
            let decoded = try WorkflowEventCodec.decode(
                type: encoded.type, schemaVersion: encoded.schemaVersion, payload: encoded.payload, context: "test")
            #expect(decoded == stamped)
        }
    }

    @Test("Codec: upcast: ActivityFailed v1 gets kind unknown and retryable from nextRetryAt")
    func upcastActivityFailed() throws {
        let payload = Array(#"{"at":5,"activityID":"a","attempt":3,"error":"boom"}"#.utf8)
        let decoded = try WorkflowEventCodec.decode(type: "ActivityFailed", schemaVersion: 1, payload: payload, context: "test")
        #expect(
            decoded.event
                == .activityFailed(
                    ActivityAttemptFailure(
                        activityID: "a", attempt: 3, failure: ActivityFailure(kind: "unknown", message: "boom", retryable: false),
                        nextRetryAt: nil)))
    }

    @Test("Codec: bad input: a missing field is named with the event's place")
    func missingField() throws {
        let payload = Array(#"{"at":5,"activityID":"a"}"#.utf8)
        #expect {
            try WorkflowEventCodec.decode(type: "ActivityStarted", schemaVersion: 1, payload: payload, context: "stream workflow/x revision 4")
        } throws: { error in
            "\(error)".contains("stream workflow/x revision 4: ActivityStarted v1: field attempt is missing")
        }
        #expect(throws: EngineError.self) {
            try WorkflowEventCodec.decode(type: "ActivityStarted", schemaVersion: 9, payload: payload, context: "x")
        }
    }

    @Test("Codec: fixture: a history written by the first version folds")
    func foldsFirstVersionFixture() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/history-v1.jsonl")
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 11)
        var events: [StampedWorkflowEvent] = []
        for (number, line) in lines.enumerated() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let type = try #require(object["type"] as? String)
            let version = try #require(object["schemaVersion"] as? Int)
            let payload = try JSONSerialization.data(withJSONObject: try #require(object["payload"]))
            events.append(
                try WorkflowEventCodec.decode(
                    type: type, schemaVersion: UInt16(version), payload: Array(payload), context: "fixture line \(number + 1)"))
        }
        let state = try StepsWorkflow.replay(events.map(\.event))
        #expect(state.completed == 2)
        #expect(state.lastSignal == "note")
        var record = WorkflowRecord(workflowID: "steps/fixture")
        for (revision, event) in events.enumerated() { record.apply(event, revision: UInt64(revision)) }
        #expect(record.status == .completed)
        #expect(record.uniqueKey == "steps/fixture")
        #expect(record.lastError == "activity step-1 attempt 1: unknown: connection refused")
        #expect(record.completedActivities == ["step-1", "step-2"])
        #expect(record.activities.isEmpty)
    }
}
