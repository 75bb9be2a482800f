import Collections
import CapstanSupport
import Engine
import EngineTesting
import EventLog
import Foundation

/// One deterministic simulation run: the engine core on a virtual clock against simulated
/// activities, with failures, timeouts and crashes all drawn from one seed.
///
/// A crash drops the core (its pending batch, its in-flight executors) and rebuilds it from
/// the in-memory store, as a restarted process rebuilds from the log.
struct SimulationRun {
    enum Outcome { case success, retryableFailure, permanentFailure, hang }

    struct PendingReturn: Comparable {
        var at: Timestamp
        var sequence: Int
        var dispatch: ActivityDispatch
        var outcome: Outcome
        var generation: Int
        static func == (lhs: Self, rhs: Self) -> Bool { lhs.sequence == rhs.sequence }
        static func < (lhs: Self, rhs: Self) -> Bool { (lhs.at, lhs.sequence) < (rhs.at, rhs.sequence) }
    }

    struct PlannedSignal: Comparable {
        var at: Timestamp
        var sequence: Int
        var workflowID: String
        var name: String
        static func == (lhs: Self, rhs: Self) -> Bool { lhs.sequence == rhs.sequence }
        static func < (lhs: Self, rhs: Self) -> Bool { (lhs.at, lhs.sequence) < (rhs.at, rhs.sequence) }
    }

    let seed: UInt64
    var random: SplitMix64
    let clock = VirtualClock(start: Timestamp(nanoseconds: 1_700_000_000_000_000_000))
    let store: InMemoryStore
    var core: EngineCore
    var returns = Heap<PendingReturn>()
    var signals = Heap<PlannedSignal>()
    var sequence = 0
    var generation = 0
    var crashes = 0
    var effects: [String: Int] = [:]
    var violations: [String] = []
    var trace: [String] = []
    let verbose: Bool

    // Fault rates, drawn from the seed.
    let failureRate: Double
    let permanentRate: Double
    let hangRate: Double
    let crashRate: Double
    let maxCrashes: Int

    init(seed: UInt64, verbose: Bool = false) {
        self.seed = seed
        self.verbose = verbose
        var random = SplitMix64(seed: seed)
        failureRate = Double(random.next() % 30) / 100
        permanentRate = Double(random.next() % 4) / 100
        hangRate = Double(random.next() % 10) / 100
        crashRate = Double(random.next() % 6) / 100
        maxCrashes = Int(random.next() % 5)
        self.random = random
        store = InMemoryStore(clock: clock)
        core = Self.makeCore(store: store, seed: seed)
    }

    static func makeCore(store: InMemoryStore, seed: UInt64) -> EngineCore {
        EngineCore(
            workflows: sampleDefinitions, options: EngineCore.Options(globalConcurrency: 3, perKeyConcurrency: 1, seed: seed)
        ) { workflowID in (try? store.streamExists(.forWorkflow(workflowID))) ?? true }
    }

    var now: Timestamp { clock.now() }

    mutating func chance(_ probability: Double) -> Bool {
        Double(random.next() % 10_000) / 10_000 < probability
    }

    mutating func milliseconds(_ range: ClosedRange<Int64>) -> Duration {
        .milliseconds(range.lowerBound + Int64(random.next() % UInt64(range.upperBound - range.lowerBound + 1)))
    }

    mutating func note(_ text: @autoclosure () -> String) {
        if verbose { trace.append("[\(now.nanoseconds - 1_700_000_000_000_000_000)ns] \(text())") }
    }

    mutating func violation(_ text: String) {
        violations.append(text)
    }

    // MARK: run

