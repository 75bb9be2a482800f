// engine-bench: durable workflow steps per second on the real EventLog, and start-up
// (recovery) time after a kill with many unfinished workflows at short and long histories.
// Run in release: swift run -c release engine-bench --help
import ArgumentParser
import Engine
import EngineTesting
import EventLog
import Foundation
import Logging

/// `steps` no-op activities in a row; with `hangAfter`, one more activity that never
/// returns, so the run stays unfinished with a started attempt. Input: `<steps>:<hang 0|1>`.
enum BenchWorkflow: Workflow {
    struct State: Codable, Equatable, Sendable {
        var steps = 0
        var hangs = false
        var scheduled = 0
        var completed = 0
    }

    static let type = "bench"
    static let version = 1
    static let initial = State()

    static func evolve(_ state: State, _ event: WorkflowEvent, at _: Timestamp) -> State {
        var state = state
        switch event {
        case .workflowStarted(let start):
            let parts = start.input.split(separator: ":")
            state.steps = Int(parts[0]) ?? 1
            state.hangs = parts.count > 1 && parts[1] == "1"
        case .activityScheduled: state.scheduled += 1
        case .activityCompleted: state.completed += 1
        case .activityStarted, .activityFailed, .timerStarted, .timerFired, .signalReceived, .childStarted, .childCompleted,
            .childFailed, .cancelRequested, .workflowCompleted, .workflowFailed, .workflowCancelled, .timerCancelled, .domainEvent, .childSignalled, .activityRetryRequested,
            .workflowContinuedAsNew:
            break
        }
        return state
    }

    static func decide(_ state: State) -> [WorkflowCommand] {
        guard state.steps > 0 else { return [] }
        let total = state.steps + (state.hangs ? 1 : 0)
        if state.completed == total { return [.complete(output: "")] }
        guard state.scheduled == state.completed else { return [] }
        let step = state.completed + 1
        let name = step > state.steps ? "hang" : "noop"
        return [
            .runActivity(
                ActivityRequest(
                    activityID: "s\(step)", name: name, retry: RetryPolicy(maxAttempts: 3),
                    startToCloseTimeout: .seconds(3600)))
        ]
    }
}

/// BenchWorkflow after a code change (version 2, no upcast): every snapshot of version 1
/// is dropped at start and its run folded again from its stream.
enum BenchWorkflowV2: Workflow {
    typealias State = BenchWorkflow.State
    static let type = BenchWorkflow.type
    static let version = 2
    static let initial = BenchWorkflow.initial
    static func evolve(_ state: State, _ event: WorkflowEvent, at: Timestamp) -> State { BenchWorkflow.evolve(state, event, at: at) }
    static func decide(_ state: State) -> [WorkflowCommand] { BenchWorkflow.decide(state) }
}

