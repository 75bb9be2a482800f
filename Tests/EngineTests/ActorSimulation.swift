import CapstanSupport
import Engine
import EngineTesting
import EventLog
import Foundation
import Logging
import Synchronization

/// What the actor simulation's proofs-can-fail tests change.
struct ActorSimKnobs: Sendable {
    /// An executor that creates again instead of accepting AlreadyExists as its own.
    var idempotentExecutor = true
    /// Limits the engine is configured with (the executor checks 3 and 1).
    var engineGlobal = 3
    var enginePerKey = 1
    /// The grace the engine is configured with (the executor expects 3 s).
    var engineAbandonGrace: Duration = .seconds(3)
}

/// One seeded run of the actor layer: a real ``WorkflowEngine`` (its commit loop, timer
/// loop, inbox tail, executor tasks and their cancellation) on a ``VirtualClock`` against
/// executors that fail, time out, hang and ignore cancellation, while the engine's process
/// is killed and a new engine is created on the same store at seeded points (every seed at
/// least once: inside an append before it writes, inside one after it wrote, or while idle).
///
/// Virtual time moves only once everything has settled (``settle(_:)``): the commit loop
/// waits with nothing pending, the timer loop sleeps until a time ahead, every launched
/// executor has entered and sleeps until a time ahead, every returned one was reported,
/// the inbox is read. Timeouts and retries are then decided on virtual time alone, however
/// loaded the machine. The fault plan (rates, crash times, each attempt's latency, outcome
/// and moment of its create) comes from the seed; the order of the engine's tasks within
/// one virtual instant comes from the scheduler, so `CAPSTAN_SIM_SEED` replays the plan,
/// not always the identical interleaving.
///
/// The executor makes its effect idempotent as the real ones do (a create by a name derived
/// from the idempotency key; AlreadyExists is success when the object is ours) and counts,
/// without any dedupe: every create applied, calls running at once (in all and per key),
/// why each dispatch repeated, and that no call starts before its `ActivityStarted` is durable.
final class ActorSimulation: Sendable {
    static let globalLimit = 3
    static let perKeyLimit = 1
    static let abandonGrace: Duration = .seconds(3)

    enum CrashPoint: Sendable { case beforeAppend, afterAppend, idle }
    struct PlannedCrash: Sendable {
        var at: Timestamp
        var point: CrashPoint
    }

    struct Call: Sendable {
        var workflowID: String
        var activityID: String
        var attempt: Int
        var generation: Int
        var concurrencyKey: String?
        var startedAt: Timestamp
        var deadline: Timestamp
        var sleepsUntil: Timestamp?
        var cancelledAt: Timestamp?
        /// It began after its workflow had ended.
        var afterEnd = false
        /// Told to cancel while it listens, and it has not acted on it yet.
        var cancelPending = false
        /// Nil: no result reached the engine; true: success; false: a failure.
        var returned: Bool?
        /// In the executor's running count (a call leaves it when it returns, when its
        /// process dies, or when the engine recorded giving it up after the whole grace).
        var counted = true
        var key: String { "\(workflowID)/\(activityID)" }
    }

    struct Ledger {
        var generation = 0
        var crashes = 0
        var crashPlan: [PlannedCrash] = []
        var calls: [Int: Call] = [:]
        var nextCallID = 0
        var lastCall: [String: Call] = [:]
        var entered: [Int: Int] = [:]
        var returned: [Int: Int] = [:]
        var external: [String: String] = [:]
        var applications: [String: Int] = [:]
        var violations: [String] = []
        var repeatsAfterCrash = 0
        var repeatsAfterTimeout = 0
        var retries = 0
        var maxRunning = 0
        var cancellations = 0
        var cooperativeCancels = 0
        var abandonedAfterGrace = 0
        var appends = 0
        var trace: [String] = []
    }

    struct Plan: Sendable {
        enum Outcome: Sendable { case success, retryableFailure, permanentFailure }
        var outcome: Outcome
        /// Ignores cancellation and runs long (past the timeout and often the grace).
        var hangs: Bool
        var createAfter: Duration
        var returnAfter: Duration
    }

