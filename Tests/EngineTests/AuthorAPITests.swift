import Engine
import EngineTesting
import EventLog
import Foundation
import Testing

/// The author's API, decider by decider: given events, when decide, then commands.
@Suite struct AuthorDeciderTests {
    static let input = WatchWorkflow.Input(cluster: "cluster-a", pollSeconds: 10, pollsPerRun: 2)
    static let started = WorkflowEvent.workflowStarted(
        WorkflowStart(type: WatchWorkflow.type, deciderVersion: 1, input: Payload.encode(input)))
    static let planned = WorkflowEvent.domainEvent(DomainEvent(id: "plan", name: "plan", value: WatchWorkflow.plan))
    static let pollScheduled = WorkflowEvent.activityScheduled(WatchWorkflow.pollRequest(input))
    static func polled(ready: Bool) -> WorkflowEvent {
        .activityCompleted(activityID: "poll", attempt: 1, output: Payload.encode(WatchWorkflow.Observation(ready: ready)))
    }
    static func at(_ seconds: Int64) -> Timestamp { Timestamp(nanoseconds: 1_700_000_000_000_000_000 + seconds * 1_000_000_000) }
    static func fold(_ events: [WorkflowEvent]) throws -> WatchWorkflow.State {
        try WatchWorkflow.replay(events.enumerated().map { StampedWorkflowEvent($1, at: at(Int64($0))) })
    }

    @Test("Author API: typed input and domain event: the plan is recorded once, then the first poll")
    func typedInputAndDomainEvent() throws {
        #expect(WatchWorkflow.decide(try Self.fold([Self.started])) == [.recordEvent(DomainEvent(id: "plan", name: "plan", value: WatchWorkflow.plan))])
        let planned = try Self.fold([Self.started, Self.planned])
        #expect(planned.plan == WatchWorkflow.plan)
        #expect(planned.input == Self.input)
        #expect(WatchWorkflow.decide(planned) == [.runActivity(WatchWorkflow.pollRequest(Self.input))])
        #expect(WatchWorkflow.decide(try Self.fold([Self.started, Self.planned, Self.pollScheduled])) == [])
    }