@main
struct EngineBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure durable workflow steps per second and recovery time on the real EventLog.",
        discussion: "A step schedules, starts and completes a no-op activity, all durable (fsync at each group commit).")

    @Option(help: ArgumentHelp("Concurrent workflows.", valueName: "count"))
    var workflows = 10_000

    @Option(help: ArgumentHelp("Steps per workflow in the throughput run.", valueName: "count"))
    var steps = 10

    @Option(help: ArgumentHelp("Completed steps before the hang, for short and long histories (comma-separated).", valueName: "list"))
    var historySteps = "1,100"

    @Option(help: ArgumentHelp("Where to create temporary logs.", valueName: "directory"))
    var scratch = NSTemporaryDirectory()

    @Flag(help: "Skip the recovery runs.")
    var throughputOnly = false

    @Flag(help: "Run the throughput on the in-memory store (the engine's own cost, without the log).")
    var inMemory = false

    func run() async throws {
        var logger = Logger(label: "engine-bench")
        logger.logLevel = .warning
        let throughput = try await measureThroughput(logger: logger)
        print(
            "throughput: \(workflows) workflows x \(steps) steps = \(workflows * steps) steps in \(format(throughput.seconds)) s: \(Int(throughput.stepsPerSecond)) steps/s"
        )
        if throughputOnly { return }
        for history in historySteps.split(separator: ",").compactMap({ Int($0) }) {
            let recovery = try await measureRecovery(historySteps: history, logger: logger)
            print(
                "recovery: \(recovery.workflows) unfinished workflows, \(history) completed steps each (\(recovery.eventsPerWorkflow) events per workflow, \(recovery.totalEvents) events in all): open log \(format(recovery.openSeconds)) s, rebuild \(format(recovery.recoverSeconds)) s, total \(format(recovery.openSeconds + recovery.recoverSeconds)) s"
            )
            print(
                "recovery after a decider version change (every snapshot dropped, \(recovery.refolded) runs folded again from \(recovery.refoldedEvents) events): rebuild \(format(recovery.refoldSeconds)) s"
            )
        }
    }

    func format(_ seconds: Double) -> String { String(format: "%.3f", seconds) }

    /// User plus system CPU time of this process: a figure the machine's other load does not inflate.
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return user + system
    }

    func makeDirectory(_ name: String) throws -> String {
        let path = (scratch as NSString).appendingPathComponent("engine-bench-\(name)-\(getpid())")
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static let executors: [String: ActivityExecutor] = [
        "noop": { _ in "" },
        "hang": { _ in
            try await Task.sleep(for: .seconds(86_400))
            return ""
        },
    ]

    func openEngine(directory: String, logger: Logger) async throws -> (EventLog, EventLogStore, WorkflowEngine) {
        var options = EventLogOptions()
        options.initialMapSizeBytes = 1 << 30
        let log = try EventLog(directory: directory, options: options, logger: logger)
        let store = try await EventLogStore.open(log: log, logger: logger)
        let engine = try WorkflowEngine(
            store: store, workflows: [WorkflowDefinition(BenchWorkflow.self)], executors: Self.executors,
            options: EngineCore.Options(globalConcurrency: max(1, workflows), seed: 1), tailsInbox: false, logger: logger)
        return (log, store, engine)
    }

    func measureThroughput(logger: Logger) async throws -> (seconds: Double, stepsPerSecond: Double) {
        let directory = try makeDirectory("throughput")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (log, _, logEngine) = try await openEngine(directory: directory, logger: logger)
        let engine =
            inMemory
            ? try WorkflowEngine(
                store: InMemoryStore(), workflows: [WorkflowDefinition(BenchWorkflow.self)], executors: Self.executors,
                options: EngineCore.Options(globalConcurrency: max(1, workflows), seed: 1), tailsInbox: false, logger: logger)
            : logEngine
        // Queued before the run starts: the first commit holds every start.
        for index in 0..<workflows {
            try await engine.start(workflowID: "bench/\(index)", type: BenchWorkflow.type, input: "\(steps):0")
        }
        let began = ContinuousClock.now
        let cpuBefore = Self.processCPUSeconds()
        let running = Task { try await engine.run() }
        while await engine.runningCount > 0 { try await Task.sleep(for: .milliseconds(2)) }
        let elapsed = ContinuousClock.now - began
        let cpu = Self.processCPUSeconds() - cpuBefore
        let commits = await engine.commitCount
        let events = await engine.committedEventCount
        print(
            "throughput: \(commits) commits, \(events / max(1, commits)) events per commit on average; process CPU \(format(cpu)) s (\(Int(Double(workflows * steps) / cpu)) steps per CPU-second)"
        )
        await engine.stop()
        try await running.value
        await log.close()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return (seconds, Double(workflows * steps) / seconds)
    }

    struct Recovery {
        var workflows: Int
        var eventsPerWorkflow: Int
        var totalEvents: UInt64
        var openSeconds: Double
        var recoverSeconds: Double
        var refolded = 0
        var refoldedEvents = 0
        var refoldSeconds = 0.0
    }

    func measureRecovery(historySteps: Int, logger: Logger) async throws -> Recovery {
        let directory = try makeDirectory("recovery-\(historySteps)")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let (log, _, engine) = try await openEngine(directory: directory, logger: logger)
            for index in 0..<workflows {
                try await engine.start(workflowID: "bench/\(index)", type: BenchWorkflow.type, input: "\(historySteps):1")
            }
            let running = Task { try await engine.run() }
            // Every workflow sits in its hanging attempt once `historySteps` steps completed.
            while true {
                let hanging = await engine.inFlightCount
                if hanging == workflows, try log.reader.stateEntries(withPrefix: "engine/run/bench/0").first.map({
                    try WorkflowStatusReport(snapshot: $0.value, key: $0.key).record.completedActivities.count == historySteps
                }) == true {
                    break
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            try await Task.sleep(for: .milliseconds(500))
            // The kill: the run is abandoned without a graceful stop; what is committed stays.
            running.cancel()
            _ = try? await running.value
            await log.close()
        }
        let began = ContinuousClock.now
        var options = EventLogOptions()
        options.initialMapSizeBytes = 1 << 30
        let log = try EventLog(directory: directory, options: options, logger: logger)
        let store = try await EventLogStore.open(log: log, logger: logger)
        let opened = ContinuousClock.now
        let engine = try WorkflowEngine(
            store: store, workflows: [WorkflowDefinition(BenchWorkflow.self)], executors: Self.executors,
            options: EngineCore.Options(globalConcurrency: max(1, workflows), seed: 2), tailsInbox: false, logger: logger)
        let recovered = ContinuousClock.now
        precondition(engine.recoveredWorkflows == workflows, "recovered \(engine.recoveredWorkflows) of \(workflows)")
        let events = try log.reader.readStream(.forWorkflow("bench/0")).count
        let total = try log.reader.lastPosition().rawValue
        func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
        // The same log opened by a changed decider (version 2): nothing was committed by the
        // engine above (it never ran), so every snapshot is still of version 1.
        let refoldBegan = ContinuousClock.now
        let changed = try WorkflowEngine(
            store: store, workflows: [WorkflowDefinition(BenchWorkflowV2.self)], executors: Self.executors,
            options: EngineCore.Options(globalConcurrency: max(1, workflows), seed: 3), tailsInbox: false, logger: logger)
        let refoldSeconds = seconds(ContinuousClock.now - refoldBegan)
        precondition(changed.recoveryStats.refolded == workflows, "refolded \(changed.recoveryStats)")
        await log.close()
        return Recovery(
            workflows: engine.recoveredWorkflows, eventsPerWorkflow: events, totalEvents: total,
            openSeconds: seconds(opened - began), recoverSeconds: seconds(recovered - opened),
            refolded: changed.recoveryStats.refolded, refoldedEvents: changed.recoveryStats.refoldedEvents,
            refoldSeconds: refoldSeconds)
    }
}
