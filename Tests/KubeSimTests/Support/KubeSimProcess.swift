import Foundation

/// The real `kube-sim` binary running as a child process, as clients nobody here wrote see it.
final class KubeSimProcess: @unchecked Sendable {
    // @unchecked: `process` is only touched by the test that owns this value, one call at a time.
    let process: Process
    let stateDirectory: String
    let url: String
    let kubeconfigPath: String
    /// Time from spawn to the "listening" line.
    let startup: Duration

    /// The kube-sim executable in the build products directory, next to the test bundle.
    static func executablePath() throws -> String {
        var candidates: [URL] = []
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
        candidates.append(Bundle.main.bundleURL)
        for directory in candidates {
            let path = directory.appendingPathComponent("kube-sim").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw KubeSimTestError("kube-sim executable not found near \(candidates.map(\.path)); build it with `swift build`")
    }

    init(arguments: [String] = [], seed: UInt64 = 7) async throws {
        stateDirectory = try ProcessRunner.temporaryDirectory("process")
        let outPath = "\(stateDirectory)/stdout"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: try KubeSimProcess.executablePath())
        process.arguments = ["--state-dir", "\(stateDirectory)/state", "--port", "0", "--seed", String(seed)] + arguments
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = FileHandle.standardError
        process.standardInput = FileHandle.nullDevice
        let clock = ContinuousClock()
        let start = clock.now
        try process.run()
        var firstLine = ""
        while clock.now - start < .seconds(60) {
            let text = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first, text.contains("\n") {
                firstLine = String(line)
                break
            }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        startup = clock.now - start
        let prefix = "kube-sim listening on "
        guard firstLine.hasPrefix(prefix) else {
            process.terminate()
            throw KubeSimTestError("kube-sim did not print its address; first line: \"\(firstLine)\"")
        }
        url = String(firstLine.dropFirst(prefix.count))
        kubeconfigPath = "\(stateDirectory)/state/management.kubeconfig"
    }

    /// Sends SIGTERM and waits for the exit status (killing it after `timeout`).
    func terminate(timeout: Duration = .seconds(30)) async -> Int32 {
        process.terminate()
        let clock = ContinuousClock()
        let start = clock.now
        while process.isRunning, clock.now - start < timeout {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return -1
        }
        return process.terminationStatus
    }

    func removeStateDirectory() {
        try? FileManager.default.removeItem(atPath: stateDirectory)
    }
}
