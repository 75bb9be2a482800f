import Engine
import EventLog
import Fleet
import Foundation
import Testing
import Workflows

#if canImport(Glibc)
    import Glibc
#endif

struct CLITestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The built `capstan` next to the test bundle (SwiftPM puts products side by side).
func capstanExecutable() throws -> URL {
    var candidates: [URL] = []
    if let override = ProcessInfo.processInfo.environment["CAPSTAN_BIN_DIR"] { candidates.append(URL(fileURLWithPath: override)) }
    if let testBinary = Bundle.main.executableURL { candidates.append(testBinary.deletingLastPathComponent()) }
    candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
    candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
    for directory in candidates {
        let candidate = directory.appendingPathComponent("capstan")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    throw CLITestFailure("no built capstan next to the tests; looked in \(candidates.map(\.path))")
}

struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `capstan arguments` to its end (output through files, never a pipe that could fill).
func capstan(_ arguments: [String], environment: [String: String] = [:]) async throws -> CLIResult {
    let prefix = NSTemporaryDirectory() + "capstan-cli-run-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    _ = FileManager.default.createFile(atPath: prefix + ".out", contents: nil)
    _ = FileManager.default.createFile(atPath: prefix + ".err", contents: nil)
    defer {
        try? FileManager.default.removeItem(atPath: prefix + ".out")
        try? FileManager.default.removeItem(atPath: prefix + ".err")
    }
    let process = Process()
    process.executableURL = try capstanExecutable()
    process.arguments = arguments
    var merged = ProcessInfo.processInfo.environment.merging(["USER": "alice", "NO_COLOR": "1"]) { $1 }
    merged.merge(environment) { $1 }
    process.environment = merged
    process.standardOutput = FileHandle(forWritingAtPath: prefix + ".out")
    process.standardError = FileHandle(forWritingAtPath: prefix + ".err")
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = ContinuousClock.now + .seconds(120)
    while process.isRunning {
        if ContinuousClock.now > deadline {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw CLITestFailure("capstan \(arguments.joined(separator: " ")) did not end within 120 s")
        }
        try await Task.sleep(for: .milliseconds(5))
    }
    process.waitUntilExit()
    return CLIResult(
        status: process.terminationStatus,
        stdout: (try? String(contentsOfFile: prefix + ".out", encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: prefix + ".err", encoding: .utf8)) ?? "")
}

func fixturePath(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)").path
}

func fixture(_ name: String) throws -> String { try String(contentsOfFile: fixturePath(name), encoding: .utf8) }