    let seed: UInt64
    let knobs: ActorSimKnobs
    let verbose: Bool
    let clock = VirtualClock(start: Timestamp(nanoseconds: 1_700_000_000_000_000_000))
    let store: InMemoryStore
    let ledger = Mutex(Ledger())
    let notices = NoticeBox()
    let failureRate: Double
    let permanentRate: Double
    let hangRate: Double
    let concurrencyKeys: [String: String]
    let starts: [(workflowID: String, type: String, input: String, uniqueKey: String?)]
    let plannedSignals: [(after: Duration, workflowID: String, name: String)]

    init(seed: UInt64, knobs: ActorSimKnobs = ActorSimKnobs(), verbose: Bool = false) {
        self.seed = seed
        self.knobs = knobs
        self.verbose = verbose
        store = InMemoryStore(clock: clock)
        var random = SplitMix64(seed: seed ^ 0xAC70_5100)
        func draw(_ range: ClosedRange<Int64>) -> Int64 {
            range.lowerBound + Int64(random.next() % UInt64(range.upperBound - range.lowerBound + 1))
        }
        failureRate = Double(random.next() % 30) / 100
        permanentRate = Double(random.next() % 4) / 100
        hangRate = Double(random.next() % 12) / 100
        var keys: [String: String] = [:]
        var starts: [(workflowID: String, type: String, input: String, uniqueKey: String?)] = []
        let clusterKeys = ["cluster-a", "cluster-b", ""]
        for index in 0..<(3 + Int(random.next() % 4)) {
            let steps = 1 + random.next() % 4
            let timer = random.next() % 2 == 0 ? 0 : 1 + random.next() % 3_000
            let key = clusterKeys[Int(random.next() % 3)]
            if !key.isEmpty { keys["steps/\(index)"] = key }
            starts.append(("steps/\(index)", StepsWorkflow.type, "\(steps):\(timer):\(key)", "steps-key/\(index)"))
        }
        starts.append(("approval/1", ApprovalWorkflow.type, "", nil))
        starts.append(("parent/1", ParentWorkflow.type, "parent/1", nil))
        concurrencyKeys = keys
        self.starts = starts
        var signals: [(after: Duration, workflowID: String, name: String)] = []
        if random.next() % 10 < 8 { signals.append((.milliseconds(draw(0...10_000)), "approval/1", EngineSignal.approve)) }
        if random.next() % 10 < 3 {
            let pauseAt = draw(0...3_000)
            signals.append((.milliseconds(pauseAt), "steps/0", EngineSignal.pause))
            signals.append((.milliseconds(pauseAt + draw(1...5_000)), "steps/0", EngineSignal.resume))
        }
        if random.next() % 10 < 2 { signals.append((.milliseconds(draw(0...4_000)), "parent/1", EngineSignal.cancel)) }
        if random.next() % 10 < 2 { signals.append((.milliseconds(draw(0...4_000)), "steps/1", "note")) }
        plannedSignals = signals
        // Crashes: the first is certain, between 0.5 s and 6 s; up to three more later.
        let points: [CrashPoint] = [.beforeAppend, .afterAppend, .idle]
        var crashPlan: [PlannedCrash] = []
        var at: Int64 = 0
        for index in 0..<(1 + Int(random.next() % 4)) {
            at += index == 0 ? draw(200...2_500) : draw(300...8_000)
            crashPlan.append(
                PlannedCrash(at: clock.now() + .milliseconds(at), point: points[Int(random.next() % UInt64(points.count))]))
        }
        ledger.withLock { $0.crashPlan = crashPlan }
    }

    var now: Timestamp { clock.now() }

    func note(_ text: @autoclosure () -> String) {
        guard verbose else { return }
        let line = "[\(clock.now().nanoseconds - 1_700_000_000_000_000_000)ns] \(text())"
        ledger.withLock { $0.trace.append(line) }
    }

    func violation(_ text: String) { ledger.withLock { $0.violations.append(text) } }

    // MARK: the run

