// engine-bench: durable workflow steps per second and step latency on the real EventLog,
// and start-up (recovery) time after a real SIGKILL, with a cold page cache, of a process
// holding many unfinished workflows.
// Run in release: swift run -c release engine-bench --help
import ArgumentParser
import Engine
import EngineTesting
import EventLog
import Foundation
import Logging
import Synchronization

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

/// Times between a workflow's consecutive executor calls: one durable step (the completion
/// of step k committed, step k+1 scheduled and started committed, then dispatched).
final class StepLatency: Sendable {
    static let shared = StepLatency()
    private struct Samples {
        var last: [String: ContinuousClock.Instant] = [:]
        var nanoseconds: [Int64] = []
    }
    private let samples = Mutex(Samples())

    func call(_ workflowID: String) {
        let now = ContinuousClock.now
        samples.withLock { samples in
            if let last = samples.last[workflowID] {
                let elapsed = now - last
                samples.nanoseconds.append(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
            }
            samples.last[workflowID] = now
        }
    }

    /// The p50 and p99 in milliseconds since the last reset, and the sample count.
    func takePercentiles() -> (p50: Double, p99: Double, count: Int) {
        let sorted = samples.withLock { samples -> [Int64] in
            defer { samples = Samples() }
            return samples.nanoseconds.sorted()
        }
        guard !sorted.isEmpty else { return (0, 0, 0) }
        func at(_ fraction: Double) -> Double { Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]) / 1e6 }
        return (at(0.50), at(0.99), sorted.count)
    }
}