    @Test("Author API: typed input: an input that does not decode names the field")
    func badInput() {
        let start = WorkflowEvent.workflowStarted(
            WorkflowStart(type: WatchWorkflow.type, deciderVersion: 1, input: #"{"cluster":"a","pollSeconds":"ten","pollsPerRun":1}"#))
        #expect {
            try Self.fold([start])
        } throws: { error in
            "\(error)".contains("workflow watch input") && "\(error)".contains("pollSeconds")
        }
    }

    @Test("Author API: stored format: an untyped plain-text payload still reads as a String")
    func plainTextPayload() throws {
        #expect(try Payload.decode(String.self, from: "2:0:", field: "x") == "2:0:")
        #expect(try Payload.decode(String.self, from: Payload.encode("\"quoted\""), field: "x") == "\"quoted\"")
        #expect(Payload.encode("plain") == "plain")
        // Old untyped histories of the sample workflows still fold (see EventCodecTests' fixture).
        #expect(try StepsWorkflow.replay([DeciderTests.started]).steps == 2)
    }

    @Test("Author API: recorded time: the time of the ready poll reaches evolve as readySince")
    func recordedTime() throws {
        let state = try Self.fold([Self.started, Self.planned, Self.pollScheduled, Self.polled(ready: true)])
        #expect(state.readySince == Self.at(3))
        #expect(WatchWorkflow.decide(state) == [.waitForSignal(name: "approve", timeout: .seconds(3600))])
    }

    @Test("Author API: poll loop: not ready starts the wait timer once; its firing polls again")
    func pollLoop() throws {
        let afterPoll = [Self.started, Self.planned, Self.pollScheduled, Self.polled(ready: false)]
        #expect(WatchWorkflow.decide(try Self.fold(afterPoll)) == [.startTimer(id: "poll-wait", after: .seconds(10))])
        let waiting = afterPoll + [.timerStarted(timerID: "poll-wait", fireAt: Self.at(20))]
        #expect(WatchWorkflow.decide(try Self.fold(waiting)) == [])
        let fired = waiting + [.timerFired(timerID: "poll-wait", firedAt: Self.at(20))]
        #expect(WatchWorkflow.decide(try Self.fold(fired)) == [.runActivity(WatchWorkflow.pollRequest(Self.input))])
    }

    @Test("Author API: cancel a timer: poll-now cancels the wait, the cancellation polls")
    func cancelTimer() throws {
        let waiting = [
            Self.started, Self.planned, Self.pollScheduled, Self.polled(ready: false),
            .timerStarted(timerID: "poll-wait", fireAt: Self.at(20)), .signalReceived(name: "poll-now", payload: ""),
        ]
        #expect(WatchWorkflow.decide(try Self.fold(waiting)) == [.cancelTimer(id: "poll-wait")])
        let cancelled = waiting + [.timerCancelled(timerID: "poll-wait")]
        #expect(WatchWorkflow.decide(try Self.fold(cancelled)) == [.runActivity(WatchWorkflow.pollRequest(Self.input))])
    }

    @Test("Author API: signal with timeout: the typed approval completes with a typed output; the timeout fails")
    func signalWithTimeout() throws {
        let ready = [Self.started, Self.planned, Self.pollScheduled, Self.polled(ready: true)]
        let timerID = WorkflowCommand.signalTimeoutTimerID("approve")
        let waiting = ready + [.timerStarted(timerID: timerID, fireAt: Self.at(3603))]
        #expect(WatchWorkflow.decide(try Self.fold(waiting)) == [.waitForSignal(name: "approve", timeout: .seconds(3600))])
        let approved = waiting + [.signalReceived(name: "approve", payload: Payload.encode(WatchWorkflow.Approval(by: "alice")))]
        #expect(
            WatchWorkflow.decide(try Self.fold(approved))
                == [.complete(WatchWorkflow.Output(approvedBy: "alice", polls: 1, readySince: Self.at(3)))])
        let late = waiting + [.timerFired(timerID: timerID, firedAt: Self.at(3603))]
        #expect(WatchWorkflow.decide(try Self.fold(late)) == [.fail(reason: "not approved within an hour")])
    }

    @Test("Author API: continue-as-new: after pollsPerRun polls the run continues as new")
    func continueAsNew() throws {
        let secondPoll: [WorkflowEvent] = [
            Self.started, Self.planned, Self.pollScheduled, Self.polled(ready: false),
            .timerStarted(timerID: "poll-wait", fireAt: Self.at(20)), .timerFired(timerID: "poll-wait", firedAt: Self.at(20)),
            Self.pollScheduled, Self.polled(ready: false),
        ]
        let state = try Self.fold(secondPoll)
        #expect(WatchWorkflow.decide(state) == [.continueAsNew])
        // The next run starts from the carried state: the count of this run resets, the total stays.
        let carried = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
        let next = try WatchWorkflow.evolve(
            state,
            .workflowStarted(WorkflowStart(type: WatchWorkflow.type, deciderVersion: 1, input: Payload.encode(Self.input), run: 2, carriedState: carried)),
            at: Self.at(30))
        #expect(next.polls == 2 && next.pollsThisRun == 0)
        #expect(WatchWorkflow.decide(next) == [.startTimer(id: "poll-wait", after: .seconds(10))])
    }

    @Test("Author API: cancellation: the decider sees it and runs its cleanup step once")
    func cleanupOnCancel() throws {
        let cancelled = [Self.started, Self.planned, Self.pollScheduled, .cancelRequested(reason: "operator")]
        #expect(WatchWorkflow.decide(try Self.fold(cancelled)) == [.runActivity(WatchWorkflow.cleanupRequest)])
        #expect(WatchWorkflow.decide(try Self.fold(cancelled + [.activityScheduled(WatchWorkflow.cleanupRequest)])) == [])
    }