    /// Runs to the end and returns the violated invariants (empty when all hold).
    mutating func run() -> [String] {
        startWorkflows()
        // A start is acknowledged once it is durable: the first commit does not crash.
        commit(crashes: false)
        var steps = 0
        while true {
            steps += 1
            if steps > 50_000 {
                violation("no end after 50000 steps; running: \(core.runningWorkflowIDs)")
                break
            }
            commit()
            deliverInbox()
            if core.runningWorkflowIDs.isEmpty, returnsOfThisGeneration == 0 {
                commit()
                if core.runningWorkflowIDs.isEmpty { break }
            }
            let candidates = [returns.min?.at, signals.min?.at, core.nextWakeup].compactMap { $0 }
            guard let next = candidates.min() else {
                violation("stuck: nothing scheduled while workflows run: \(core.runningWorkflowIDs)")
                break
            }
            if next > now { clock.advance(by: next.duration(since: now)) }
            if let due = returns.min, due.at <= now {
                _ = returns.popMin()
                handleReturn(due)
            } else if let due = signals.min, due.at <= now {
                _ = signals.popMin()
                sendSignal(due)
            } else {
                core.advance(now: now)
            }
        }
        checkFinalInvariants()
        return violations
    }

    var returnsOfThisGeneration: Int { returns.unordered.filter { $0.generation == generation }.count }

    mutating func startWorkflows() {
        let stepsCount = 3 + Int(random.next() % 4)
        let keys = ["cluster-a", "cluster-b", ""]
        for index in 0..<stepsCount {
            let steps = 1 + random.next() % 4
            let timer = random.next() % 2 == 0 ? 0 : 1 + random.next() % 3_000
            let key = keys[Int(random.next() % 3)]
            startChecked("steps/\(index)", type: StepsWorkflow.type, input: "\(steps):\(timer):\(key)", uniqueKey: "steps-key/\(index)")
        }
        startChecked("approval/1", type: ApprovalWorkflow.type, input: "", uniqueKey: nil)
        startChecked("parent/1", type: ParentWorkflow.type, input: "parent/1", uniqueKey: nil)

        // Uniqueness: a second run with a held key, and a reused id, are refused.
        do {
            try core.start(workflowID: "steps/dup", type: StepsWorkflow.type, input: "1:0:", uniqueKey: "steps-key/0", now: now)
            violation("a second workflow with unique key steps-key/0 started")
        } catch let error as EngineError {
            if error.code != .alreadyRunning || !error.message.contains("steps/0") {
                violation("duplicate unique key: wrong error \(error)")
            }
        } catch { violation("duplicate unique key: unexpected error \(error)") }
        do {
            try core.start(workflowID: "steps/0", type: StepsWorkflow.type, input: "1:0:", now: now)
            violation("workflow id steps/0 was reused")
        } catch let error as EngineError {
            if error.code != .workflowExists { violation("reused id: wrong error \(error)") }
        } catch { violation("reused id: unexpected error \(error)") }

        if chance(0.8) { plan("approval/1", EngineSignal.approve, after: milliseconds(0...10_000)) }
        if chance(0.3) {
            let pauseAt = milliseconds(0...3_000)
            plan("steps/0", EngineSignal.pause, after: pauseAt)
            plan("steps/0", EngineSignal.resume, after: pauseAt + milliseconds(1...5_000))
        }
        if chance(0.2) { plan("parent/1", EngineSignal.cancel, after: milliseconds(0...4_000)) }
        if chance(0.2) { plan("steps/1", "note", after: milliseconds(0...4_000)) }
    }

    mutating func startChecked(_ workflowID: String, type: String, input: String, uniqueKey: String?) {
        do { try core.start(workflowID: workflowID, type: type, input: input, uniqueKey: uniqueKey, now: now) } catch {
            violation("start \(workflowID) failed: \(error)")
        }
    }

    mutating func plan(_ workflowID: String, _ name: String, after: Duration) {
        sequence += 1
        signals.insert(PlannedSignal(at: now + after, sequence: sequence, workflowID: workflowID, name: name))
    }

    /// Another process appends to the inbox stream; the engine sees it through its tail.
    mutating func sendSignal(_ signal: PlannedSignal) {
        note("signal \(signal.name) to \(signal.workflowID)")
        let event = InboxMessage.signal(workflowID: signal.workflowID, name: signal.name, payload: "sim")
            .proposedEvent(id: EventID(high: random.next(), low: random.next()), actor: "cli:sim")
        do {
            try store.appendNow([StreamAppend(streamID: InboxMessage.stream, expectedRevision: .any, events: [event])], stateWrites: [])
        } catch { violation("inbox append failed: \(error)") }
        deliverInbox()
    }

