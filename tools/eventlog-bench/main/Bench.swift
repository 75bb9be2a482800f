// eventlog-bench: Capstan's event log against SQLite and raw liblmdb, in one run (issue 3).
import ArgumentParser
import Foundation
import Logging

@main
struct EventLogBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eventlog-bench",
        abstract: "Measure Capstan's event log against SQLite and raw liblmdb in one run.",
        discussion: """
            Workloads, each on Capstan's log, on SQLite (WAL, synchronous=FULL, one table \
            with a unique (stream, revision) index) and on raw liblmdb (the event's JSON keyed \
            by position, no codec: the floor), with the same realistic ~300-byte lifecycle \
            events (EventLogTesting):
              single   one event per durable commit, each awaited before the next
              group    --appenders concurrent appenders, one event per append (Capstan's \
            group commit batches them); the peers commit batches of --appenders events
              replay   a full scan of --events events: checked, decompressed, decoded
              bytes    data file size / events after loading --events events
            Every figure is the median over --runs runs; ratios are taken from those medians. \
            Build with -c release.

            Example:
              swift run -c release eventlog-bench --runs 3 --limits ../shared/limits/run
            """
    )

    @Option(help: "Events for the replay and the stored bytes per event.") var events: Int = 1_000_000
    @Option(help: "Events in the group-commit workload.") var groupEvents: Int = 200_000
    @Option(help: "Durable single-event commits per run.") var singleCommits: Int = 2_000
    @Option(help: "Concurrent appenders in the group-commit workload.") var appenders: Int = 64
    @Option(help: "Runs; each figure is the median.") var runs: Int = 3
    @Option(help: "Seed of the generated events.") var seed: UInt64 = 2026
    @Option(help: "Where the logs go (default: a new temporary directory, removed at the end).")
    var workDirectory: String?
    @Option(help: "Also run this machine-limits script (../shared/limits/run) and print its figures.")
    var limits: String?
    @Option(name: [.customShort("o"), .long], help: "text or json") var output: String = "text"
    @Flag(help: "Only load Capstan's log and replay it --runs times: a quiet workload for perf or callgrind.")
    var replayOnly = false

    func validate() throws {
        guard ["text", "json"].contains(output) else { throw ValidationError("--output must be text or json") }
        guard events > 0, groupEvents > 0, singleCommits > 0, appenders > 0, runs > 0 else {
            throw ValidationError("counts must be positive")
        }
    }

    func run() async throws {
        let root = workDirectory ?? NSTemporaryDirectory() + "eventlog-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if workDirectory == nil { try? FileManager.default.removeItem(atPath: root) } }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning  // the library's info logs would drown the table
            return handler
        }
        let runner = BenchRunner(options: self, root: root)
        if replayOnly {
            try await runner.replayOnly()
            return
        }
        var result = try await runner.measure()
        if let limits { result.limits = runLimits(script: limits, root: root) }
        if output == "json" {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            result.printText()
        }
    }

    private func runLimits(script: String, root: String) -> [String] {
        note("running \(script) (machine limits, C programs)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["bash", script, root + "/limits"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do {
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
            return lines.filter { !$0.hasPrefix("  ") }
        } catch {
            return ["could not run \(script): \(error)"]
        }
    }
}

func note(_ text: String) {
    FileHandle.standardError.write(Data(("eventlog-bench: " + text + "\n").utf8))
}
