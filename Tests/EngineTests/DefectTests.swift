import CapstanSupport
import Engine
import EngineTesting
import EventLog
import Testing

/// The engine issue's defects, each pinned by a test that failed before its fix.
@Suite struct DefectTests {
    struct StoreDown: Error, CustomStringConvertible {
        var description: String { "disk read failed (EIO)" }
    }

    /// An engine core on the in-memory store whose "is this id taken" read can be made to fail.
    /// Ids whose existence check throws, as a store with a read error would.
    final class Unreadable: @unchecked Sendable {
        var ids: Set<String> = []
    }

    final class Harness {
        let clock = VirtualClock()
        let store: InMemoryStore
        let core: EngineCore
        let unreadable = Unreadable()

        init() {
            let store = InMemoryStore(clock: clock)
            let unreadable = self.unreadable
            self.store = store
            core = EngineCore(workflows: sampleDefinitions, options: .init(seed: 11)) { workflowID in
                if unreadable.ids.contains(workflowID) { throw StoreDown() }
                return try store.streamExists(.forWorkflow(workflowID))
            }
        }

        func commit(_ batch: EngineBatch) throws {
            if !batch.streams.isEmpty { _ = try store.appendNow(batch.streams, stateWrites: batch.stateWrites) }
        }

        func commitAll() throws {
            while let batch = core.takeBatch() { try commit(batch) }
        }
    }

    /// Seen failing (on purpose, once): without the `finishedInLastBatch` check in `start`, the
    /// second refusal below did not happen and the handed-out batch's append then failed on the
    /// stream the refused start had written to (the defect: one such start stopped the engine).
    @Test("Defects: a start of an id that finished in the batch not yet committed is refused; the batch still commits")
    func startAfterFinishBeforeCommit() throws {
        let harness = Harness()
        let core = harness.core
        // Zero steps: the run starts and completes in one decide loop, in one batch.
        try core.start(workflowID: "w", type: StepsWorkflow.type, input: "0:0:", now: harness.clock.now())
        #expect(throws: EngineError.self) { try core.start(workflowID: "w", type: StepsWorkflow.type, input: "0:0:", now: harness.clock.now()) }
        let batch = try #require(core.takeBatch())
        #expect(batch.streams.flatMap { $0.events.map(\.type) } == ["WorkflowStarted", "WorkflowCompleted"])
        // The batch is handed out, not yet committed: the store does not know "w" yet.
        #expect(try harness.store.streamExists(.forWorkflow("w")) == false)
        #expect {
            try core.start(workflowID: "w", type: StepsWorkflow.type, input: "0:0:", now: harness.clock.now())
        } throws: { error in
            (error as? EngineError)?.code == .workflowExists
        }
        #expect(core.takeBatch() == nil, "the refused start wrote nothing")
        try harness.commit(batch)
        #expect(try harness.store.readStream(.forWorkflow("w")).map(\.type) == ["WorkflowStarted", "WorkflowCompleted"])
        // Committed: now the store answers, and the engine goes on with other ids.
        #expect {
            try core.start(workflowID: "w", type: StepsWorkflow.type, input: "0:0:", now: harness.clock.now())
        } throws: { error in
            (error as? EngineError)?.code == .workflowExists
        }
        try core.start(workflowID: "v", type: StepsWorkflow.type, input: "0:0:", now: harness.clock.now())
        try harness.commitAll()
        #expect(try harness.store.readStream(.forWorkflow("v")).map(\.type) == ["WorkflowStarted", "WorkflowCompleted"])
    }

    /// Seen failing (before the fix): the read error was taken as "the id exists", so the start
    /// was refused as `.workflowExists`, and an inbox start was consumed and lost.
    @Test("Defects: a store read error on a start is storeFailure, not 'exists'; an inbox start is not consumed")
    func readErrorIsNotExists() throws {
        let harness = Harness()
        let core = harness.core
        harness.unreadable.ids = ["a"]
        #expect {
            try core.start(workflowID: "a", type: StepsWorkflow.type, input: "0:0:", now: harness.clock.now())
        } throws: { error in
            guard let error = error as? EngineError else { return false }
            return error.code == .storeFailure && error.message.contains("workflow a") && error.message.contains("disk read failed")
        }
        #expect(core.takeBatch() == nil)

        // The same start through the inbox: the request stays unconsumed until the store answers.
        let request = InboxMessage.start(workflowID: "a", type: StepsWorkflow.type, input: "0:0:", uniqueKey: nil)
            .proposedEvent(id: EventID(high: 1, low: 2), actor: "cli:test")
        _ = try harness.store.appendNow(
            [StreamAppend(streamID: InboxMessage.stream, expectedRevision: .any, events: [request])], stateWrites: [])
        let recorded = try #require(harness.store.readAll(after: .start).first { $0.streamID == InboxMessage.stream })
        #expect(throws: EngineError.self) { try core.handleInbox(recorded, now: harness.clock.now()) }
        #expect(core.inboxPosition == .start, "the failed request must be handled again")
        #expect(core.takeBatch() == nil)
        harness.unreadable.ids = []
        try core.handleInbox(recorded, now: harness.clock.now())
        #expect(core.inboxPosition == recorded.position)
        try harness.commitAll()
        #expect(try harness.store.readStream(.forWorkflow("a")).map(\.type) == ["WorkflowStarted", "WorkflowCompleted"])
        #expect(try harness.store.state(forKey: StateKey.inboxPosition) == Array(String(recorded.position.rawValue).utf8))
    }

    /// Seen failing (before the fix): the child's read error was reported as "exists already".
    @Test("Defects: a store read error on a child start fails the child with the reason, in the parent's history")
    func childReadError() throws {
        let harness = Harness()
        harness.unreadable.ids = ["p/child-1"]
        try harness.core.start(workflowID: "p", type: ParentWorkflow.type, input: "p", now: harness.clock.now())
        try harness.commitAll()
        let events = try harness.store.readStream(.forWorkflow("p")).map { try WorkflowEventCodec.decode($0).event }
        let reasons = events.compactMap { event -> String? in
            if case .childFailed(childID: "p/child-1", let reason) = event { return reason }
            return nil
        }
        #expect(reasons.count == 1)
        #expect(reasons.first?.contains("cannot tell whether the id was used: disk read failed") == true, "\(reasons)")
        #expect(reasons.first?.contains("exists already") == false)
    }
}
