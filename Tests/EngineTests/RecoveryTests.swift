import Engine
import EngineTesting
import EventLog
import Foundation
import Testing

/// A three-step counter as first deployed: its state counts completed steps.
enum CounterV1: Workflow {
    struct State: Codable, Equatable, Sendable { var count = 0 }
    static let type = "counter"
    static let version = 1
    static let initial = State()
    static func evolve(_ state: State, _ event: WorkflowEvent, at: Timestamp) -> State {
        var next = state
        if case .activityCompleted = event { next.count += 1 }
        return next
    }
    static func decide(_ state: State) -> [WorkflowCommand] {
        state.count == 3
            ? [.complete(output: "v1 counted \(state.count)")]
            : [.runActivity(ActivityRequest(activityID: "step-\(state.count + 1)", name: "work"))]
    }
}

/// The same type after a code change: a new `State` shape (the v1 JSON does not decode as
/// it) and a new `evolve`, deployed as version 2 without an upcast.
enum CounterV2: Workflow {
    struct State: Codable, Equatable, Sendable { var done: [String] }
    static let type = "counter"
    static let version = 2
    static let initial = State(done: [])
    static func evolve(_ state: State, _ event: WorkflowEvent, at: Timestamp) -> State {
        var next = state
        if case .activityCompleted(let activityID, _, _) = event { next.done.append(activityID) }
        return next
    }
    static func decide(_ state: State) -> [WorkflowCommand] {
        state.done.count == 3
            ? [.complete(output: "v2 did \(state.done.joined(separator: ","))")]
            : [.runActivity(ActivityRequest(activityID: "step-\(state.done.count + 1)", name: "work"))]
    }
}

/// Version 2 with an upcast of version 1 snapshots (it knows the step ids from the count).
enum CounterV2Upcast: Workflow {
    typealias State = CounterV2.State
    static let type = "counter"
    static let version = 2
    static let initial = CounterV2.initial
    static func evolve(_ state: State, _ event: WorkflowEvent, at: Timestamp) -> State { CounterV2.evolve(state, event, at: at) }
    static func decide(_ state: State) -> [WorkflowCommand] { CounterV2.decide(state) }
    static func upcastSnapshot(_ state: [UInt8], fromVersion: Int) throws -> State? {
        guard fromVersion == 1 else { return nil }
        let old = try JSONDecoder().decode(CounterV1.State.self, from: Data(state))
        return State(done: (0..<old.count).map { "step-\($0 + 1)" })
    }
}

/// Recovery never depends on a snapshot alone: a snapshot of another decider version, or
/// one that does not decode, is dropped and the run folded again from its stream; a run
/// whose history cannot fold is quarantined, reported, its stream untouched, and the others
/// run. On the core and the in-memory store (a restart is a fresh core on the same store).
@Suite struct RecoveryTests {
    static let start = Timestamp(nanoseconds: 1_700_000_000_000_000_000)

    static func core(_ store: InMemoryStore, _ workflows: [WorkflowDefinition]) -> EngineCore {
        EngineCore(workflows: workflows, options: .init(seed: 7)) { (try? store.streamExists(.forWorkflow($0))) ?? true }
    }

    /// Commits everything pending; returns the calls to make.
    @discardableResult
    static func commit(_ core: EngineCore, _ store: InMemoryStore) throws -> [ActivityDispatch] {
        var dispatches: [ActivityDispatch] = []
        while let batch = core.takeBatch() {
            if !batch.streams.isEmpty || !batch.stateWrites.isEmpty {
                _ = try store.appendNow(batch.streams, stateWrites: batch.stateWrites)
            }
            dispatches += batch.dispatches
        }
        return dispatches
    }

    static func restart(_ store: InMemoryStore, _ workflows: [WorkflowDefinition]) throws -> EngineCore {
        let core = core(store, workflows)
        try core.recover(
            snapshots: try store.stateEntries(withPrefix: StateKey.runningPrefix), inboxPosition: .start, now: start,
            readStream: { try store.readStream($0) })
        return core
    }

    /// Later than every retry of these tests.
    static let later = start + .seconds(3600)

    /// Runs calls until the core asks for none, letting retries come due; every call succeeds.
    static func runToEnd(_ core: EngineCore, _ store: InMemoryStore, _ dispatches: [ActivityDispatch]) throws {
        var pending = dispatches
        for _ in 0..<100 {
            if pending.isEmpty {
                core.advance(now: later)
                pending = try commit(core, store)
                if pending.isEmpty { return }
            }
            let dispatch = pending.removeFirst()
            core.activityFinished(dispatch, result: .success("ok"), now: later)
            pending += try commit(core, store)
        }
    }

    static func status(_ store: InMemoryStore, _ workflowID: String) throws -> WorkflowStatusReport? {
        try WorkflowStatusReport.read(workflowID: workflowID) { try store.state(forKey: $0) }
    }