    mutating func deliverInbox() {
        for event in store.readAll(after: core.inboxPosition) where event.streamID == InboxMessage.stream {
            core.handleInbox(event, now: now)
        }
    }

    // MARK: commits and calls

    mutating func commit(crashes: Bool = true) {
        guard let batch = core.takeBatch() else { return }
        if crashes, maybeCrash("before commit") { return }
        if !batch.streams.isEmpty {
            do { try store.appendNow(batch.streams, stateWrites: batch.stateWrites) } catch {
                violation("append failed: \(error)")
                return
            }
            checkTimersCommitted(batch)
        }
        if crashes, maybeCrash("after commit, before calls") { return }
        for dispatch in batch.dispatches { call(dispatch) }
    }

    mutating func checkTimersCommitted(_ batch: EngineBatch) {
        for stream in batch.streams {
            for event in stream.events where event.type == "TimerFired" {
                guard let fired = try? WorkflowEventCodec.decode(type: event.type, schemaVersion: event.schemaVersion, payload: event.payload, context: "sim"),
                    case .timerFired(let timerID, let firedAt) = fired.event
                else { continue }
                let history = (try? store.readStream(stream.streamID)) ?? []
                for started in history where started.type == "TimerStarted" {
                    guard let decoded = try? WorkflowEventCodec.decode(started),
                        case .timerStarted(timerID, let fireAt) = decoded.event
                    else { continue }
                    if firedAt < fireAt || now < fireAt {
                        violation("timer \(timerID) of \(stream.streamID) fired early: at \(firedAt), due \(fireAt)")
                    }
                }
            }
        }
    }

    mutating func call(_ dispatch: ActivityDispatch) {
        guard core.isInFlight(dispatch) else { return }
        let history = (try? store.readStream(.forWorkflow(dispatch.key.workflowID))) ?? []
        if let last = history.last, ["WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled"].contains(last.type) {
            violation("activity \(dispatch.key.idempotencyKey) called for finished workflow")
        }
        let completed = history.contains { event in
            guard event.type == "ActivityCompleted", let decoded = try? WorkflowEventCodec.decode(event),
                case .activityCompleted(let activityID, _, _) = decoded.event
            else { return false }
            return activityID == dispatch.key.activityID
        }
        if completed { violation("activity \(dispatch.key.idempotencyKey) called after its completion was durable") }
        let roll = random.next() % 10_000
        let outcome: Outcome
        if Double(roll) / 10_000 < hangRate {
            outcome = .hang
        } else if Double(roll) / 10_000 < hangRate + permanentRate {
            outcome = .permanentFailure
        } else if Double(roll) / 10_000 < hangRate + permanentRate + failureRate {
            outcome = .retryableFailure
        } else {
            outcome = .success
        }
        let latency = outcome == .hang ? milliseconds(6_000...20_000) : milliseconds(1...2_000)
        note("call \(dispatch.key.idempotencyKey) attempt \(dispatch.attempt): \(outcome) in \(latency)")
        sequence += 1
        returns.insert(PendingReturn(at: now + latency, sequence: sequence, dispatch: dispatch, outcome: outcome, generation: generation))
    }

    mutating func handleReturn(_ pending: PendingReturn) {
        // An executor of a crashed process died with it.
        guard pending.generation == generation else { return }
        let key = pending.dispatch.key.idempotencyKey
        let result: Result<String, ActivityFailure>
        switch pending.outcome {
        case .success, .hang:
            // The executor's idempotency: the effect is applied once per key, checked first.
            if effects[key] == nil { effects[key] = 1 }
            result = .success("done \(key)")
        case .retryableFailure:
            result = .failure(ActivityFailure(kind: "unavailable", message: "simulated 503"))
        case .permanentFailure:
            result = .failure(ActivityFailure(kind: "invalid", message: "simulated invalid input", retryable: false))
        }
        if maybeCrash("after call, before completion") { return }
        core.activityFinished(pending.dispatch, result: result, now: now)
    }