@main
struct EngineBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure durable workflow steps per second, step latency and recovery after a SIGKILL on the real EventLog.",
        discussion: """
            A step schedules, starts and completes a no-op activity, all durable (fsync at each group commit). \
            Recovery: a child process starts the unfinished workflows and is killed with SIGKILL once they are \
            durable; the log's files are dropped from the page cache (posix_fadvise DONTNEED); a fresh child \
            process opens the log and rebuilds the engine.
            """)

    @Option(help: ArgumentHelp("Concurrent workflows of each throughput run (comma-separated).", valueName: "list"))
    var workflows = "10000,100"

    @Option(help: ArgumentHelp("Steps per workflow in the throughput runs.", valueName: "count"))
    var steps = 10

    @Option(help: ArgumentHelp("Rounds of each throughput run (the median is reported).", valueName: "count"))
    var rounds = 5

    @Option(help: ArgumentHelp("Unfinished workflows of each recovery run (comma-separated).", valueName: "list"))
    var recoveryWorkflows = "1000,10000,100000"

    @Option(help: ArgumentHelp("Completed steps of each unfinished workflow before its hanging attempt.", valueName: "count"))
    var historySteps = 1

    @Option(help: ArgumentHelp("Where to create temporary logs.", valueName: "directory"))
    var scratch = NSTemporaryDirectory()

    @Flag(help: "Skip the recovery runs.")
    var throughputOnly = false

    @Flag(help: "Run the throughput on the in-memory store (the engine's own cost, without the log).")
    var inMemory = false

    @Option(help: .hidden) var prepareRecovery: String?
    @Option(help: .hidden) var recover: String?
    @Option(help: .hidden) var count = 0

    func run() async throws {
        var logger = Logger(label: "engine-bench")
        logger.logLevel = .warning
        if let directory = prepareRecovery { return try await prepare(directory: directory, count: count, logger: logger) }
        if let directory = recover { return try await recoverChild(directory: directory, count: count, logger: logger) }
        for concurrency in workflows.split(separator: ",").compactMap({ Int($0) }) {
            var rates: [Double] = []
            var p50s: [Double] = []
            var p99s: [Double] = []
            for round in 1...max(1, rounds) {
                let throughput = try await measureThroughput(concurrency: concurrency, logger: logger)
                let latency = StepLatency.shared.takePercentiles()
                rates.append(throughput.stepsPerSecond)
                p50s.append(latency.p50)
                p99s.append(latency.p99)
                print(
                    "throughput: round \(round): \(concurrency) workflows x \(steps) steps = \(concurrency * steps) steps in \(format(throughput.seconds)) s: \(Int(throughput.stepsPerSecond)) steps/s; step latency p50 \(String(format: "%.2f", latency.p50)) ms, p99 \(String(format: "%.2f", latency.p99)) ms (\(latency.count) steps)"
                )
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            print(
                "throughput median: \(concurrency) workflows: \(Int(median(rates))) steps/s over \(rates.count) rounds (\(rates.map { "\(Int($0))" }.joined(separator: ", "))); step latency median p50 \(String(format: "%.2f", median(p50s))) ms, p99 \(String(format: "%.2f", median(p99s))) ms"
            )
        }
        if throughputOnly { return }
        for count in recoveryWorkflows.split(separator: ",").compactMap({ Int($0) }) {
            try measureRecovery(count: count)
        }
    }

    func format(_ seconds: Double) -> String { String(format: "%.3f", seconds) }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

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
        "noop": { context in
            StepLatency.shared.call(context.workflowID)
            return ""
        },
        "hang": { _ in
            try await Task.sleep(for: .seconds(86_400))
            return ""
        },
    ]

    static func openLog(directory: String, logger: Logger) async throws -> (EventLog, EventLogStore) {
        var options = EventLogOptions()
        options.initialMapSizeBytes = 4 << 30
        let log = try EventLog(directory: directory, options: options, logger: logger)
        return (log, try await EventLogStore.open(log: log, logger: logger))
    }

    static func engine(
        store: any EngineStore, _ definition: WorkflowDefinition, concurrency: Int, seed: UInt64, logger: Logger
    ) throws -> WorkflowEngine {
        try WorkflowEngine(
            store: store, workflows: [definition], executors: executors,
            options: EngineCore.Options(globalConcurrency: max(1, concurrency), seed: seed), tailsInbox: false, logger: logger)
    }

    func measureThroughput(concurrency: Int, logger: Logger) async throws -> (seconds: Double, stepsPerSecond: Double) {
        let directory = try makeDirectory("throughput")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (log, store) = try await Self.openLog(directory: directory, logger: logger)
        let definition = WorkflowDefinition(BenchWorkflow.self)
        let engine = try Self.engine(
            store: inMemory ? InMemoryStore() : store, definition, concurrency: concurrency, seed: 1, logger: logger)
        // Queued before the run starts: the first commit holds every start.
        for index in 0..<concurrency {
            try await engine.start(workflowID: "bench/\(index)", type: BenchWorkflow.type, input: "\(steps):0")
        }
        _ = StepLatency.shared.takePercentiles()
        let began = ContinuousClock.now
        let cpuBefore = Self.processCPUSeconds()
        let running = Task { try await engine.run() }
        while await engine.runningCount > 0 { try await Task.sleep(for: .milliseconds(2)) }
        let elapsed = ContinuousClock.now - began
        let cpu = Self.processCPUSeconds() - cpuBefore
        let commits = await engine.commitCount
        let events = await engine.committedEventCount
        print(
            "throughput: \(concurrency) workflows: \(commits) commits, \(events / max(1, commits)) events per commit on average, \(String(format: "%.2f", Double(events) / Double(concurrency * steps))) events per step; process CPU \(format(cpu)) s (\(Int(Double(concurrency * steps) / cpu)) steps per CPU-second)"
        )
        await engine.stop()
        try await running.value
        await log.close()
        let seconds = Self.seconds(elapsed)
        return (seconds, Double(concurrency * steps) / seconds)
    }

    /// Child process: starts `count` workflows that complete `historySteps` steps and then
    /// hang in an attempt; once all are durable, says `ready` and waits for its SIGKILL.
    func prepare(directory: String, count: Int, logger: Logger) async throws {
        let (log, store) = try await Self.openLog(directory: directory, logger: logger)
        let engine = try Self.engine(store: store, WorkflowDefinition(BenchWorkflow.self), concurrency: count, seed: 1, logger: logger)
        for index in 0..<count {
            try await engine.start(workflowID: "bench/\(index)", type: BenchWorkflow.type, input: "\(historySteps):1")
        }
        let running = Task { try await engine.run() }
        // Every workflow sits in its hanging attempt once all its events are committed:
        // WorkflowStarted, three per completed step, the hang's ActivityScheduled and ActivityStarted.
        let expected = count * (3 * historySteps + 3)
        while await engine.committedEventCount < expected { try await Task.sleep(for: .milliseconds(20)) }
        _ = log
        print("ready", terminator: "\n")
        fflush(nil)
        try await running.value
    }

    /// Child process: opens the log and rebuilds the engine, after the kill and the page-cache drop.
    func recoverChild(directory: String, count: Int, logger: Logger) async throws {
        let began = ContinuousClock.now
        let (log, store) = try await Self.openLog(directory: directory, logger: logger)
        let opened = ContinuousClock.now
        let engine = try Self.engine(store: store, WorkflowDefinition(BenchWorkflow.self), concurrency: count, seed: 2, logger: logger)
        let recovered = ContinuousClock.now
        precondition(engine.recoveredWorkflows == count, "recovered \(engine.recoveredWorkflows) of \(count)")
        let events = try log.reader.readStream(.forWorkflow("bench/0")).count
        let total = try log.reader.lastPosition().rawValue
        print(
            "recovery: \(count) unfinished workflows after SIGKILL, cold page cache, \(historySteps) completed steps each (\(events) events per workflow, \(total) events in all): open log \(format(Self.seconds(opened - began))) s, rebuild \(format(Self.seconds(recovered - opened))) s, total \(format(Self.seconds(recovered - began))) s"
        )
        // The same log opened by a changed decider (version 2): the engine above never ran,
        // so every snapshot is still of version 1 and is dropped; every run is folded again.
        let refoldBegan = ContinuousClock.now
        let changed = try Self.engine(
            store: store, WorkflowDefinition(BenchWorkflowV2.self), concurrency: count, seed: 3, logger: logger)
        precondition(changed.recoveryStats.refolded == count, "refolded \(changed.recoveryStats)")
        print(
            "recovery after a decider version change (same process, after the rebuild above; every snapshot dropped, \(changed.recoveryStats.refolded) runs folded again from \(changed.recoveryStats.refoldedEvents) events): rebuild \(format(Self.seconds(ContinuousClock.now - refoldBegan))) s"
        )
        await log.close()
    }

    static func executablePath() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return length > 0 ? String(cString: buffer) : CommandLine.arguments[0]
    }

    /// Drops every file under `directory` from the page cache (after a sync, so its pages are clean).
    static func dropPageCache(_ directory: String) throws {
        sync()
        guard let files = FileManager.default.enumerator(atPath: directory) else { return }
        for case let file as String in files {
            let path = (directory as NSString).appendingPathComponent(file)
            let descriptor = open(path, O_RDONLY)
            guard descriptor >= 0 else { continue }
            defer { close(descriptor) }
            fdatasync(descriptor)
            let result = posix_fadvise(descriptor, 0, 0, POSIX_FADV_DONTNEED)
            if result != 0 { throw ValidationError("posix_fadvise(DONTNEED) on \(path) failed: \(result)") }
        }
    }

    func measureRecovery(count: Int) throws {
        let directory = try makeDirectory("recovery-\(count)")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let executable = Self.executablePath()
        let child = Process()
        child.executableURL = URL(fileURLWithPath: executable)
        child.arguments = [
            "--prepare-recovery", directory, "--count", "\(count)", "--history-steps", "\(historySteps)", "--steps", "\(steps)",
        ]
        let output = Pipe()
        child.standardOutput = output
        let preparing = ContinuousClock.now
        try child.run()
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("ready") {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw ValidationError("the preparing child ended before it was ready") }
            seen.append(chunk)
        }
        let prepared = Self.seconds(ContinuousClock.now - preparing)
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        guard child.terminationReason == .uncaughtSignal, child.terminationStatus == SIGKILL else {
            throw ValidationError("the preparing child was not killed by SIGKILL (status \(child.terminationStatus))")
        }
        try Self.dropPageCache(directory)
        print("recovery: \(count) workflows prepared in \(format(prepared)) s, then SIGKILL; page cache of the log dropped")
        fflush(nil)
        let recovering = Process()
        recovering.executableURL = URL(fileURLWithPath: executable)
        recovering.arguments = [
            "--recover", directory, "--count", "\(count)", "--history-steps", "\(historySteps)", "--steps", "\(steps)",
        ]
        let began = ContinuousClock.now
        try recovering.run()
        recovering.waitUntilExit()
        print("recovery: \(count) workflows: the recovering process ran \(format(Self.seconds(ContinuousClock.now - began))) s in all (start-up and exit included)")
        guard recovering.terminationStatus == 0 else { throw ValidationError("the recovering child failed: \(recovering.terminationStatus)") }
    }
}