    @Test("Author API: manual retry: a stuck poll waits; the retry request unsticks it")
    func manualRetry() throws {
        let failed = ActivityAttemptFailure(
            activityID: "poll", attempt: 1, failure: ActivityFailure(kind: "serverError", message: "503"), nextRetryAt: nil)
        let stuck = [Self.started, Self.planned, Self.pollScheduled, .activityFailed(failed)]
        let state = try Self.fold(stuck)
        #expect(state.stuck == "503")
        #expect(WatchWorkflow.decide(state) == [])
        #expect(WatchWorkflow.progress(state)?.phase == "stuck")
        let retried = try Self.fold(stuck + [.activityRetryRequested(activityID: "poll", by: "alice")])
        #expect(retried.stuck == nil && retried.polling)
        #expect(WatchWorkflow.decide(retried) == [])
    }

    @Test("Author API: children: a parent signals its child once and cancels it")
    func steering() throws {
        let start = WorkflowEvent.workflowStarted(WorkflowStart(type: SteeringWorkflow.type, deciderVersion: 1, input: "s"))
        let running: [WorkflowEvent] = [start, .childStarted(childID: "s/watch", type: WatchWorkflow.type)]
        #expect(try SteeringWorkflow.decide(SteeringWorkflow.replay(running)) == [])
        let approve = running + [.signalReceived(name: "approve-child", payload: Payload.encode(WatchWorkflow.Approval(by: "bob")))]
        #expect(
            try SteeringWorkflow.decide(SteeringWorkflow.replay(approve))
                == [.signalChild(childID: "s/watch", name: "approve", WatchWorkflow.Approval(by: "bob"))])
        #expect(try SteeringWorkflow.decide(SteeringWorkflow.replay(approve + [.childSignalled(childID: "s/watch", name: "approve")])) == [])
        let abort = running + [.signalReceived(name: "abort", payload: "wrong cluster")]
        #expect(try SteeringWorkflow.decide(SteeringWorkflow.replay(abort)) == [.cancelChild(childID: "s/watch", reason: "wrong cluster")])
    }
}

/// Drives an ``EngineCore`` by hand on a virtual clock and the in-memory store.
final class CoreDriver {
    let clock = VirtualClock()
    let store: InMemoryStore
    let core: EngineCore
    var dispatches: [ActivityDispatch] = []

    init() {
        let store = InMemoryStore(clock: clock)
        self.store = store
        core = EngineCore(workflows: authorDefinitions, options: EngineCore.Options(seed: 7)) { workflowID in
            (try? store.streamExists(.forWorkflow(workflowID))) ?? true
        }
    }

    var now: Timestamp { clock.now() }

    func commit() throws {
        while let batch = core.takeBatch() {
            if !batch.streams.isEmpty { try store.appendNow(batch.streams, stateWrites: batch.stateWrites) }
            dispatches += batch.dispatches
        }
    }

    /// Takes the one open dispatch of `activityID` in `workflowID`.
    func take(_ activityID: String, of workflowID: String) throws -> ActivityDispatch {
        let index = try #require(dispatches.firstIndex { $0.key.workflowID == workflowID && $0.key.activityID == activityID })
        return dispatches.remove(at: index)
    }

    func finish(_ activityID: String, of workflowID: String, _ result: Result<String, ActivityFailure>) throws {
        core.activityFinished(try take(activityID, of: workflowID), result: result, now: now)
        try commit()
    }

    func advance(by duration: Duration) throws {
        clock.advance(by: duration)
        core.advance(now: now)
        try commit()
    }

    func types(_ stream: StreamID) throws -> [String] { try store.readStream(stream).map(\.type) }

    func events(_ stream: StreamID) throws -> [WorkflowEvent] {
        try store.readStream(stream).map { try WorkflowEventCodec.decode($0).event }
    }

    func report(_ workflowID: String) throws -> WorkflowStatusReport? {
        try WorkflowStatusReport.read(workflowID: workflowID, state: store.state(forKey:))
    }