    /// Runs every planned workflow to its end through crashes; returns the violations.
    func run() async -> [String] {
        var generation = 0
        var engine: WorkflowEngine
        do { engine = try makeEngine(generation: 0) } catch {
            return ["engine creation failed: \(error)"]
        }
        for start in starts {
            do { try await engine.start(workflowID: start.workflowID, type: start.type, input: start.input, uniqueKey: start.uniqueKey) }
            catch { violation("start \(start.workflowID) failed: \(error)") }
        }
        var running = Task { [engine] in try await engine.run() }
        let began = now
        var signals = plannedSignals.map { (at: began + $0.after, workflowID: $0.workflowID, name: $0.name) }.sorted { $0.at < $1.at }
        var lastInbox = LogPosition.start
        var iterations = 0
        while true {
            iterations += 1
            if iterations > 20_000 {
                violation("no end after 20000 steps")
                break
            }
            guard await settle(engine, generation: generation, inbox: lastInbox) else {
                violation("the engine did not settle (a hang) at step \(iterations)")
                break
            }
            // A crash inside an append during the last step, or one planned now.
            let crashed = ledger.withLock { ledger -> Bool in
                if ledger.generation != generation { return true }
                guard let next = ledger.crashPlan.first else { return false }
                // An append crash whose moment passed without an append happens idle, 1 s late.
                let due = next.point == .idle ? next.at : next.at + .seconds(1)
                guard clock.now() >= due else { return false }
                Self.crash(&ledger, at: "idle")
                return true
            }
            if crashed {
                running.cancel()
                _ = await running.result
                generation = ledger.withLock { $0.generation }
                note("engine \(generation) starts")
                do { engine = try makeEngine(generation: generation) } catch {
                    violation("recovery failed: \(error)")
                    break
                }
                running = Task { [engine] in try await engine.run() }
                continue
            }
            if allEnded(), ledger.withLock({ $0.calls.isEmpty }) {
                // Every seed crashes at least once: one that ended first crashes now, and the
                // next engine must recover nothing and hold every id.
                let crashesNow = ledger.withLock { ledger -> Bool in
                    guard ledger.crashes == 0 else { return false }
                    Self.crash(&ledger, at: "idle, after the end")
                    return true
                }
                if !crashesNow { break }
                continue
            }
            var candidates: [Timestamp] = []
            if let wakeup = await engine.loopState.nextWakeup { candidates.append(wakeup) }
            candidates += ledger.withLock { ledger in
                ledger.calls.values.compactMap(\.sleepsUntil)
                    + ledger.crashPlan.prefix(1).map { $0.point == .idle ? $0.at : $0.at + .seconds(1) }
            }
            if let signal = signals.first { candidates.append(signal.at) }
            guard let next = candidates.min() else {
                violation("stuck: nothing scheduled while workflows run")
                break
            }
            clock.advance(by: next > now ? next.duration(since: now) : .milliseconds(1))
            while let signal = signals.first, signal.at <= now {
                signals.removeFirst()
                note("signal \(signal.name) to \(signal.workflowID)")
                let event = InboxMessage.signal(workflowID: signal.workflowID, name: signal.name, payload: "sim")
                    .proposedEvent(id: EventID(high: seed, low: UInt64(iterations)), actor: "cli:sim")
                do {
                    lastInbox = try store.appendNow(
                        [StreamAppend(streamID: InboxMessage.stream, expectedRevision: .any, events: [event])], stateWrites: []
                    ).lastPosition
                } catch { violation("inbox append failed: \(error)") }
            }
        }
        await engine.stop()
        do { try await running.value } catch { violation("the last engine's run failed: \(error)") }
        let checker = EngineCore(workflows: sampleDefinitions, options: .init(seed: 0)) { _ in false }
        let applications = ledger.withLock { $0.applications }
        let history = SimulationRun.historyViolations(store: store, checker: checker, applications: applications)
        return ledger.withLock { ledger in
            if ledger.crashes == 0 { ledger.violations.append("the run never crashed") }
            return ledger.violations + history
        }
    }

    func allEnded() -> Bool {
        guard (try? store.stateEntries(withPrefix: StateKey.runningPrefix))?.isEmpty == true else { return false }
        return starts.allSatisfy { (try? store.state(forKey: StateKey.finished($0.workflowID))) != nil }
    }

