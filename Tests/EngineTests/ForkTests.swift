import Engine
import EngineTesting
import EventLog
import Foundation
import Testing

/// Goal: a fork starts a new run from a prefix of an old run's history (Temporal's reset
/// with a signal, DBOS's fork): the prefix is copied as it was, work open at the cut goes on
/// as after a restart there (an attempt running at the cut runs again as a new attempt under
/// the new id), nothing completed in the prefix runs again, the signal is in the new history,
/// and the old stream is not written. Refusals write nothing.
/// Method: the pure core on the in-memory store, fixed times and seed, calls finished by hand.
@Suite struct ForkTests {
    static let start = Timestamp(nanoseconds: 1_700_000_000_000_000_000)
    static func at(_ seconds: Int64) -> Timestamp { start + .seconds(seconds) }

    static func core(_ store: InMemoryStore) -> EngineCore {
        let core = EngineCore(workflows: sampleDefinitions, options: .init(seed: 11)) {
            (try? store.streamExists(.forWorkflow($0))) ?? true
        }
        core.readStream = { try store.readStream($0) }
        return core
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

    /// What a stream holds, event by event (ids included: "untouched" means byte for byte).
    static func contents(_ store: InMemoryStore, _ stream: StreamID) throws -> [String] {
        try store.readStream(stream).map { "\($0.revision) \($0.id) \($0.type) \(String(decoding: $0.payload, as: UTF8.self))" }
    }

    static func decoded(_ store: InMemoryStore, _ workflowID: String) throws -> [WorkflowEvent] {
        try store.readStream(.forWorkflow(workflowID)).map { try WorkflowEventCodec.decode($0).event }
    }

    /// `steps/a` (three steps) run to its end; returns the revision of `step-2`'s
    /// `ActivityScheduled` (the last event before its attempt started).
    static func completedThreeSteps(_ core: EngineCore, _ store: InMemoryStore) throws -> UInt64 {
        try core.start(workflowID: "steps/a", type: StepsWorkflow.type, input: "3:0:", now: at(0))
        var pending = try commit(core, store)
        var second: Int64 = 1
        while let dispatch = pending.first {
            pending.removeFirst()
            core.activityFinished(dispatch, result: .success("done \(dispatch.key.activityID)"), now: at(second))
            second += 1
            pending += try commit(core, store)
        }
        #expect(core.record(of: "steps/a") == nil, "steps/a ended")
        let events = try store.readStream(.forWorkflow("steps/a"))
        #expect(events.last?.type == "WorkflowCompleted")
        let scheduled = try events.first {
            guard case .activityScheduled(let request) = try WorkflowEventCodec.decode($0).event else { return false }
            return request.activityID == "step-2"
        }
        return try #require(scheduled).revision.rawValue
    }

    @Test("Fork: before an activity: the new run runs it again under the new id, repeats no step of the prefix, records the signal; the old stream is untouched")
    func beforeAnActivity() throws {
        let store = InMemoryStore()
        let core = Self.core(store)
        let cut = try Self.completedThreeSteps(core, store)
        let oldStream = try Self.contents(store, .forWorkflow("steps/a"))
        let oldEvents = try store.readStream(.forWorkflow("steps/a"))

        try core.fork(
            workflowID: "steps/a", throughRevision: cut, newID: "steps/a-fork", signal: (name: "nudge", payload: "from alice"),
            now: Self.at(100))
        let dispatched = try Self.commit(core, store)
        // Break on purpose (seen failing): copying one event more (`events[...Int(throughRevision) + 1]`)
        // copies step-2's ActivityStarted: the attempt is then settled as interrupted and no
        // attempt 1 is dispatched now.
        #expect(dispatched.map(\.key.activityID) == ["step-2"], "\(dispatched)")
        let first = try #require(dispatched.first)
        #expect(first.key.workflowID == "steps/a-fork" && first.key.idempotencyKey == "steps/a-fork/step-2")
        #expect(first.attempt == 1, "step-2 had not started at the cut: its first attempt in the fork")

        // The new history: the prefix as it was (times included; the start names the origin),
        // then the signal, in the same step.
        let forked = try store.readStream(.forWorkflow("steps/a-fork"))
        let copies = try forked.prefix(Int(cut) + 1).map { try WorkflowEventCodec.decode($0) }
        let originals = try oldEvents.prefix(Int(cut) + 1).map { try WorkflowEventCodec.decode($0) }
        #expect(copies.map(\.at) == originals.map(\.at))
        #expect(Array(copies.dropFirst()) == Array(originals.dropFirst()))
        guard case .workflowStarted(let started) = copies.first?.event else {
            Issue.record("the fork does not begin with WorkflowStarted")
            return
        }
        #expect(started.forkedFrom == WorkflowForkOrigin(workflowID: "steps/a", run: 1, revision: cut))
        #expect(started.input == "3:0:" && started.type == StepsWorkflow.type && started.parentID == nil)
        let after = try forked.dropFirst(Int(cut) + 1).map { try WorkflowEventCodec.decode($0).event }
        #expect(after == [.signalReceived(name: "nudge", payload: "from alice"), .activityStarted(activityID: "step-2", attempt: 1)])
        #expect(core.record(of: "steps/a-fork")?.forkedFrom?.workflowID == "steps/a")

        // It runs to its end: step-3 follows, step-1 (completed in the prefix) never runs again.
        var pending = dispatched
        var calls: [String] = []
        while let dispatch = pending.first {
            pending.removeFirst()
            calls.append("\(dispatch.key.idempotencyKey)#\(dispatch.attempt)")
            core.activityFinished(dispatch, result: .success("again"), now: Self.at(200))
            pending += try Self.commit(core, store)
        }
        #expect(calls == ["steps/a-fork/step-2#1", "steps/a-fork/step-3#1"])
        #expect(try Self.decoded(store, "steps/a-fork").last == .workflowCompleted(output: "completed 3 steps"))
        // The stored snapshot is what a fold of the new stream gives.
        let snapshot = try #require(try store.state(forKey: StateKey.finished("steps/a-fork")))
        #expect(
            try core.snapshotEqualsFold(
                snapshot: snapshot, key: StateKey.finished("steps/a-fork"), events: store.readStream(.forWorkflow("steps/a-fork"))))
        #expect(try Self.contents(store, .forWorkflow("steps/a")) == oldStream, "the old stream is not written")
    }