    mutating func maybeCrash(_ point: String) -> Bool {
        guard crashes < maxCrashes, chance(crashRate) else { return false }
        crashes += 1
        generation += 1
        note("crash \(point)")
        checkLiveEqualsFold(when: "before crash \(crashes) (\(point))")
        core = Self.makeCore(store: store, seed: seed &+ UInt64(crashes))
        do {
            let snapshots = try store.stateEntries(withPrefix: StateKey.runningPrefix)
            let inbox = try store.state(forKey: StateKey.inboxPosition)
                .flatMap { UInt64(String(decoding: $0, as: UTF8.self)) }.map { LogPosition($0) } ?? .start
            try core.recover(snapshots: snapshots, inboxPosition: inbox, now: now)
        } catch {
            violation("recovery failed: \(error)")
        }
        checkLiveEqualsFold(when: "after recovery \(crashes)")
        return true
    }

    // MARK: invariants

    /// The state folded from the log equals the live state (for committed workflows whose
    /// events are all durable: right after recovery, or when nothing is pending).
    mutating func checkLiveEqualsFold(when: String) {
        for workflowID in core.runningWorkflowIDs {
            guard let events = try? store.readStream(.forWorkflow(workflowID)), !events.isEmpty else { continue }
            guard let record = core.record(of: workflowID), record.lastRevision == events.last!.revision.rawValue else { continue }
            do {
                if try !core.liveStateEqualsFold(of: workflowID, events: events) {
                    violation("\(when): live state of \(workflowID) differs from the fold of its log")
                }
            } catch { violation("\(when): fold of \(workflowID) failed: \(error)") }
        }
    }

    mutating func checkFinalInvariants() {
        let all = store.readAll(after: .start)
        let workflowStreams = Set(all.map(\.streamID).filter { $0.rawValue.hasPrefix("workflow/") })
        var completions: [String: Int] = [:]
        for streamID in workflowStreams.sorted() {
            let events = (try? store.readStream(streamID)) ?? []
            let workflowID = String(streamID.rawValue.dropFirst("workflow/".count))
            guard let last = events.last, ["WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled"].contains(last.type) else {
                violation("workflow \(workflowID) did not reach a terminal state (last event \(events.last?.type ?? "none"))")
                continue
            }
            var scheduled: Set<String> = []
            var maxAttempts: [String: Int] = [:]
            for event in events {
                guard let decoded = try? WorkflowEventCodec.decode(event) else {
                    violation("\(streamID) revision \(event.revision) does not decode")
                    continue
                }
                switch decoded.event {
                case .activityScheduled(let request):
                    scheduled.insert(request.activityID)
                    maxAttempts[request.activityID] = request.retry.maxAttempts
                case .activityStarted(let activityID, let attempt):
                    if attempt > maxAttempts[activityID, default: 0] {
                        violation("\(workflowID)/\(activityID) started attempt \(attempt) beyond its maximum")
                    }
                case .activityCompleted(let activityID, _, _):
                    completions["\(workflowID)/\(activityID)", default: 0] += 1
                default:
                    break
                }
            }
            if last.type == "WorkflowCompleted" {
                for activityID in scheduled where completions["\(workflowID)/\(activityID)"] != 1 {
                    violation("completed workflow \(workflowID): activity \(activityID) completed \(completions["\(workflowID)/\(activityID)", default: 0]) times")
                }
            }
            let key = StateKey.finished(workflowID)
            guard let snapshot = try? store.state(forKey: key) else {
                violation("no final snapshot \(key)")
                continue
            }
            do {
                if try !core.snapshotEqualsFold(snapshot: snapshot, key: key, events: events) {
                    violation("final snapshot of \(workflowID) differs from the fold of its log")
                }
            } catch { violation("final snapshot of \(workflowID): \(error)") }
        }
        for (key, count) in completions where count != 1 {
            violation("idempotency key \(key) completed \(count) times")
        }
        for (key, _) in completions where effects[key] != 1 {
            violation("idempotency key \(key) completed without its effect applied")
        }
        if let running = try? store.stateEntries(withPrefix: StateKey.runningPrefix), !running.isEmpty {
            violation("unfinished index still lists \(running.map(\.key))")
        }
        if let unique = try? store.stateEntries(withPrefix: StateKey.uniquePrefix), !unique.isEmpty {
            violation("unique keys still held: \(unique.map(\.key))")
        }
        if workflowStreams.count < 7 { violation("only \(workflowStreams.count) workflows ran") }
    }
}