    func startWatch(_ workflowID: String, pollsPerRun: Int = 1_000) throws {
        let input = WatchWorkflow.Input(cluster: workflowID, pollSeconds: 10, pollsPerRun: pollsPerRun)
        try core.start(workflowID: workflowID, type: WatchWorkflow.type, input: Payload.encode(input), now: now)
        try commit()
    }

    /// One poll answered not ready, then the wait timer's firing.
    func pollNotReady(_ workflowID: String) throws {
        try finish("poll", of: workflowID, .success(Payload.encode(WatchWorkflow.Observation(ready: false))))
        try advance(by: .seconds(10))
    }
}

/// The author's API through the engine core: what reaches the log, the state tables and
/// the executors.
@Suite struct AuthorEngineTests {
    @Test("Author API: engine: a start whose typed input does not decode is refused, naming the field, and writes nothing")
    func refusedInput() throws {
        let driver = CoreDriver()
        #expect {
            try driver.core.start(workflowID: "w", type: WatchWorkflow.type, input: #"{"cluster":"a"}"#, now: driver.now)
        } throws: { error in
            (error as? EngineError)?.code == .invalidInput && "\(error)".contains("workflow w") && "\(error)".contains("pollSeconds")
        }
        #expect(driver.core.takeBatch() == nil)
    }

