import CapstanSupport
import Engine
import EventLog
import Foundation
import Testing

/// The real crash test: `engine-crash-driver` runs multi-step workflows on the real
/// EventLog, its activities apply effects keyed to a ledger file; the test kills it with
/// SIGKILL at every named failpoint and at random moments (30+ kills), restarts it, and
/// checks that every workflow completed and every key's effect was applied exactly once.
/// A second test sends SIGTERM and checks the graceful stop.
@Suite(.serialized) struct CrashTests {
    static let workflows = 30
    static let steps = 8

    static var driverPath: String {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("engine-crash-driver"),
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug/engine-crash-driver"),
        ]
        return (candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]).path
    }

    static func temporaryDirectory(_ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("capstan-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func launch(_ directory: String, round: Int, delayMilliseconds: Int, environment: [String: String] = [:]) throws -> Foundation.Process {
        let process = Foundation.Process()
        process.executableURL = URL(fileURLWithPath: driverPath)
        process.arguments = [
            directory, "--round", "\(round)", "--workflows", "\(workflows)", "--steps", "\(steps)",
            "--activity-delay-ms", "\(delayMilliseconds)",
        ]
        var env = ProcessInfo.processInfo.environment
        env["CAPSTAN_FAILPOINT"] = nil
        env["CAPSTAN_FAILPOINT_SKIP"] = nil
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Waits (generously) for the process to end.
    static func waitForExit(_ process: Foundation.Process) async throws {
        let deadline = ContinuousClock.now + .seconds(120)
        while process.isRunning {
            if ContinuousClock.now > deadline {
                process.terminate()
                Issue.record("engine-crash-driver did not exit within 120 s")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    static func killedBySIGKILL(_ process: Foundation.Process) -> Bool {
        process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL
    }

    /// The ledger is a file with one line per application (it counts, it does not dedupe); the
    /// driver's executor checks it by key before applying, as the real executors create by a
    /// deterministic name. Seen failing, on purpose (2026-12-02): with the executor's check
    /// off (`CAPSTAN_CRASH_EXECUTOR_NOT_IDEMPOTENT=1 swift test --filter killAndRestart`),
    /// "effects applied more than once" listed the steps in flight at a kill, each at 2.
    @Test("Crash: SIGKILL at every failpoint and at random: all workflows complete, each effect once")
    func killAndRestart() async throws {
        let directory = try Self.temporaryDirectory("engine-crash")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var random = SplitMix64(seed: UInt64(UInt32.random(in: 0...UInt32.max)))
        var round = 0
        var kills = 0
        var runs = 0

        // Every failpoint on its first pass (it must fire), then on a later pass.
        var previousRunKilled = false
        for failpoint in Failpoint.allCases {
            for skip in [0, Int(1 + random.next() % 40)] {
                // A kill can land on the last commit of a round, leaving nothing for the next
                // run of that round to do, so no failpoint would be passed. A first-pass run
                // therefore starts on a fresh round: the killed one is finished without faults.
                if skip == 0 && previousRunKilled {
                    let finish = try Self.launch(directory, round: round, delayMilliseconds: 0)
                    try await Self.waitForExit(finish)
                    runs += 1
                    #expect(finish.terminationReason == .exit && finish.terminationStatus == 0)
                    round += 1
                }
                let process = try Self.launch(
                    directory, round: round, delayMilliseconds: 20,
                    environment: ["CAPSTAN_FAILPOINT": failpoint.rawValue, "CAPSTAN_FAILPOINT_SKIP": "\(skip)"])
                try await Self.waitForExit(process)
                runs += 1
                previousRunKilled = Self.killedBySIGKILL(process)
                if previousRunKilled {
                    kills += 1
                } else {
                    #expect(skip > 0, "failpoint \(failpoint.rawValue) did not fire on its first pass")
                    #expect(process.terminationStatus == 0, "driver failed with \(process.terminationStatus)")
                    round += 1
                }
            }
        }
        // Random kills until at least 30 in all.
        while kills < 30 || runs < 40 {
            let process = try Self.launch(directory, round: round, delayMilliseconds: 20)
            try await Task.sleep(for: .milliseconds(Int(50 + random.next() % 400)))
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            try await Self.waitForExit(process)
            runs += 1
            if Self.killedBySIGKILL(process) {
                kills += 1
            } else {
                #expect(process.terminationStatus == 0, "driver failed with \(process.terminationStatus)")
                round += 1
            }
            #expect(runs < 200, "too many runs")
            if runs >= 200 { break }
        }
        // Finish the last round without faults.
        let last = try Self.launch(directory, round: round, delayMilliseconds: 0)
        try await Self.waitForExit(last)
        #expect(last.terminationReason == .exit && last.terminationStatus == 0)
        #expect(kills >= 30)
        print("engine crash test: \(runs) runs, \(kills) SIGKILLs, \(round + 1) rounds of \(Self.workflows) workflows x \(Self.steps) steps")

        try Self.verify(directory: directory, rounds: round)
    }

    static func verify(directory: String, rounds: Int) throws {
        let reader = try EventLogReader(directory: directory + "/log")
        var expectedKeys: Set<String> = []
        for round in 0...rounds {
            for index in 0..<workflows {
                let workflowID = "round-\(round)/chain-\(index)"
                let key = StateKey.finished(workflowID)
                let snapshot = try #require(try reader.state(forKey: key), "\(workflowID) has no final snapshot")
                #expect(try WorkflowStatusReport(snapshot: snapshot, key: key).record.status == .completed, "\(workflowID)")
                var completions: [String: Int] = [:]
                for event in try reader.readStream(.forWorkflow(workflowID)) where event.type == "ActivityCompleted" {
                    if case .activityCompleted(let activityID, _, _) = try WorkflowEventCodec.decode(event).event {
                        completions[activityID, default: 0] += 1
                    }
                }
                for step in 1...steps {
                    #expect(completions["step-\(step)"] == 1, "\(workflowID)/step-\(step) completed \(completions["step-\(step)"] ?? 0) times")
                    expectedKeys.insert("\(workflowID)/step-\(step)")
                }
            }
        }
        #expect(try reader.stateEntries(withPrefix: StateKey.runningPrefix).isEmpty)
        let ledger = try String(contentsOfFile: directory + "/effects.log", encoding: .utf8).split(separator: "\n").map(String.init)
        var applied: [String: Int] = [:]
        for key in ledger { applied[key, default: 0] += 1 }
        #expect(Set(applied.keys) == expectedKeys)
        let duplicates = applied.filter { $0.value != 1 }
        #expect(duplicates.isEmpty, "effects applied more than once: \(duplicates)")
    }

    @Test("Crash: SIGTERM: the driver exits 0 with in-flight attempts finished and committed")
    func gracefulStopOnSIGTERM() async throws {
        let directory = try Self.temporaryDirectory("engine-sigterm")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let process = try Self.launch(directory, round: 0, delayMilliseconds: 400)
        // Wait until attempts are in flight: the ledger gets its first effects.
        let deadline = ContinuousClock.now + .seconds(60)
        while ((try? String(contentsOfFile: directory + "/effects.log", encoding: .utf8)) ?? "").isEmpty {
            #expect(ContinuousClock.now < deadline, "no effect applied within 60 s")
            if ContinuousClock.now > deadline { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        kill(process.processIdentifier, SIGTERM)
        try await Self.waitForExit(process)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)

        let reader = try EventLogReader(directory: directory + "/log")
        var unfinished = 0
        for index in 0..<Self.workflows {
            let workflowID = "round-0/chain-\(index)"
            let events = try reader.readStream(.forWorkflow(workflowID))
            let started = events.filter { $0.type == "ActivityStarted" }.count
            let ended = events.filter { $0.type == "ActivityCompleted" || $0.type == "ActivityFailed" }.count
            #expect(started == ended, "\(workflowID): \(started) attempts started, \(ended) ended")
            if let snapshot = try reader.state(forKey: StateKey.running(workflowID)) {
                unfinished += 1
                let record = try WorkflowStatusReport(snapshot: snapshot, key: workflowID).record
                #expect(record.lastRevision == UInt64(events.count - 1), "\(workflowID): snapshot behind its events")
            }
        }
        // SIGTERM came while work was left: the stop did not just run everything to the end.
        #expect(unfinished > 0)
    }
}