    @Test("Fork: while an attempt ran: it is settled as interrupted and runs again as a new attempt under the new id")
    func whileAnAttemptRan() throws {
        let store = InMemoryStore()
        let core = Self.core(store)
        let scheduled = try Self.completedThreeSteps(core, store)
        let startedAt = scheduled + 1  // step-2's ActivityStarted
        guard case .activityStarted(let activityID, let attempt) = try Self.decoded(store, "steps/a")[Int(startedAt)] else {
            Issue.record("revision \(startedAt) is not step-2's start")
            return
        }
        #expect(activityID == "step-2" && attempt == 1)

        try core.fork(workflowID: "steps/a", throughRevision: startedAt, newID: "steps/b", signal: nil, now: Self.at(100))
        #expect(try Self.commit(core, store).isEmpty, "the interrupted attempt waits its backoff")
        let events = try Self.decoded(store, "steps/b")
        guard case .activityFailed(let failed) = events.last else {
            // Break on purpose (seen failing): without the settling loop the fork ends at the
            // copied ActivityStarted and step-2 never runs again.
            Issue.record("the attempt running at the cut is not settled: \(events.last.map { "\($0)" } ?? "no events")")
            return
        }
        #expect(failed.activityID == "step-2" && failed.attempt == 1)
        #expect(failed.failure.kind == ActivityFailure.interruptedKind && failed.failure.message.contains("forked from steps/a"))
        #expect(core.record(of: "steps/b")?.activities["step-2"]?.interruptions == 1)
        core.advance(now: Self.at(110))
        let again = try Self.commit(core, store)
        #expect(again.map { "\($0.key.idempotencyKey)#\($0.attempt)" } == ["steps/b/step-2#2"])
    }