    func makeEngine(generation: Int) throws -> WorkflowEngine {
        let sink = notices
        let logger = Logger(label: "capstan.sim") { _ in NoticeCollector(sink: sink) }
        return try WorkflowEngine(
            store: CrashingStore(inner: store, simulation: self, generation: generation), workflows: sampleDefinitions,
            executors: ["work": { [self] context in try await self.execute(context, generation: generation) }], clock: clock,
            options: .init(
                globalConcurrency: knobs.engineGlobal, perKeyConcurrency: knobs.enginePerKey, seed: seed &+ UInt64(generation),
                abandonGrace: knobs.engineAbandonGrace),
            tailsInbox: true, logger: logger, stopGrace: .seconds(1))
    }

    /// Waits (yielding, real time) until nothing can happen without virtual time moving, or
    /// the engine of `generation` died. False only as a hang detector (5 minutes: a loaded
    /// full run can starve the cooperative pool for long), never a timing limit.
    func settle(_ engine: WorkflowEngine, generation: Int, inbox: LogPosition) async -> Bool {
        let began = ContinuousClock.now
        var spins = 0
        while true {
            let state = await engine.loopState
            let now = clock.now()
            let settled = ledger.withLock { ledger -> Bool in
                if ledger.generation != generation { return true }
                guard state.commitLoopWaits, !state.pendingOutput, let timer = state.timerLoopSleepsUntil, timer > now,
                    state.inboxPosition >= inbox.rawValue, state.launched == ledger.entered[generation, default: 0],
                    state.reported == ledger.returned[generation, default: 0]
                else { return false }
                return ledger.calls.values.allSatisfy { call in
                    !call.cancelPending && (call.sleepsUntil.map { $0 > now } ?? false)
                }
            }
            if settled { return true }
            spins += 1
            if spins % 64 == 0 {
                try? await Task.sleep(for: .microseconds(200))
                if ContinuousClock.now - began > .seconds(300) { return false }
            } else {
                await Task.yield()
            }
        }
    }

    /// The process dies: the store refuses its writes, its executors' effects stop.
    static func crash(_ ledger: inout Ledger, at point: String) {
        ledger.generation += 1
        ledger.crashes += 1
        if !ledger.crashPlan.isEmpty { ledger.crashPlan.removeFirst() }
        for (id, call) in ledger.calls where call.generation < ledger.generation { ledger.calls[id]?.counted = false }
    }

    /// Called by the store of `generation` around each append: refuses a dead process's
    /// writes, and crashes at the planned moment, before the write or after it.
    func appendGate(generation: Int, after: Bool) throws {
        try ledger.withLock { ledger in
            guard ledger.generation == generation else { throw EngineError(.stopped, "simulated crash: this process is dead") }
            if !after { ledger.appends += 1 }
            guard let next = ledger.crashPlan.first, clock.now() >= next.at,
                next.point == (after ? .afterAppend : .beforeAppend)
            else { return }
            Self.crash(&ledger, at: after ? "after append" : "before append")
            throw EngineError(.stopped, "simulated crash \(after ? "after" : "before") append \(ledger.appends)")
        }
    }

    // MARK: the executor under test

    func plan(_ context: ActivityContext, generation: Int) -> Plan {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in "\(context.idempotencyKey)#\(context.attempt)#\(generation)".utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        var random = SplitMix64(seed: seed ^ hash)
        let roll = Double(random.next() % 10_000) / 10_000
        let hangs = roll < hangRate
        let outcome: Plan.Outcome =
            roll < hangRate + permanentRate && !hangs
            ? .permanentFailure : roll < hangRate + permanentRate + failureRate && !hangs ? .retryableFailure : .success
        let total = hangs ? 6_000 + Int64(random.next() % 14_001) : 1 + Int64(random.next() % 2_000)
        let create = Int64(random.next() % UInt64(total + 1))
        return Plan(outcome: outcome, hangs: hangs, createAfter: .milliseconds(create), returnAfter: .milliseconds(total))
    }

