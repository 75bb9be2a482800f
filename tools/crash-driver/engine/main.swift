// engine-crash-driver: runs synthetic multi-step workflows on the real EventLog, with
// activities that record their effect, keyed, in an effect ledger; the crash test kills it
// with SIGKILL (at random or at a named CAPSTAN_FAILPOINT) and restarts it until every
// workflow has completed, then checks each key's effect was applied exactly once.
//
// Usage: engine-crash-driver <directory> [--round R] [--workflows N] [--steps M] [--activity-delay-ms D]
// Exits 0 when every workflow of the round has finished, or on SIGTERM once the engine has
// stopped gracefully (in-flight attempts finished and committed).
import Engine
import EventLog
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `steps` effect activities in a row, a short durable timer before step 3.
/// Input: `<steps>`.
enum ChainWorkflow: Workflow {
    struct State: Codable, Equatable, Sendable {
        var steps = 0
        var scheduled = 0
        var completed = 0
        var timerStarted = false
        var timerFired = false
        var failure: String?
    }

    static let type = "chain"
    static let version = 1
    static let initial = State()
    static let timerStep = 3

    static func evolve(_ state: State, _ event: WorkflowEvent, at _: Timestamp) -> State {
        var state = state
        switch event {
        case .workflowStarted(let start): state.steps = Int(start.input) ?? 1
        case .activityScheduled: state.scheduled += 1
        case .activityCompleted: state.completed += 1
        case .activityFailed(let failed): if failed.isFinal { state.failure = failed.failure.message }
        case .timerStarted: state.timerStarted = true
        case .timerFired: state.timerFired = true
        case .activityStarted, .signalReceived, .childStarted, .childCompleted, .childFailed, .cancelRequested,
            .workflowCompleted, .workflowFailed, .workflowCancelled, .timerCancelled, .domainEvent, .childSignalled, .activityRetryRequested,
            .workflowContinuedAsNew:
            break
        }
        return state
    }

    static func decide(_ state: State) -> [WorkflowCommand] {
        guard state.steps > 0 else { return [] }
        if let failure = state.failure { return [.fail(reason: failure)] }
        if state.completed == state.steps { return [.complete(output: "ok")] }
        let step = state.completed + 1
        guard state.scheduled < step else { return [] }
        if step == timerStep && !state.timerStarted { return [.startTimer(id: "pause", after: .milliseconds(30))] }
        if step == timerStep && !state.timerFired { return [] }
        return [
            .runActivity(
                ActivityRequest(
                    activityID: "step-\(step)", name: "effect", input: "\(step)",
                    retry: RetryPolicy(maxAttempts: 20, initialBackoff: .milliseconds(5), maxBackoff: .milliseconds(50)),
                    startToCloseTimeout: .seconds(30)))
        ]
    }
}

/// The effect ledger: one line per applied key, appended and fsynced. The executor's
/// idempotency is the check by key before applying (the design: executors are idempotent
/// by key), so a re-dispatched attempt after a crash applies nothing twice.
final class EffectLedger: Sendable {
    private let descriptor: Int32
    private let applied: Mutex<Set<String>>

    init(path: String) throws {
        var keys: Set<String> = []
        if let file = fopen(path, "r") {
            var line: UnsafeMutablePointer<CChar>?
            var capacity = 0
            while getline(&line, &capacity, file) > 0 {
                let text = String(cString: line!)
                if text.hasSuffix("\n") { keys.insert(String(text.dropLast())) }
            }
            free(line)
            fclose(file)
        }
        descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard descriptor >= 0 else { throw DriverError("cannot open effect ledger \(path): errno \(errno)") }
        applied = Mutex(keys)
    }

