import Engine
import EventLog
import Fleet
import Foundation
import Synchronization
import Testing
import Workflows

#if canImport(Glibc)
    import Glibc
#endif

/// Goal: `--watch` piped prints one line per change (not one per commit or per second) as
/// another process writes the log, and `workflow show --watch` ends when the workflow ends
/// with its outcome as the exit code.
/// Method: the real `capstan` binary watching a log this test process writes (so the watch
/// is woken across processes, through the reader's tail), its standard output a pipe read
/// line by line while the test moves a DeleteMachine workflow through its activities.
@Suite struct WatchTests {
    /// A `capstan` process whose standard output is read as it comes.
    final class Watcher: Sendable {
        final class Buffer: Sendable {
            let bytes = Mutex<[UInt8]>([])
            var text: String { bytes.withLock { String(decoding: $0, as: UTF8.self) } }
        }
        nonisolated(unsafe) let process: Process
        private let output = Buffer()
        private let errors = Buffer()

        init(_ arguments: [String]) throws {
            process = Process()
            process.executableURL = try capstanExecutable()
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(["NO_COLOR": "1"]) { $1 }
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            process.standardInput = FileHandle.nullDevice
            out.fileHandleForReading.readabilityHandler = { [output] handle in
                let data = handle.availableData
                output.bytes.withLock { $0 += data }
            }
            err.fileHandleForReading.readabilityHandler = { [errors] handle in
                let data = handle.availableData
                errors.bytes.withLock { $0 += data }
            }
            try process.run()
        }

        var lines: [String] {
            output.text.split(separator: "\n").map(String.init)
        }
        var stderr: String { errors.text }