    @Test("Author API: engine: a poll loop of 200 polls keeps record and snapshot bounded; approval completes typed")
    func boundedPollLoop() throws {
        let driver = CoreDriver()
        try driver.startWatch("w")
        #expect(try driver.types(.forWorkflow("w")).prefix(2) == ["WorkflowStarted", "DomainEventRecorded"])
        var sizeAfter10 = 0
        for poll in 1...200 {
            try driver.pollNotReady("w")
            if poll == 10 { sizeAfter10 = try #require(try driver.store.state(forKey: StateKey.running("w"))).count }
        }
        let snapshot = try #require(try driver.store.state(forKey: StateKey.running("w")))
        let record = try #require(driver.core.record(of: "w"))
        // Broken on purpose once: with completed repeatable activities kept in
        // `completedActivities`, the second poll was never scheduled (the id looked done)
        // and this test failed at its first `take`; a record that keeps every poll could
        // not both poll again and stay bounded.
        #expect(snapshot.count - sizeAfter10 <= 24, "snapshot grew from \(sizeAfter10) to \(snapshot.count) bytes")
        #expect(record.completedActivities.isEmpty && record.timers.count <= 1 && record.activities.count <= 1)
        // The history keeps every poll: scheduled, started, completed, timer started, fired.
        #expect(try driver.types(.forWorkflow("w")).count >= 200 * 5)

        let readyAt = driver.now
        try driver.finish("poll", of: "w", .success(Payload.encode(WatchWorkflow.Observation(ready: true))))
        let progress = try #require(try driver.report("w")).progress(as: WatchWorkflow.Progress.self)
        #expect(progress == WatchWorkflow.Progress(phase: "awaiting approval", polls: 201, readySince: readyAt))
        #expect(driver.core.record(of: "w")?.timers[WorkflowCommand.signalTimeoutTimerID("approve")] != nil)
        driver.core.signal(workflowID: "w", name: "approve", payload: Payload.encode(WatchWorkflow.Approval(by: "alice")), now: driver.now)
        try driver.commit()
        let tail = try driver.types(.forWorkflow("w")).suffix(3)
        #expect(Array(tail) == ["SignalReceived", "TimerCancelled", "WorkflowCompleted"])
        let report = try #require(try driver.report("w"))
        #expect(report.record.status == .completed)
        let output = try Payload.decode(WatchWorkflow.Output.self, from: try #require(report.record.result), field: "output")
        #expect(output == WatchWorkflow.Output(approvedBy: "alice", polls: 201, readySince: readyAt))
    }

    @Test("Author API: engine: an approval that does not come in time fails the workflow")
    func signalTimeout() throws {
        let driver = CoreDriver()
        try driver.startWatch("w")
        try driver.finish("poll", of: "w", .success(Payload.encode(WatchWorkflow.Observation(ready: true))))
        try driver.advance(by: .seconds(3599))
        #expect(driver.core.record(of: "w") != nil)
        try driver.advance(by: .seconds(1))
        #expect(try driver.report("w")?.record.status == .failed)
        #expect(try driver.report("w")?.record.result == "not approved within an hour")
    }

    @Test("Author API: engine: continue-as-new starts run 2 in its own stream with the state carried; the old run stays")
    func continueAsNew() throws {
        let driver = CoreDriver()
        try driver.startWatch("w", pollsPerRun: 3)
        for _ in 1...2 { try driver.pollNotReady("w") }
        try driver.finish("poll", of: "w", .success(Payload.encode(WatchWorkflow.Observation(ready: false))))
        #expect(try driver.types(.forWorkflow("w")).last == "WorkflowContinuedAsNew")
        let run2 = StreamID.forWorkflow("w", run: 2)
        #expect(run2.rawValue == "workflow/w@run2")
        guard case .workflowStarted(let start) = try #require(try driver.events(run2).first) else {
            Issue.record("run 2 does not begin with WorkflowStarted")
            return
        }
        #expect(start.run == 2 && start.carriedState != nil)
        #expect(driver.core.record(of: "w")?.runNumber == 2)
        #expect(try driver.core.liveStateEqualsFold(of: "w", events: driver.store.readStream(run2)))
        #expect(try driver.report("w")?.progress(as: WatchWorkflow.Progress.self).polls == 3)
        // The new run goes on polling.
        try driver.advance(by: .seconds(10))
        #expect(driver.dispatches.contains { $0.key.workflowID == "w" && $0.key.activityID == "poll" })
        #expect(try driver.core.liveStateEqualsFold(of: "w", events: driver.store.readStream(run2)))
    }

    @Test("Author API: engine: a cancelled workflow runs its cleanup, then ends cancelled with its timer cancelled")
    func cancelWithCleanup() throws {
        let driver = CoreDriver()
        try driver.startWatch("w")
        try driver.finish("poll", of: "w", .success(Payload.encode(WatchWorkflow.Observation(ready: false))))
        driver.core.cancel(workflowID: "w", reason: "operator", now: driver.now)
        try driver.commit()
        #expect(driver.core.record(of: "w")?.cancelRequested == true)
        try driver.finish("cleanup", of: "w", .success("cleaned"))
        #expect(try driver.report("w")?.record.status == .cancelled)
        #expect(try driver.types(.forWorkflow("w")).suffix(4) == ["ActivityStarted", "ActivityCompleted", "TimerCancelled", "WorkflowCancelled"])
    }

    @Test("Author API: engine: pause reaches the child; the parent signals it and cancels it, and the child cleans up")
    func children() throws {
        let driver = CoreDriver()
        try driver.core.start(workflowID: "s", type: SteeringWorkflow.type, input: "s", now: driver.now)
        try driver.commit()
        driver.core.signal(workflowID: "s", name: EngineSignal.pause, payload: "", now: driver.now)
        try driver.commit()
        #expect(driver.core.record(of: "s/watch")?.paused == true)
        driver.core.signal(workflowID: "s", name: EngineSignal.resume, payload: "", now: driver.now)
        try driver.commit()
        #expect(driver.core.record(of: "s/watch")?.paused == false)
        driver.core.signal(workflowID: "s", name: "approve-child", payload: Payload.encode(WatchWorkflow.Approval(by: "bob")), now: driver.now)
        try driver.commit()
        #expect(try driver.events(.forWorkflow("s")).contains(.childSignalled(childID: "s/watch", name: "approve")))
        #expect(try driver.events(.forWorkflow("s/watch")).contains(.signalReceived(name: "approve", payload: #"{"by":"bob"}"#)))
        driver.core.signal(workflowID: "s", name: "abort", payload: "wrong cluster", now: driver.now)
        try driver.commit()
        #expect(driver.core.record(of: "s/watch")?.cancelRequested == true)
        try driver.finish("poll", of: "s/watch", .success(Payload.encode(WatchWorkflow.Observation(ready: false))))
        try driver.finish("cleanup", of: "s/watch", .success(""))
        #expect(try driver.report("s/watch")?.record.status == .cancelled)
        let parent = try #require(try driver.report("s"))
        #expect(parent.record.status == .failed)
        #expect(parent.record.result?.contains("cancelled: wrong cluster") == true)
    }

    @Test("Author API: engine: a manual retry of a failed poll runs it again as a new attempt, in history")
    func manualRetry() throws {
        let driver = CoreDriver()
        try driver.startWatch("w")
        try driver.finish("poll", of: "w", .failure(ActivityFailure(kind: "serverError", message: "503")))
        #expect(driver.core.record(of: "w")?.activities["poll"]?.phase == .failed)
        #expect(try driver.report("w")?.progress(as: WatchWorkflow.Progress.self).phase == "stuck")
        #expect(driver.core.signal(workflowID: "w", name: EngineSignal.retry, payload: "poll", now: driver.now))
        try driver.commit()
        let dispatch = try driver.take("poll", of: "w")
        #expect(dispatch.attempt == 2)
        #expect(try driver.types(.forWorkflow("w")).suffix(2) == ["ActivityRetryRequested", "ActivityStarted"])
        driver.core.activityFinished(dispatch, result: .success(Payload.encode(WatchWorkflow.Observation(ready: true))), now: driver.now)
        try driver.commit()
        #expect(try driver.report("w")?.progress(as: WatchWorkflow.Progress.self).phase == "awaiting approval")
        // Nothing failed is left to retry.
        #expect(!driver.core.retryActivity(workflowID: "w", activityID: "poll", by: "alice", now: driver.now))
    }

    @Test("Author API: engine: an output evolve cannot decode quarantines that workflow only")
    func quarantine() throws {
        let driver = CoreDriver()
        try driver.startWatch("bad")
        try driver.startWatch("good")
        try driver.finish("poll", of: "bad", .success("not json"))
        let report = try #require(try driver.report("bad"))
        #expect(report.view.status == .quarantined)
        #expect(report.view.waitingOn.contains("activity poll output"))
        try driver.advance(by: .seconds(10))
        #expect(!driver.dispatches.contains { $0.key.workflowID == "bad" })
        try driver.pollNotReady("good")
        #expect(driver.dispatches.contains { $0.key.workflowID == "good" })
    }

    @Test("Author API: query: a reader without the engine reads status and progress from the log's state tables")
    func queryWithoutEngine() async throws {
        let directory = try CrashTests.temporaryDirectory("author-query")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try EventLog(directory: directory)
        let clock = VirtualClock()
        let core = EngineCore(workflows: authorDefinitions, options: EngineCore.Options(seed: 3)) { _ in false }
        try core.start(
            workflowID: "w", type: WatchWorkflow.type,
            input: Payload.encode(WatchWorkflow.Input(cluster: "a", pollSeconds: 10, pollsPerRun: 10)), now: clock.now())
        let batch = try #require(core.takeBatch())
        _ = try await log.append(batch.streams, stateWrites: batch.stateWrites)
        await log.close()
        // The engine is gone; a reader opens the directory as the CLI does.
        let reader = try EventLogReader(directory: directory)
        let report = try #require(try WorkflowStatusReport.read(workflowID: "w", state: reader.state(forKey:)))
        #expect(report.record.status == .running)
        #expect(report.view.waitingOn == "activity poll (attempt 1)")
        #expect(try report.progress(as: WatchWorkflow.Progress.self) == WatchWorkflow.Progress(phase: "polling", polls: 0, readySince: nil))
        #expect(try WorkflowStatusReport.read(workflowID: "unknown", state: reader.state(forKey:)) == nil)
    }
}