func temporaryDirectory(_ label: String) throws -> String {
    let path = NSTemporaryDirectory() + "capstan-cli-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A small fleet on a real log: two clusters applied (`default/prod`, `staging/stage`),
/// observed machines and conditions, and workflows driven through the engine's pure core
/// with fixed times (so every table and JSON answer is the same on every run).
final class FleetLog {
    let directory: String
    let log: EventLog
    let core = EngineCore(workflows: [WorkflowDefinition(DeleteMachine.self)], options: .init(seed: 7), idIsTaken: { _ in false })
    var dispatches: [ActivityDispatch] = []
    /// The log's end after the apply (before anything was observed).
    var appliedPosition = LogPosition.start
    static let t0: Int64 = 1_795_000_000_000_000_000  // 2026-11-18T…

    init(_ label: String) async throws {
        directory = try temporaryDirectory(label)
        let source = ChangeSource(user: "alice", host: "laptop", atNanoseconds: Self.t0)
        do {
            let log = try EventLog(directory: directory)
            self.log = log
            let files = try ["catalog.yaml", "fleet.yaml", "stage.yaml"].map { ManifestFile(name: $0, text: try fixture($0)) }
            _ = try await FleetRecorder.perform(FleetOperation(.apply(files: files), source: source), on: log)
            appliedPosition = try log.reader.lastPosition()
        }
    }

    func close() async {
        await log.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func observe(_ events: [FleetEvent]) async throws {
        _ = try await FleetRecorder.recordObserved(events, actor: "observer", to: log)
    }

    /// The machines of `prod` (three, at v1.33.4, Running; the third not Ready) and stage's one.
    func observeMachines(at seconds: Int64) async throws {
        let at = Self.t0 + seconds * 1_000_000_000
        let v = try KubernetesVersion(parsing: "v1.33.4")
        try await observe([
            .controlPlaneObserved(namespace: "default", cluster: "prod", installedVersion: v, status: "Ready", ready: true, atNanoseconds: at),
            .machineObserved(namespace: "default", cluster: "prod", machine: "prod-md-0-a", deployment: "prod-md-0", phase: "Running", version: v, atNanoseconds: at),
            .machineObserved(namespace: "default", cluster: "prod", machine: "prod-md-0-b", deployment: "prod-md-0", phase: "Running", version: v, atNanoseconds: at),
            .machineObserved(namespace: "default", cluster: "prod", machine: "prod-md-0-c", deployment: "prod-md-0", phase: "Provisioning", version: v, atNanoseconds: at),
            .machineConditionChanged(namespace: "default", cluster: "prod", machine: "prod-md-0-a", type: "Ready", status: "True", reason: nil, lastTransitionNanoseconds: at, atNanoseconds: at),
            .machineConditionChanged(namespace: "default", cluster: "prod", machine: "prod-md-0-b", type: "Ready", status: "True", reason: nil, lastTransitionNanoseconds: at, atNanoseconds: at),
            .machineConditionChanged(namespace: "default", cluster: "prod", machine: "prod-md-0-c", type: "Ready", status: "False", reason: "KubeletNotReady", lastTransitionNanoseconds: at, atNanoseconds: at),
            .controlPlaneObserved(namespace: "staging", cluster: "stage", installedVersion: v, status: "Provisioning", ready: false, atNanoseconds: at),
            .machineObserved(namespace: "staging", cluster: "stage", machine: "stage-md-0-a", deployment: "stage-md-0", phase: "Running", version: v, atNanoseconds: at),
        ])
    }

    /// Appends what the core decided (as the engine does) and keeps its dispatches.
    func flush() async throws {
        while let batch = core.takeBatch() {
            if !batch.streams.isEmpty || !batch.stateWrites.isEmpty {
                _ = try await log.append(batch.streams, stateWrites: batch.stateWrites)
            }
            dispatches += batch.dispatches
        }
    }

    func time(_ seconds: Int64) -> Timestamp { Timestamp(nanoseconds: Self.t0 + seconds * 1_000_000_000) }

    /// Starts DeleteMachine for `machine` of prod.
    func startDelete(_ machine: String, at seconds: Int64) async throws -> String {
        let id = "delete/default/\(machine)"
        let input = DeleteMachine.Input(cluster: .init(namespace: "default", name: "prod"), machine: machine)
        try core.start(workflowID: id, type: DeleteMachine.type, input: Payload.encode(input), now: time(seconds))
        try await flush()
        return id
    }

    /// Finishes the dispatched attempt of `activityID` of `workflowID`.
    func finish(_ workflowID: String, _ activityID: String, _ result: Result<String, ActivityFailure>, at seconds: Int64) async throws {
        guard let index = dispatches.firstIndex(where: { $0.key.workflowID == workflowID && $0.key.activityID == activityID }) else {
            throw CLITestFailure("no dispatch of \(workflowID)/\(activityID); have \(dispatches.map(\.key))")
        }
        let dispatch = dispatches.remove(at: index)
        core.activityFinished(dispatch, result: result, now: time(seconds))
        try await flush()
    }

    static var drained: String { Payload.encode(Activities.DrainOutput(drained: true, timedOut: false)) }
    static var deleted: String { Payload.encode(Activities.Deleted(alreadyGone: false)) }
}