    /// Applies the effect of `key` unless it was applied already; true when applied now.
    /// `checked: false` applies it anyway: the broken executor that shows the crash test can
    /// fail (`CAPSTAN_CRASH_EXECUTOR_NOT_IDEMPOTENT=1`).
    func apply(_ key: String, checked: Bool = true) throws -> Bool {
        try applied.withLock { applied in
            guard !checked || !applied.contains(key) else { return false }
            let line = Array((key + "\n").utf8)
            let written = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            guard written == line.count, fsync(descriptor) == 0 else { throw DriverError("effect ledger write failed: errno \(errno)") }
            applied.insert(key)
            return true
        }
    }
}

struct DriverError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct Arguments {
    var directory = ""
    var round = 0
    var workflows = 20
    var steps = 6
    var activityDelayMilliseconds = 3

    static func parse(_ arguments: [String]) throws -> Arguments {
        var parsed = Arguments()
        var rest = arguments.dropFirst()
        guard let directory = rest.popFirst() else {
            throw DriverError("usage: engine-crash-driver <directory> [--round R] [--workflows N] [--steps M] [--activity-delay-ms D]")
        }
        parsed.directory = directory
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst().flatMap({ Int($0) }), value >= 0 else {
                throw DriverError("\(flag): needs a non-negative integer")
            }
            switch flag {
            case "--round": parsed.round = value
            case "--workflows": parsed.workflows = value
            case "--steps": parsed.steps = value
            case "--activity-delay-ms": parsed.activityDelayMilliseconds = value
            default: throw DriverError("unknown flag \(flag)")
            }
        }
        return parsed
    }
}

func workflowIDs(_ arguments: Arguments) -> [String] {
    (0..<arguments.workflows).map { "round-\(arguments.round)/chain-\($0)" }
}

func run() async throws {
    let arguments = try Arguments.parse(CommandLine.arguments)
    var logger = Logger(label: "engine-crash-driver")
    logger.logLevel = .warning
    let log = try EventLog(directory: arguments.directory + "/log", logger: logger)
    let store = try await EventLogStore.open(log: log, logger: logger)
    let ledger = try EffectLedger(path: arguments.directory + "/effects.log")
    let delay = arguments.activityDelayMilliseconds
    let checked = getenv("CAPSTAN_CRASH_EXECUTOR_NOT_IDEMPOTENT").map { String(cString: $0) } != "1"
    let executors: [String: ActivityExecutor] = [
        "effect": { context in
            if delay > 0 { try await Task.sleep(for: .milliseconds(Int.random(in: 0...delay))) }
            // Some first attempts fail before any effect, to exercise retries.
            if context.attempt == 1 && context.idempotencyKey.utf8.reduce(0, { $0 &+ Int($1) }) % 4 == 0 {
                throw ActivityFailure(kind: "flaky", message: "first attempt of \(context.idempotencyKey) fails")
            }
            return try ledger.apply(context.idempotencyKey, checked: checked) ? "applied" : "already applied"
        }
    ]
    let engine = try WorkflowEngine(
        store: store, workflows: [WorkflowDefinition(ChainWorkflow.self)], executors: executors,
        options: EngineCore.Options(globalConcurrency: 16, perKeyConcurrency: 4, seed: UInt64(getpid())), logger: logger)
    let ids = workflowIDs(arguments)
    for id in ids {
        do { try await engine.start(workflowID: id, type: ChainWorkflow.type, input: "\(arguments.steps)") } catch let error
            as EngineError where error.code == .workflowExists
        {
            continue
        }
    }
    let monitor = Task {
        while !Task.isCancelled {
            let finished = ids.allSatisfy { (try? store.state(forKey: StateKey.finished($0))) != nil }
            if finished {
                print("engine-crash-driver: all \(ids.count) workflows of round \(arguments.round) finished")
                await engine.stop()
                return
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
    let group = ServiceGroup(
        configuration: ServiceGroupConfiguration(
            services: [.init(service: engine, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm], logger: logger))
    try await group.run()
    monitor.cancel()
    await log.close()
}

do {
    try await run()
    exit(0)
} catch {
    let message = "engine-crash-driver: \(error)\n"
    _ = message.withCString { write(2, $0, strlen($0)) }
    exit(1)
}
