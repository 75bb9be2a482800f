import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Finds the package's built executables (`capstan`, `eventlog-crash-driver`) for tests
/// that run them as real processes: `CAPSTAN_BIN_DIR`, else the directory of the test
/// binary (SwiftPM puts products side by side), else `.build/debug` of the package.
enum Executables {
    static func url(_ name: String) throws -> URL {
        var candidates: [URL] = []
        if let override = ProcessInfo.processInfo.environment["CAPSTAN_BIN_DIR"] {
            candidates.append(URL(fileURLWithPath: override))
        }
        if let testBinary = Bundle.main.executableURL {
            candidates.append(testBinary.deletingLastPathComponent())
        }
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(packageRoot.appendingPathComponent(".build/debug"))
        for directory in candidates {
            let candidate = directory.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw TestFailure("no built \(name) next to the tests; looked in \(candidates.map(\.path))")
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A child process whose output goes to files (never a pipe that could fill and stall it).
final class ChildProcess {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    init(_ executable: URL, _ arguments: [String], outputPrefix: String, environment: [String: String]? = nil) throws {
        stdoutPath = outputPrefix + ".out"
        stderrPath = outputPrefix + ".err"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = executable
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    func kill(_ signal: Int32 = SIGKILL) {
        _ = Glibc.kill(process.processIdentifier, signal)
    }

    /// Waits for the process to end; kills it (and fails) if it outlives `timeout`.
    func wait(timeout: Duration = .seconds(180)) async throws {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill()
                process.waitUntilExit()
                throw TestFailure("\(process.executableURL?.lastPathComponent ?? "process") did not end within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        process.waitUntilExit()
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    var exitStatus: Int32 { process.terminationStatus }
    var killedBySignal: Bool { process.terminationReason == .uncaughtSignal }
}

/// Runs an executable to its end and returns its exit status and output.
func runToEnd(
    _ executable: URL, _ arguments: [String], in directory: String, environment: [String: String]? = nil,
    timeout: Duration = .seconds(180)
) async throws -> (status: Int32, signaled: Bool, stdout: String, stderr: String) {
    let prefix = directory + "/run-\(UInt64.random(in: 0...UInt64.max))"
    let child = try ChildProcess(executable, arguments, outputPrefix: prefix, environment: environment)
    try await child.wait(timeout: timeout)
    return (child.exitStatus, child.killedBySignal, child.stdout, child.stderr)
}

/// A fresh temporary directory, removed by the caller with `removeTemporaryDirectory`.
func makeTemporaryDirectory(_ label: String) throws -> String {
    let path = NSTemporaryDirectory() + "capstan-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func removeTemporaryDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}