        /// Waits until `count` lines were printed (a hang guard of 60 s, not a timing claim).
        func waitLines(_ count: Int) async throws -> [String] {
            let deadline = ContinuousClock.now + .seconds(60)
            while lines.count < count {
                guard ContinuousClock.now < deadline, process.isRunning || lines.count >= count else {
                    throw CLITestFailure("wanted \(count) lines, got \(lines); stderr: \(stderr)")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            return lines
        }

        func waitExit() async throws -> Int32 {
            let deadline = ContinuousClock.now + .seconds(60)
            while process.isRunning {
                guard ContinuousClock.now < deadline else {
                    kill(process.processIdentifier, SIGKILL)
                    throw CLITestFailure("the watch did not end; printed \(lines); stderr: \(stderr)")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            return process.terminationStatus
        }

        func stop() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    /// Broken on purpose once (LiveWatch printing every line on every render, not only
    /// changed ones): the unrelated commits printed the waiting line again and the line
    /// counts failed.
    @Test("CLI: workflow show --watch piped: one line per change, unrelated commits print nothing, ends with the workflow")
    func workflowShowWatch() async throws {
        try await QueryTests.withLog({ try await FleetLog("watch-show") }) { fleet in
            let id = try await fleet.startDelete("prod-md-0-x", at: 20)
            let watcher = try Watcher(["workflow", "show", id, "--watch", "--data-dir", fleet.directory])
            defer { watcher.stop() }
            var lines = try await watcher.waitLines(1)
            #expect(lines[0].contains("\(id) running"), "\(lines)")
            #expect(lines[0].contains("waiting on"), "\(lines)")

            // Commits that do not change the workflow: nothing printed.
            try await fleet.observeMachines(at: 21)
            try await fleet.observeMachines(at: 22)
            try await fleet.finish(id, "drain", .success(FleetLog.drained), at: 23)
            lines = try await watcher.waitLines(2)
            #expect(lines.count == 2, "the observations printed lines: \(lines)")
            #expect(lines[1] != lines[0])

            try await fleet.finish(id, "vm-delete", .success(FleetLog.deleted), at: 24)
            _ = try await watcher.waitLines(3)
            try await fleet.finish(id, "node-delete", .success(FleetLog.deleted), at: 25)
            let status = try await watcher.waitExit()
            lines = watcher.lines
            #expect(status == 0, "completed: exit 0; \(watcher.stderr)")
            #expect(lines.last?.contains("\(id) completed") == true, "\(lines)")
            #expect(lines.count == 4, "one line per change: \(lines)")
        }
    }

    @Test("CLI: workflow show --watch ends with exit 1 when the workflow fails; a wrong id is an error at once")
    func workflowShowWatchFails() async throws {
        try await QueryTests.withLog({ try await FleetLog("watch-fail") }) { fleet in
            let missing = try await capstan(["workflow", "show", "delete/default/nope", "--watch", "--data-dir", fleet.directory])
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("no workflow delete/default/nope"), "\(missing.stderr)")
            let id = try await fleet.startDelete("prod-md-0-y", at: 20)
            let watcher = try Watcher(["workflow", "show", id, "--watch", "--data-dir", fleet.directory])
            defer { watcher.stop() }
            _ = try await watcher.waitLines(1)
            _ = fleet.core.signal(workflowID: id, name: EngineSignal.cancel, payload: "test", now: fleet.time(21))
            try await fleet.flush()
            #expect(try await watcher.waitExit() == 1, "\(watcher.lines)")
            #expect(watcher.lines.last?.contains("cancelled") == true, "\(watcher.lines)")
        }
    }

    @Test("CLI: get machines --watch piped: the header once, then a row only when that machine changed")
    func getWatch() async throws {
        try await QueryTests.withLog({ try await FleetLog("watch-get") }) { fleet in
            try await fleet.observeMachines(at: 10)
            let watcher = try Watcher(["get", "machines", "--watch", "--data-dir", fleet.directory])
            defer { watcher.stop() }
            var lines = try await watcher.waitLines(4)
            #expect(lines[0].hasPrefix("NAME"), "\(lines)")
            #expect(lines.count == 4, "header and three machines: \(lines)")
            try await fleet.observe([
                .machineObserved(
                    namespace: "default", cluster: "prod", machine: "prod-md-0-c", deployment: "prod-md-0", phase: "Running",
                    version: try KubernetesVersion(parsing: "v1.33.4"), atNanoseconds: fleet.time(30).nanoseconds)
            ])
            lines = try await watcher.waitLines(5)
            #expect(lines.count == 5, "\(lines)")
            #expect(lines[4].hasPrefix("prod-md-0-c") && lines[4].contains("Running"), "\(lines)")
            // Unchanged machines stay quiet through more commits.
            try await fleet.observeMachines(at: 40)
            try await Task.sleep(for: .milliseconds(1500))  // room for a wrong line to show, not a timing claim
            #expect(watcher.lines.count == 6, "only prod-md-0-c went back to Provisioning: \(watcher.lines)")
        }
    }

    @Test("CLI: describe cluster --watch piped: control plane and MachineDeployment lines, a new one when machines change")
    func describeWatch() async throws {
        try await QueryTests.withLog({ try await FleetLog("watch-describe") }) { fleet in
            try await fleet.observeMachines(at: 10)
            let watcher = try Watcher(["describe", "cluster", "prod", "--watch", "--data-dir", fleet.directory])
            defer { watcher.stop() }
            var lines = try await watcher.waitLines(2)
            #expect(lines[0].contains("prod control plane Ready v1.33.4"), "\(lines)")
            #expect(lines.contains { $0.contains("MachineDeployment/prod-md-0 2/") }, "\(lines)")
            let before = lines.count
            try await fleet.observe([
                .machineConditionChanged(
                    namespace: "default", cluster: "prod", machine: "prod-md-0-c", type: "Ready", status: "True", reason: nil,
                    lastTransitionNanoseconds: fleet.time(30).nanoseconds, atNanoseconds: fleet.time(30).nanoseconds)
            ])
            lines = try await watcher.waitLines(before + 1)
            #expect(lines.dropFirst(before).contains { $0.contains("MachineDeployment/prod-md-0 3/") }, "\(lines)")
        }
    }

    @Test("CLI: --watch with --at or -o yaml is a usage error (exit 2)")
    func watchUsage() async throws {
        let past = try await capstan(["get", "clusters", "--watch", "--at", "5"])
        #expect(past.status == 2, "\(past.stderr)")
        #expect(past.stderr.contains("--watch shows the present"), "\(past.stderr)")
        let yaml = try await capstan(["workflow", "show", "x", "--watch", "-o", "yaml"])
        #expect(yaml.status == 2, "\(yaml.stderr)")
    }
}