    @Test("Fork with a signal: an approval that timed out, forked before its deadline fired with approve, applies and completes")
    func resetWithSignal() throws {
        let store = InMemoryStore()
        let core = Self.core(store)
        try core.start(workflowID: "approval/a", type: ApprovalWorkflow.type, input: "", now: Self.at(0))
        try Self.commit(core, store)
        core.advance(now: Self.at(3601))
        try Self.commit(core, store)
        let old = try Self.decoded(store, "approval/a")
        #expect(old.last == .workflowFailed(reason: "not approved within an hour"))
        let timerStarted = try #require(old.firstIndex { if case .timerStarted = $0 { true } else { false } })

        try core.fork(
            workflowID: "approval/a", throughRevision: UInt64(timerStarted), newID: "approval/a-2",
            signal: (name: EngineSignal.approve, payload: "bob"), now: Self.at(4000))
        let apply = try Self.commit(core, store)
        #expect(apply.map(\.key.idempotencyKey) == ["approval/a-2/apply"])
        // The deadline timer re-armed at its recorded time (past): it fires, and no longer matters.
        core.advance(now: Self.at(4000))
        try Self.commit(core, store)
        core.activityFinished(try #require(apply.first), result: .success("ok"), now: Self.at(4001))
        try Self.commit(core, store)
        let forked = try Self.decoded(store, "approval/a-2")
        #expect(forked.contains(.signalReceived(name: EngineSignal.approve, payload: "bob")))
        #expect(forked.contains { if case .timerFired(let id, _) = $0 { id == "approval-deadline" } else { false } })
        #expect(forked.last == .workflowCompleted(output: "applied"))
        #expect(old == (try Self.decoded(store, "approval/a")))
    }

    @Test("Fork: refusals: no stream, a revision past its end, a terminal event in the prefix, a running child, a bad or used id, a held unique key; each writes nothing")
    func refusals() throws {
        let store = InMemoryStore()
        let core = Self.core(store)
        _ = try Self.completedThreeSteps(core, store)
        try core.start(workflowID: "parent/p", type: ParentWorkflow.type, input: "parent/p", now: Self.at(10))
        try core.start(workflowID: "steps/held", type: StepsWorkflow.type, input: "1:0:", uniqueKey: "cluster/x", now: Self.at(10))
        try Self.commit(core, store)
        let last = UInt64(try store.readStream(.forWorkflow("steps/a")).count - 1)
        let parentEvents = try Self.decoded(store, "parent/p")
        let childRunning = UInt64(try #require(parentEvents.firstIndex { if case .childStarted = $0 { true } else { false } }))
        let before = store.readAll(after: .start).count

        func refused(
            _ workflowID: String, _ revision: UInt64, as newID: String, _ code: EngineError.Code, _ message: String,
            sourceLocation: SourceLocation = #_sourceLocation
        ) {
            do {
                try core.fork(workflowID: workflowID, throughRevision: revision, newID: newID, signal: nil, now: Self.at(20))
                Issue.record("fork of \(workflowID) at \(revision) as \(newID) was not refused", sourceLocation: sourceLocation)
            } catch let error as EngineError {
                #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
                #expect(error.message.contains(message), "\(error.message)", sourceLocation: sourceLocation)
            } catch {
                Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
            }
        }
        refused("nope", 0, as: "n", .invalidInput, "stream workflow/nope has no events")
        refused("steps/a", last + 1, as: "n", .invalidInput, "ends at revision \(last)")
        refused("steps/a", last, as: "n", .invalidInput, "(WorkflowCompleted) ends the run; fork from a revision before it")
        refused("parent/p", childRunning, as: "n", .invalidInput, "child workflow parent/p/child-1 was running")
        refused("steps/a", 0, as: "a@b", .invalidInput, "must be 1 to 220 bytes without @")
        refused("steps/a", 0, as: "", .invalidInput, "must be 1 to 220 bytes without @")
        refused("steps/a", 0, as: "steps/held", .workflowExists, "workflow steps/held exists already")
        refused("steps/a", 0, as: "steps/a", .workflowExists, "workflow steps/a exists already")
        refused("steps/held", 0, as: "n", .alreadyRunning, "unique key cluster/x is held by running workflow steps/held")
        #expect(core.record(of: "n") == nil)
        #expect(try Self.commit(core, store).isEmpty)
        #expect(store.readAll(after: .start).count == before, "a refused fork writes nothing")

        // Once the holder ended, its key is free: the fork takes it.
        let holder = try #require(core.record(of: "steps/held"))
        #expect(holder.activities["step-1"]?.phase == .running)
        core.cancel(workflowID: "steps/held", reason: "make room", now: Self.at(30))
        try Self.commit(core, store)
        try core.fork(workflowID: "steps/held", throughRevision: 0, newID: "steps/held-2", signal: nil, now: Self.at(31))
        #expect(try Self.commit(core, store).map(\.key.idempotencyKey) == ["steps/held-2/step-1"])
        #expect(try store.state(forKey: StateKey.unique("cluster/x")) == Array("steps/held-2".utf8))
    }

    @Test("Fork: inbox: the request round-trips, the engine's core acts on it once, and a refusal is a notice")
    func inbox() throws {
        let store = InMemoryStore()
        let core = Self.core(store)
        let cut = try Self.completedThreeSteps(core, store)
        let message = InboxMessage.fork(
            workflowID: "steps/a", run: 1, throughRevision: cut, newID: "steps/c", signal: "nudge", payload: "")
        let bare = InboxMessage.fork(workflowID: "steps/a", run: 3, throughRevision: 0, newID: "x", signal: nil, payload: "")
        let refused = InboxMessage.fork(workflowID: "steps/a", run: 1, throughRevision: 999, newID: "steps/d", signal: nil, payload: "")
        for (index, request) in [message, bare, refused].enumerated() {
            _ = try store.appendNow(
                [StreamAppend(
                    streamID: InboxMessage.stream, expectedRevision: .any,
                    events: [request.proposedEvent(id: EventID(high: 9, low: UInt64(index)), actor: "alice")])],
                stateWrites: [])
        }
        let inbox = store.readAll(after: .start).filter { $0.streamID == InboxMessage.stream }
        #expect(try inbox.map { try InboxMessage.decode($0) } == [message, bare, refused])
        #expect(inbox.first?.type == "WorkflowForkRequested")
        try core.handleInbox(inbox[0], now: Self.at(50))
        try core.handleInbox(inbox[0], now: Self.at(51))  // once per position
        try core.handleInbox(inbox[2], now: Self.at(52))
        var notices: [String] = []
        while let batch = core.takeBatch() {
            notices += batch.notices
            if !batch.streams.isEmpty || !batch.stateWrites.isEmpty { _ = try store.appendNow(batch.streams, stateWrites: batch.stateWrites) }
        }
        #expect(try Self.decoded(store, "steps/c").filter { $0 == .signalReceived(name: "nudge", payload: "") }.count == 1)
        #expect(notices.count == 1 && notices[0].contains("refused") && notices[0].contains("ends at revision"), "\(notices)")
        #expect(try store.streamExists(.forWorkflow("steps/d")) == false)
    }

    @Test("Fork: runtime: a fork request in the inbox, handled by the running engine, reads its prefix from the store and completes")
    func runtime() async throws {
        let store = InMemoryStore()
        let engine = try WorkflowEngine(
            store: store, workflows: sampleDefinitions, executors: RuntimeTests.quickWork, clock: VirtualClock())
        try await engine.start(workflowID: "steps/r", type: StepsWorkflow.type, input: "2:0:")
        let running = Task { try await engine.run() }
        try await RuntimeTests.eventually("steps/r to finish") { try RuntimeTests.finishedStatus(store, "steps/r") != nil }
        let old = try Self.contents(store, .forWorkflow("steps/r"))
        let cut = try #require(
            try Self.decoded(store, "steps/r").firstIndex { event in
                if case .activityScheduled(let request) = event { request.activityID == "step-2" } else { false }
            })
        let request = InboxMessage.fork(
            workflowID: "steps/r", run: 1, throughRevision: UInt64(cut), newID: "steps/r2", signal: "nudge", payload: "p")
        let appended = try await store.append(
            [StreamAppend(
                streamID: InboxMessage.stream, expectedRevision: .any,
                events: [request.proposedEvent(id: EventID(high: 5, low: 6), actor: "cli:alice")])], stateWrites: [])
        let position = appended.lastPosition.rawValue
        try await RuntimeTests.eventually("the engine to handle the request") {
            let loop = await engine.loopState
            return loop.inboxPosition >= position && !loop.pendingOutput && loop.commitLoopWaits
        }
        // Break on purpose (seen failing): without `core.readStream` set in WorkflowEngine.init
        // the request is refused ("given no stream reader") and steps/r2 never appears.
        try #require(try store.streamExists(.forWorkflow("steps/r2")), "the fork was not started")
        try await RuntimeTests.eventually("the fork to finish") { try RuntimeTests.finishedStatus(store, "steps/r2") != nil }
        #expect(try RuntimeTests.finishedStatus(store, "steps/r2") == .completed)
        let forked = try Self.decoded(store, "steps/r2")
        #expect(forked.contains(.signalReceived(name: "nudge", payload: "p")))
        #expect(forked.filter { if case .activityStarted = $0 { true } else { false } } == [
            .activityStarted(activityID: "step-1", attempt: 1), .activityStarted(activityID: "step-2", attempt: 1),
        ], "step-1's start is the copied one; step-2 ran once, under the new id")
        #expect(try Self.contents(store, .forWorkflow("steps/r")) == old)
        await engine.stop()
        try await running.value
    }

    @Test("Fork: a later run: forking run 2 of a continued workflow starts run 1 of the new id with the carried state")
    func laterRun() throws {
        let driver = CoreDriver()
        driver.core.readStream = { [store = driver.store] in try store.readStream($0) }
        try driver.startWatch("w", pollsPerRun: 3)
        for _ in 1...2 { try driver.pollNotReady("w") }
        try driver.finish("poll", of: "w", .success(Payload.encode(WatchWorkflow.Observation(ready: false))))
        let run2 = StreamID.forWorkflow("w", run: 2)
        guard case .workflowStarted(let old) = try #require(try driver.events(run2).first) else {
            Issue.record("run 2 does not begin with WorkflowStarted")
            return
        }
        try driver.core.fork(workflowID: "w", run: 2, throughRevision: 0, newID: "w-fork", signal: nil, now: driver.now)
        try driver.commit()
        guard case .workflowStarted(let start) = try #require(try driver.events(.forWorkflow("w-fork")).first) else {
            Issue.record("the fork does not begin with WorkflowStarted")
            return
        }
        #expect(start.run == 1 && start.carriedState == old.carriedState)
        #expect(start.forkedFrom == WorkflowForkOrigin(workflowID: "w", run: 2, revision: 0))
        #expect(try driver.report("w-fork")?.progress(as: WatchWorkflow.Progress.self).polls == 3)
        #expect(try driver.core.liveStateEqualsFold(of: "w-fork", events: driver.store.readStream(.forWorkflow("w-fork"))))
        #expect(try driver.store.readStream(.forWorkflow("w-fork", run: 2)).isEmpty)
    }
}