    /// One step done under v1, then the engine stops.
    static func runOneStepUnderV1(_ store: InMemoryStore, workflowID: String = "counter/a") throws {
        let core = core(store, [WorkflowDefinition(CounterV1.self)])
        try core.start(workflowID: workflowID, type: CounterV1.type, input: "", now: start)
        let first = try commit(core, store)
        core.activityFinished(try #require(first.first), result: .success("ok"), now: start)
        try commit(core, store)
        #expect(core.record(of: workflowID)?.completedActivities == ["step-1"])
    }

    /// Before issue 8, `recover` threw `.corruptHistory` here (the v1 state does not decode
    /// as v2's) and the engine did not start; had it decoded, v1's fold would have gone on.
    @Test("Recovery: code change: a run under evolve v1 continues under a changed evolve and State (v2), refolded")
    func changedEvolve() throws {
        let store = InMemoryStore()
        try Self.runOneStepUnderV1(store)
        let core = try Self.restart(store, [WorkflowDefinition(CounterV2.self)])
        #expect(core.recoveryStats.refolded == 1 && core.recoveryStats.fromSnapshot == 0, "\(core.recoveryStats)")
        #expect(core.quarantinedWorkflows.isEmpty)
        // Step 2 was running at the stop: it is retried, as attempt 2, once its backoff ends;
        // step 1's completion was folded by v2.
        #expect(try Self.commit(core, store).isEmpty)
        core.advance(now: Self.later)
        let dispatches = try Self.commit(core, store)
        #expect(dispatches.map(\.key.activityID) == ["step-2"] && dispatches.map(\.attempt) == [2])
        try Self.runToEnd(core, store, dispatches)
        let report = try #require(try Self.status(store, "counter/a"))
        #expect(report.record.status == .completed)
        #expect(report.record.result == "v2 did step-1,step-2,step-3")
    }

    @Test("Recovery: upcast: a v1 snapshot goes through the type's upcast instead of a refold")
    func upcast() throws {
        let store = InMemoryStore()
        try Self.runOneStepUnderV1(store)
        let core = try Self.restart(store, [WorkflowDefinition(CounterV2Upcast.self)])
        #expect(core.recoveryStats.upcast == 1 && core.recoveryStats.refolded == 0, "\(core.recoveryStats)")
        try Self.runToEnd(core, store, try Self.commit(core, store))
        #expect(try Self.status(store, "counter/a")?.record.result == "v2 did step-1,step-2,step-3")
    }

    @Test("Recovery: corrupt snapshot: dropped and folded from the stream; the others recover from theirs")
    func corruptSnapshot() throws {
        let store = InMemoryStore()
        try Self.runOneStepUnderV1(store, workflowID: "counter/a")
        try Self.runOneStepUnderV1(store, workflowID: "counter/b")
        _ = try store.appendNow([], stateWrites: [.put(key: StateKey.running("counter/a"), value: Array("{\"v\":1,\"rec".utf8))])
        let core = try Self.restart(store, [WorkflowDefinition(CounterV1.self)])
        #expect(core.recoveryStats.refolded == 1 && core.recoveryStats.fromSnapshot == 1, "\(core.recoveryStats)")
        try Self.commit(core, store)
        #expect(try core.liveStateEqualsFold(of: "counter/a", events: store.readStream(.forWorkflow("counter/a"))))
        try Self.runToEnd(core, store, try Self.commit(core, store))
        #expect(try Self.status(store, "counter/a")?.record.result == "v1 counted 3")
        #expect(try Self.status(store, "counter/b")?.record.result == "v1 counted 3")
    }

    /// Before issue 8 an unregistered type stopped the whole engine (`recover` threw
    /// `.unknownWorkflowType`), so steps/x could not run either.
    @Test("Recovery: unknown type: quarantined and reported, its stream untouched, the others run")
    func unknownType() throws {
        let store = InMemoryStore()
        try Self.runOneStepUnderV1(store)
        let before = try store.readStream(.forWorkflow("counter/a"))
        let core = try Self.restart(store, sampleDefinitions)
        try core.start(workflowID: "steps/x", type: StepsWorkflow.type, input: "1:0:", now: Self.start)
        #expect(core.recoveryStats.quarantined == 1)
        #expect(core.quarantinedWorkflows.map(\.workflowID) == ["counter/a"])
        try Self.runToEnd(core, store, try Self.commit(core, store))
        #expect(try Self.status(store, "steps/x")?.record.status == .completed)
        let report = try #require(try Self.status(store, "counter/a"))
        #expect(report.view.status == .quarantined)
        #expect(report.view.waitingOn.contains("workflow type counter is not registered"), "\(report.view.waitingOn)")
        #expect(try store.readStream(.forWorkflow("counter/a")) == before)
        // The id stays taken, and a later deploy that knows the type picks the run up again.
        #expect(throws: EngineError.self) { try core.start(workflowID: "counter/a", type: StepsWorkflow.type, input: "1:0:", now: Self.start) }
        let fixed = try Self.restart(store, [WorkflowDefinition(CounterV1.self)])
        #expect(fixed.recoveryStats.refolded == 1 && fixed.quarantinedWorkflows.isEmpty, "\(fixed.recoveryStats)")
        try Self.runToEnd(fixed, store, try Self.commit(fixed, store))
        #expect(try Self.status(store, "counter/a")?.record.result == "v1 counted 3")
    }

    @Test("Recovery: undecodable event: the run is quarantined naming the event, the stream untouched")
    func undecodableEvent() throws {
        let store = InMemoryStore()
        try Self.runOneStepUnderV1(store)
        let bogus = ProposedEvent(
            id: EventID(high: 9, low: 9), type: "NoSuchEvent", schemaVersion: 1, metadata: EventMetadata(actor: "test"),
            payload: Array("{\"at\":1}".utf8))
        let revision = try store.readStream(.forWorkflow("counter/a")).last!.revision
        _ = try store.appendNow(
            [StreamAppend(streamID: .forWorkflow("counter/a"), expectedRevision: .exact(revision), events: [bogus])],
            stateWrites: [.put(key: StateKey.running("counter/a"), value: Array("garbage".utf8))])
        let before = try store.readStream(.forWorkflow("counter/a"))
        let core = try Self.restart(store, [WorkflowDefinition(CounterV1.self)])
        let reason = try #require(core.quarantinedWorkflows.first?.reason)
        #expect(reason.contains("unknown event type NoSuchEvent"), "\(reason)")
        try Self.commit(core, store)
        #expect(try Self.status(store, "counter/a")?.view.status == .quarantined)
        #expect(try store.readStream(.forWorkflow("counter/a")) == before)
    }
}