    func execute(_ context: ActivityContext, generation: Int) async throws -> String {
        let plan = plan(context, generation: generation)
        let id = enter(context, generation: generation)
        let began = now
        note("call \(id) \(context.idempotencyKey) attempt \(context.attempt) (engine \(generation)): \(plan.outcome)\(plan.hangs ? ", hangs" : "") in \(plan.returnAfter)")
        if await park(id, until: began + plan.createAfter, listens: !plan.hangs) == .cancelled {
            leave(id, generation: generation, result: false)
            throw CancellationError()
        }
        guard isAlive(generation) else {
            leave(id, generation: generation, result: nil)
            throw CancellationError()
        }
        if plan.outcome == .success { applyEffect(context.idempotencyKey) }
        if await park(id, until: began + plan.returnAfter, listens: !plan.hangs) == .cancelled {
            // It noticed the cancellation after its create (or before, for a failure).
            leave(id, generation: generation, result: false)
            throw CancellationError()
        }
        guard isAlive(generation) else {
            leave(id, generation: generation, result: nil)
            throw CancellationError()
        }
        switch plan.outcome {
        case .success:
            leave(id, generation: generation, result: true)
            return "done \(context.idempotencyKey)"
        case .retryableFailure:
            leave(id, generation: generation, result: false)
            throw ActivityFailure(kind: "unavailable", message: "simulated 503")
        case .permanentFailure:
            leave(id, generation: generation, result: false)
            throw ActivityFailure(kind: "invalid", message: "simulated invalid input", retryable: false)
        }
    }

    func isAlive(_ generation: Int) -> Bool { ledger.withLock { $0.generation == generation } }

    enum Wake { case time, cancelled }

    /// Sleeps on the virtual clock until `until`; a call that listens stops when its task is
    /// cancelled, one that hangs ignores it (it only notes when it was told).
    func park(_ id: Int, until: Timestamp, listens: Bool) async -> Wake {
        // The call counts as parked (time may move) only once its cancellation handler is
        // in place: a cancel that came between would be noted late, at a later virtual time.
        // (Seen: with `sleepsUntil` set before the handler, 1 seed in 1000 under load
        // reported a slot reused 3 s after the engine gave up on a call that, by the
        // executor's late note, had been told only 0.9 s before.)
        defer { ledger.withLock { $0.calls[id]?.sleepsUntil = nil } }
        let clock = clock
        if !listens {
            await withTaskCancellationHandler {
                ledger.withLock { $0.calls[id]?.sleepsUntil = until }
                // Its own task: the engine's cancellation does not reach this sleep.
                await Task { try? await clock.sleep(until: until) }.value
            } onCancel: {
                self.told(id, listens: false)
            }
            return .time
        }
        do {
            try await withTaskCancellationHandler {
                ledger.withLock { $0.calls[id]?.sleepsUntil = until }
                try await clock.sleep(until: until)
            } onCancel: {
                self.told(id, listens: true)
            }
            return .time
        } catch {
            ledger.withLock { $0.calls[id]?.cancelPending = false }
            return .cancelled
        }
    }

    func told(_ id: Int, listens: Bool) {
        let now = clock.now()
        note("told call \(id) to stop (\(listens ? "listens" : "hangs"))")
        ledger.withLock { ledger in
            guard var call = ledger.calls[id] else { return }
            if call.cancelledAt == nil {
                call.cancelledAt = now
                ledger.cancellations += 1
                if listens { ledger.cooperativeCancels += 1 }
            }
            if listens { call.cancelPending = true }
            ledger.calls[id] = call
        }
    }

    /// The executor's create, keyed by a deterministic name: AlreadyExists is success when
    /// the object is ours, a conflict otherwise. Every create that reaches the external
    /// system is counted.
    func applyEffect(_ key: String) {
        let idempotent = knobs.idempotentExecutor
        ledger.withLock { ledger in
            let name = "effect-" + key
            if idempotent, let owner = ledger.external[name] {
                if owner != key { ledger.violations.append("\(name) exists but belongs to \(owner), not \(key)") }
                return
            }
            ledger.external[name] = key
            ledger.applications[key, default: 0] += 1
        }
    }

