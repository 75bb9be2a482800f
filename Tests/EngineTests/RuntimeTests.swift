import Engine
import EngineTesting
import EventLog
import Foundation
import Testing

/// The async runtime on the in-memory store with the real clock: signals from another
/// writer through the inbox, uniqueness, children cancelled with their parent, and a
/// graceful stop that commits in-flight work. Waits are generous; nothing is timed.
@Suite struct RuntimeTests {
    static func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("timed out waiting for \(what)")
        throw CancellationError()
    }

    static func finishedStatus(_ store: InMemoryStore, _ workflowID: String) throws -> WorkflowRecord.Status? {
        let key = StateKey.finished(workflowID)
        guard let bytes = try store.state(forKey: key) else { return nil }
        return try WorkflowStatusReport(snapshot: bytes, key: key).record.status
    }

    static let quickWork: [String: ActivityExecutor] = ["work": { context in "did \(context.idempotencyKey)" }]

    @Test("Runtime: signals: an approve appended to the inbox by another writer completes the workflow")
    func inboxSignal() async throws {
        let store = InMemoryStore()
        let engine = try WorkflowEngine(store: store, workflows: sampleDefinitions, executors: Self.quickWork)
        try await engine.start(workflowID: "approval/a", type: ApprovalWorkflow.type)
        let running = Task { try await engine.run() }
        try await Self.eventually("the approval to wait for its signal") {
            await engine.record(of: "approval/a")?.timers["approval-deadline"] != nil
        }
        let signal = InboxMessage.signal(workflowID: "approval/a", name: EngineSignal.approve, payload: "alice")
            .proposedEvent(id: EventID(high: 1, low: 2), actor: "cli:alice")
        _ = try await store.append([StreamAppend(streamID: InboxMessage.stream, expectedRevision: .any, events: [signal])], stateWrites: [])
        try await Self.eventually("the workflow to finish") { try Self.finishedStatus(store, "approval/a") != nil }
        #expect(try Self.finishedStatus(store, "approval/a") == .completed)
        let types = try store.readStream(.forWorkflow("approval/a")).map(\.type)
        #expect(types.contains("SignalReceived"))
        #expect(try store.state(forKey: StateKey.inboxPosition) != nil)
        await engine.stop()
        try await running.value
    }

    @Test("Runtime: uniqueness: a second run with a held key is refused, naming the running one")
    func uniqueness() async throws {
        let store = InMemoryStore()
        let engine = try WorkflowEngine(store: store, workflows: sampleDefinitions, executors: Self.quickWork)
        try await engine.start(workflowID: "upgrade/cluster-a/1", type: StepsWorkflow.type, input: "1:0:", uniqueKey: "upgrade/cluster-a")
        await #expect {
            try await engine.start(workflowID: "upgrade/cluster-a/2", type: StepsWorkflow.type, input: "1:0:", uniqueKey: "upgrade/cluster-a")
        } throws: { error in
            guard let error = error as? EngineError else { return false }
            return error.code == .alreadyRunning && error.message.contains("upgrade/cluster-a/1")
        }
        await #expect(throws: EngineError.self) {
            try await engine.start(workflowID: "x", type: "no-such-type")
        }
        let running = Task { try await engine.run() }
        try await Self.eventually("the first run to finish") { try Self.finishedStatus(store, "upgrade/cluster-a/1") != nil }
        #expect(try store.state(forKey: StateKey.unique("upgrade/cluster-a")) == nil)
        // Once the first has finished, the key is free again.
        try await engine.start(workflowID: "upgrade/cluster-a/2", type: StepsWorkflow.type, input: "1:0:", uniqueKey: "upgrade/cluster-a")
        try await Self.eventually("the second run to finish") { try Self.finishedStatus(store, "upgrade/cluster-a/2") == .completed }
        await engine.stop()
        try await running.value
    }

    @Test("Runtime: children: cancelling a parent cancels its running children")
    func cancelParent() async throws {
        let store = InMemoryStore()
        let slow: [String: ActivityExecutor] = [
            "work": { _ in
                try await Task.sleep(for: .seconds(3600))
                return "late"
            }
        ]
        let engine = try WorkflowEngine(store: store, workflows: sampleDefinitions, executors: slow)
        try await engine.start(workflowID: "parent/p", type: ParentWorkflow.type, input: "parent/p")
        let running = Task { try await engine.run() }
        try await Self.eventually("both children to run an activity") {
            let first = await engine.record(of: "parent/p/child-1")?.activities["step-1"]?.phase
            let second = await engine.record(of: "parent/p/child-2")?.activities["step-1"]?.phase
            return first == .running && second == .running
        }
        await engine.signal(workflowID: "parent/p", name: EngineSignal.cancel, payload: "operator")
        try await Self.eventually("the parent to finish") { try Self.finishedStatus(store, "parent/p") != nil }
        #expect(try Self.finishedStatus(store, "parent/p") == .cancelled)
        #expect(try Self.finishedStatus(store, "parent/p/child-1") == .cancelled)
        #expect(try Self.finishedStatus(store, "parent/p/child-2") == .cancelled)
        await engine.stop()
        try await running.value
    }

    @Test("Runtime: stop: no new dispatch, in-flight attempts finish and are committed")
    func gracefulStop() async throws {
        let store = InMemoryStore()
        let work: [String: ActivityExecutor] = [
            "work": { _ in
                try await Task.sleep(for: .milliseconds(300))
                return "ok"
            }
        ]
        let engine = try WorkflowEngine(store: store, workflows: sampleDefinitions, executors: work)
        for index in 0..<5 { try await engine.start(workflowID: "steps/\(index)", type: StepsWorkflow.type, input: "3:0:") }
        let running = Task { try await engine.run() }
        try await Self.eventually("an attempt to start") {
            try store.readStream(.forWorkflow("steps/0")).contains { $0.type == "ActivityStarted" }
        }
        await engine.stop()
        try await running.value
        for index in 0..<5 {
            let events = try store.readStream(.forWorkflow("steps/\(index)"))
            let started = events.filter { $0.type == "ActivityStarted" }.count
            let ended = events.filter { $0.type == "ActivityCompleted" || $0.type == "ActivityFailed" }.count
            #expect(started == ended, "steps/\(index): \(started) started, \(ended) ended")
            let snapshot = try #require(try store.state(forKey: StateKey.running("steps/\(index)")))
            #expect(try WorkflowStatusReport(snapshot: snapshot, key: "steps/\(index)").record.lastRevision == UInt64(events.count - 1))
        }
        await #expect(throws: EngineError.self) { try await engine.start(workflowID: "late", type: StepsWorkflow.type) }
    }
}
