import Engine
import EngineTesting
import EventLog
import Foundation
import Synchronization
import Testing

/// The async runtime on the in-memory store with the real clock: signals from another
/// writer through the inbox, uniqueness, children cancelled with their parent, and a
/// graceful stop that commits in-flight work. Waits are generous; nothing is timed. The
/// engines run on a virtual clock (start-to-close timeouts never fire on a loaded machine),
/// but for the bounded stop, whose bound is real time.
@Suite struct RuntimeTests {
    static func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        // A hang detector, not a timing limit: in a loaded full run other suites block the
        // cooperative pool (process waits) for minutes, and these async tests wait their turn.
        let deadline = ContinuousClock.now + .seconds(600)
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
        let engine = try WorkflowEngine(store: store, workflows: sampleDefinitions, executors: Self.quickWork, clock: VirtualClock())
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
        let engine = try WorkflowEngine(store: store, workflows: sampleDefinitions, executors: Self.quickWork, clock: VirtualClock())
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
        let engine = try WorkflowEngine(store: store, workflows: sampleDefinitions, executors: slow, clock: VirtualClock())
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
        let engine = try WorkflowEngine(store: store, workflows: sampleDefinitions, executors: work, clock: VirtualClock())
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
    /// A gate an executor waits at, ignoring cancellation, until the test opens it.
    final class Gate: Sendable {
        private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
        func wait() async {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.open { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
        func open() {
            let waiters = state.withLock { state in
                state.open = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    /// Seen failing: with `abandonGrace: .zero` (the slot freed at the timeout, as before
    /// issue 8) attempt 2 starts while attempt 1 still runs: "attempt 2 started while
    /// attempt 1 ran", and its ActivityStarted is in the log before the gate opens.
    @Test("Runtime: cancellation: a timed-out attempt's task is cancelled and holds its slot until it returns")
    func timeoutCancels() async throws {
        let store = InMemoryStore()
        let clock = VirtualClock()
        let gate = Gate()
        let log = Mutex<(sawCancel: Bool, firstReturned: Bool, problems: [String], deadline: Timestamp?)>((false, false, [], nil))
        let work: [String: ActivityExecutor] = [
            "work": { context in
                if context.attempt == 1 {
                    log.withLock { $0.deadline = context.deadline }
                    while !context.isCancelled { try? await Task.sleep(for: .milliseconds(5)) }
                    log.withLock { $0.sawCancel = true }
                    await gate.wait()  // a slow executor: it returns well after being told
                    log.withLock { $0.firstReturned = true }
                    throw CancellationError()
                }
                if !log.withLock({ $0.firstReturned }) {
                    log.withLock { $0.problems.append("attempt \(context.attempt) started while attempt 1 ran") }
                }
                return "ok"
            }
        ]
        let engine = try WorkflowEngine(
            store: store, workflows: sampleDefinitions, executors: work, clock: clock,
            options: .init(perKeyConcurrency: 1, seed: 1, abandonGrace: .seconds(600)))
        try await engine.start(workflowID: "steps/t", type: StepsWorkflow.type, input: "1:0:cluster-a")
        let began = clock.now()
        let running = Task { try await engine.run() }
        try await Self.eventually("attempt 1 to start") { log.withLock { $0.deadline != nil } }
        #expect(log.withLock { $0.deadline } == began + .seconds(5))
        clock.advance(by: .seconds(6))
        try await Self.eventually("attempt 1 to see its cancellation") { log.withLock { $0.sawCancel } }
        // Past the retry's backoff: attempt 2 is due, but attempt 1's executor still runs.
        clock.advance(by: .seconds(2))
        try await Task.sleep(for: .milliseconds(200))
        #expect(await engine.executorTaskCount == 1)
        #expect(try !store.readStream(.forWorkflow("steps/t")).contains { $0.type == "ActivityStarted" && $0.revision.rawValue > 3 })
        gate.open()
        try await Self.eventually("the workflow to finish") { try Self.finishedStatus(store, "steps/t") != nil }
        #expect(try Self.finishedStatus(store, "steps/t") == .completed)
        #expect(log.withLock { $0.problems }.isEmpty, "\(log.withLock { $0.problems })")
        let failures = try store.readStream(.forWorkflow("steps/t")).filter { $0.type == "ActivityFailed" }.map {
            String(decoding: $0.payload, as: UTF8.self)
        }
        #expect(failures.count == 1 && failures[0].contains("timeout"), "\(failures)")
        await engine.stop()
        try await running.value
    }

    /// Without the bound (`run()` returning only once every executor returned) this test
    /// would wait forever on the executor that ignores cancellation (not run broken).
    @Test("Runtime: stop: hung executors do not hold a graceful stop past its bound; their attempts stay open")
    func boundedStop() async throws {
        let store = InMemoryStore()
        let gate = Gate()
        let work: [String: ActivityExecutor] = [
            "work": { context in
                if context.workflowID == "steps/hung" {
                    await gate.wait()  // ignores cancellation entirely
                    return "late"
                }
                try await Task.sleep(for: .seconds(3600))  // stops when cancelled
                return "never"
            }
        ]
        let engine = try WorkflowEngine(
            store: store, workflows: sampleDefinitions, executors: work, stopGrace: .milliseconds(100))
        try await engine.start(workflowID: "steps/hung", type: StepsWorkflow.type, input: "1:0:")
        try await engine.start(workflowID: "steps/polite", type: StepsWorkflow.type, input: "1:0:")
        let running = Task { try await engine.run() }
        try await Self.eventually("both attempts to run") { await engine.executorTaskCount == 2 }
        await engine.stop()
        try await running.value
        for workflowID in ["steps/hung", "steps/polite"] {
            // Cancelled by the stop is not a failure: nothing says `cancelled`, the workflow
            // still runs for the next start. (On a loaded machine the 5 s start-to-close
            // timeout may fire first: that failure is a `timeout`.)
            let failures = try store.readStream(.forWorkflow(workflowID)).filter { $0.type == "ActivityFailed" }
                .map { String(decoding: $0.payload, as: UTF8.self) }
            #expect(!failures.contains { $0.contains("cancelled") }, "\(workflowID): \(failures)")
            #expect(try store.state(forKey: StateKey.running(workflowID)) != nil)
        }
        gate.open()
    }
}