    func leave(_ id: Int, generation: Int, result: Bool?) {
        ledger.withLock { ledger in
            ledger.returned[generation, default: 0] += 1
            guard let call = ledger.calls.removeValue(forKey: id) else { return }
            if call.afterEnd, call.cancelledAt == nil, call.generation == ledger.generation {
                ledger.violations.append("\(call.key) attempt \(call.attempt) ran for a finished workflow and was never told to stop")
            }
            if call.generation == ledger.generation, ledger.lastCall[call.key]?.attempt == call.attempt,
                ledger.lastCall[call.key]?.generation == call.generation
            {
                ledger.lastCall[call.key]?.returned = result
            }
        }
    }

    /// A call begins: it must be wanted (its `ActivityStarted` durable, its workflow running
    /// unless the engine already told it to stop, its activity not completed), a repeat must
    /// have a cause, and the limits must hold, as the executor counts them.
    func enter(_ context: ActivityContext, generation: Int) -> Int {
        let now = clock.now()
        let cancelled = Task.isCancelled
        let history = (try? store.readStream(.forWorkflow(context.workflowID))) ?? []
        let decoded = history.compactMap { try? WorkflowEventCodec.decode($0) }
        var problems: [String] = []
        let key = context.idempotencyKey
        if !decoded.contains(where: {
            if case .activityStarted(context.activityID, context.attempt) = $0.event { return true } else { return false }
        }) {
            problems.append("\(key) attempt \(context.attempt) called before its ActivityStarted was durable")
        }
        // A call that begins after its workflow ended must have been told to stop (the
        // engine cancels it in the same pass that committed the end; it may begin between).
        let afterEnd =
            history.last.map { ["WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled"].contains($0.type) } ?? false
        if decoded.contains(where: {
            if case .activityCompleted(context.activityID, _, _) = $0.event { return true } else { return false }
        }) {
            problems.append("\(key) called after its completion was durable")
        }
        let failures = decoded.compactMap { stamped -> ActivityAttemptFailure? in
            if case .activityFailed(let failed) = stamped.event, failed.activityID == context.activityID { return failed }
            return nil
        }
        let abandoned = Set(decoded.compactMap { stamped -> Int? in
            guard case .domainEvent(let domain) = stamped.event, let event = AttemptAbandoned(domain) else { return nil }
            return event.activityID == context.activityID ? event.attempt : nil
        })
        let notices = notices.lines.withLock { $0 }
        return ledger.withLock { ledger -> Int in
            ledger.violations += problems
            ledger.entered[generation, default: 0] += 1
            // Why this dispatch repeats.
            if let last = ledger.lastCall[key] {
                if last.generation != generation {
                    ledger.repeatsAfterCrash += 1
                } else if let failed = failures.last(where: { $0.attempt == last.attempt }) {
                    if failed.failure.kind == "timeout" {
                        ledger.repeatsAfterTimeout += 1
                        if now < last.deadline { ledger.violations.append("\(key): attempt \(last.attempt) timed out before its deadline") }
                    } else {
                        ledger.retries += 1
                        if last.returned != false {
                            ledger.violations.append("\(key): attempt \(last.attempt) recorded as failed, its executor did not fail")
                        }
                    }
                    if context.attempt != last.attempt + 1 {
                        ledger.violations.append("\(key): attempt \(context.attempt) follows failed attempt \(last.attempt)")
                    }
                    if let retryAt = failed.nextRetryAt, now < retryAt {
                        ledger.violations.append("\(key): attempt \(context.attempt) started before its retry time")
                    }
                } else {
                    ledger.violations.append(
                        "\(key): dispatch repeated while attempt \(last.attempt) neither failed, timed out nor ran at a crash")
                }
            }
            // Calls the engine gave up on after the whole grace leave the count, if recorded.
            for (id, call) in ledger.calls where call.counted {
                guard let told = call.cancelledAt, now >= told + Self.abandonGrace else { continue }
                let recorded: Bool
                if call.workflowID == context.workflowID {
                    recorded = abandoned.contains(call.attempt)
                } else {
                    let other = (try? store.readStream(.forWorkflow(call.workflowID))) ?? []
                    recorded = other.contains { event in
                        guard event.type == AttemptAbandoned.name, let decoded = try? WorkflowEventCodec.decode(event),
                            case .domainEvent(let domain) = decoded.event, let abandoned = AttemptAbandoned(domain)
                        else { return false }
                        return abandoned.activityID == call.activityID && abandoned.attempt == call.attempt
                    }
                }
                let noticed = notices.contains { $0.contains("activity \(call.key) attempt \(call.attempt) abandoned") }
                if recorded || noticed {
                    ledger.calls[id]?.counted = false
                    ledger.abandonedAfterGrace += 1
                }
            }
            ledger.nextCallID += 1
            let call = Call(
                workflowID: context.workflowID, activityID: context.activityID, attempt: context.attempt, generation: generation,
                concurrencyKey: concurrencyKeys[context.workflowID], startedAt: now, deadline: context.deadline)
            ledger.calls[ledger.nextCallID] = call
            if afterEnd {
                if cancelled { ledger.calls[ledger.nextCallID]!.cancelledAt = now } else { ledger.calls[ledger.nextCallID]!.afterEnd = true }
            }
            ledger.lastCall[key] = call
            let counted = ledger.calls.values.filter { $0.counted && $0.generation == ledger.generation }
            ledger.maxRunning = max(ledger.maxRunning, counted.count)
            if counted.count > Self.globalLimit {
                ledger.violations.append("\(counted.count) calls running at once, limit \(Self.globalLimit)")
            }
            if let concurrencyKey = call.concurrencyKey {
                let same = counted.filter { $0.concurrencyKey == concurrencyKey }
                if same.count > Self.perKeyLimit {
                    let calls = same.map { call in
                        "\(call.key)#\(call.attempt) (engine \(call.generation), from \(call.startedAt.nanoseconds - 1_700_000_000_000_000_000), told \(call.cancelledAt.map { "\($0.nanoseconds - 1_700_000_000_000_000_000)" } ?? "-"))"
                    }
                    ledger.violations.append(
                        "\(same.count) calls running at once on \(concurrencyKey), limit \(Self.perKeyLimit): \(calls.joined(separator: ", ")) at \(now.nanoseconds - 1_700_000_000_000_000_000)")
                }
            }
            return ledger.nextCallID
        }
    }
}

