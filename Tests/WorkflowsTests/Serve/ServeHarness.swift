import CapstanSupport
import Engine
import EventLog
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The harness of the `capstan serve` proofs: the real `capstan` binary as a child process,
/// SIGKILLed and restarted by a supervisor, and a driver that asks for workflows through the
/// data directory's inbox and reads their outcome from the log, as another process would.

struct ServeTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A built executable of this package, found next to the test bundle.
func builtExecutable(_ name: String) throws -> String {
    var candidates: [URL] = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
    candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
    candidates.append(Bundle.main.bundleURL)
    for directory in candidates {
        let path = directory.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw ServeTestError("\(name) executable not found near \(candidates.map(\.path)); build it with `swift build`")
}

/// A fresh directory under the system's temporary directory.
func makeTemporaryDirectory(_ label: String) throws -> String {
    let path = NSTemporaryDirectory() + "capstan-\(label)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// One `capstan serve` process; its standard error is appended to `logPath`, its standard
/// output to `logPath.out`.
final class ServeProcess: @unchecked Sendable {
    // @unchecked: only the owning ServeSupervisor (an actor) touches `process`.
    let process: Process

    init(executable: String, arguments: [String], logPath: String) throws {
        for path in [logPath, logPath + ".out"] where !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        let errors = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        errors.seekToEndOfFile()
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath + ".out"))
        output.seekToEndOfFile()
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardError = errors
        process.standardOutput = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    func killNow() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then the exit status (SIGKILL and -1 after `timeout`).
    func terminate(timeout: Duration = .seconds(60)) async -> Int32 {
        process.terminate()
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while process.isRunning, clock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            killNow()
            return -1
        }
        return process.terminationStatus
    }
}

/// Keeps one `capstan serve` running on a data directory, and kills it on request.
actor ServeSupervisor {
    let executable: String
    let arguments: [String]
    let logPath: String
    private var current: ServeProcess?
    private(set) var kills = 0
    private(set) var starts = 0
    /// The size of the log when the current process was started.
    private(set) var lastStartLogOffset = 0

    init(executable: String, arguments: [String], logPath: String) {
        self.executable = executable
        self.arguments = arguments
        self.logPath = logPath
    }

    /// Starts serve unless it runs.
    func ensureRunning() throws {
        if let current, current.isRunning { return }
        // The previous process is gone: what the log holds from here on is the new one's.
        lastStartLogOffset = ((try? FileManager.default.attributesOfItem(atPath: logPath))?[.size] as? NSNumber)?.intValue ?? 0
        current = try ServeProcess(executable: executable, arguments: arguments, logPath: logPath)
        starts += 1
    }

    /// SIGKILL: the process dies at whatever instant it is in.
    func killNow() {
        guard let current, current.isRunning else { return }
        current.killNow()
        kills += 1
    }

    /// Stops serve with SIGTERM and returns its exit status.
    func terminate() async -> Int32? {
        guard let current else { return nil }
        self.current = nil
        return await current.terminate()
    }

    /// Kills and restarts serve at seeded random instants until cancelled.
    func chaos(seed: UInt64, lifetimeMilliseconds: ClosedRange<Int>) async throws {
        var random = SplitMix64(seed: seed)
        while !Task.isCancelled {
            try ensureRunning()
            let span = UInt64(lifetimeMilliseconds.upperBound - lifetimeMilliseconds.lowerBound + 1)
            let lifetime = lifetimeMilliseconds.lowerBound + Int(random.next() % span)
            try? await Task.sleep(for: .milliseconds(lifetime))
            if Task.isCancelled { break }
            killNow()
        }
        try ensureRunning()
    }

    /// Waits (bounded) until the current process's log has a line ending with `marker`, e.g.
    /// until it runs its services: SIGTERM before that ends a starting process with status 15.
    func waitForCurrentLog(_ marker: String, timeout: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: logPath))) ?? Data()
            let text = String(decoding: bytes.dropFirst(lastStartLogOffset), as: UTF8.self)
            if text.split(separator: "\n").contains(where: { $0.hasSuffix(marker) }) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ServeTestError("serve's log has no line ending with \(marker) within \(timeout)")
    }

    /// Like ``chaos(seed:lifetimeMilliseconds:)``, but each lifetime starts once the process's
    /// log shows `marker` (it runs its services): on a loaded machine a start-up can take longer
    /// than a lifetime, and kills counted from the spawn would then never let it work.
    func chaos(seed: UInt64, lifetimeMilliseconds: ClosedRange<Int>, afterLogLine marker: String) async throws {
        var random = SplitMix64(seed: seed)
        while !Task.isCancelled {
            try ensureRunning()
            try? await waitForCurrentLog(marker, timeout: .seconds(120))
            let span = UInt64(lifetimeMilliseconds.upperBound - lifetimeMilliseconds.lowerBound + 1)
            let lifetime = lifetimeMilliseconds.lowerBound + Int(random.next() % span)
            try? await Task.sleep(for: .milliseconds(lifetime))
            if Task.isCancelled { break }
            killNow()
        }
        try ensureRunning()
    }

    /// The last lines of serve's standard error, for failure reports.
    nonisolated func logTail(lines: Int = 30) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}

/// Asks a running (or restarting) engine for workflows through the inbox, and reads how they
/// ended from the log's state, read-only, as the CLI does.
final class FleetDriver: @unchecked Sendable {
    // @unchecked: used by one test task at a time.
    let dataDirectory: String
    private var reader: EventLogReader?
    private var sent: UInt64 = 0

    init(dataDirectory: String) { self.dataDirectory = dataDirectory }

    func start(_ workflowID: String, type: String, input: String, uniqueKey: String? = nil) async throws {
        sent += 1
        try await InboxMessage.start(workflowID: workflowID, type: type, input: input, uniqueKey: uniqueKey)
            .send(EventID(high: 0xCA95_7A11, low: sent), dataDirectory: dataDirectory, actor: "serve-proof")
    }

    /// The finished run's record, or nil while it runs (or before the log exists).
    func finished(_ workflowID: String) throws -> WorkflowRecord? {
        if reader == nil {
            guard FileManager.default.fileExists(atPath: dataDirectory + "/data.mdb") else { return nil }
            do { reader = try EventLogReader(directory: dataDirectory) } catch let error as EventLogError
                where error.code == .notFound
            {
                return nil  // serve is creating the log right now
            }
        }
        let key = StateKey.finished(workflowID)
        guard let reader, let snapshot = try reader.state(forKey: key) else { return nil }
        return try WorkflowStatusReport(snapshot: snapshot, key: key).record
    }

    /// Waits until `workflowID` finishes; bounded generously for a loaded 2-core machine.
    func waitFinished(_ workflowID: String, timeout: Duration = .seconds(600)) async throws -> WorkflowRecord {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if let record = try finished(workflowID) { return record }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ServeTestError("workflow \(workflowID) did not finish within \(timeout)")
    }
}