/// The store as one engine process sees it: a dead process (an older generation) cannot
/// write, and the simulation crashes the process inside an append at planned moments.
struct CrashingStore: EngineStore {
    let inner: InMemoryStore
    let simulation: ActorSimulation
    let generation: Int

    func append(_ streams: [StreamAppend], stateWrites: [StateWrite]) async throws -> AppendResult {
        try simulation.appendGate(generation: generation, after: false)
        simulation.note(
            "append (engine \(generation)): \(streams.map { "\($0.streamID.rawValue): \($0.events.map(\.type).joined(separator: ","))" }.joined(separator: "; "))")
        let result = try inner.appendNow(streams, stateWrites: stateWrites)
        try simulation.appendGate(generation: generation, after: true)
        return result
    }

    func readStream(_ stream: StreamID) throws -> [RecordedEvent] { try inner.readStream(stream) }
    func streamExists(_ stream: StreamID) throws -> Bool { try inner.streamExists(stream) }
    func state(forKey key: String) throws -> [UInt8]? { try inner.state(forKey: key) }
    func stateEntries(withPrefix prefix: String) throws -> [(key: String, value: [UInt8])] {
        try inner.stateEntries(withPrefix: prefix)
    }
    func tail(_ stream: StreamID, after: LogPosition) -> AsyncThrowingStream<RecordedEvent, any Error> {
        inner.tail(stream, after: after)
    }
}

/// Keeps the engine's notices (what it tells the operator through its logger).
final class NoticeBox: Sendable {
    let lines = Mutex<[String]>([])
}

struct NoticeCollector: LogHandler {
    let sink: NoticeBox
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    var metadataProvider: Logger.MetadataProvider?

    init(sink: NoticeBox) { self.sink = sink }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        guard let notice = event.metadata?["engine.notice"] else { return }
        sink.lines.withLock { $0.append("\(notice)") }
    }
}
