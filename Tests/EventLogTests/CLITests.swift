import EventLog
import EventLogTesting
import Foundation
import Testing

@Suite("capstan CLI")
struct CLITests {
    struct VerifyOutput: Decodable {
        struct Finding: Decodable {
            var position: UInt64?
            var stream: String?
            var kind: String
            var detail: String
        }
        var events: UInt64
        var lastPosition: UInt64
        var damage: [Finding]
        var ok: Bool
    }

    /// Goal: every `capstan` command teaches through --help. Method: read the help of the
    /// root, `log`, each log command and `demo`, and look for the abstract, examples and
    /// exit codes.
    @Test("CLI: help: every command explains itself with examples")
    func helpTeaches() async throws {
        let capstan = try Executables.url("capstan")
        let root = try makeTemporaryDirectory("cli-help")
        defer { removeTemporaryDirectory(root) }
        let expectations: [([String], [String])] = [
            (["--help"], ["Exit codes", "log", "demo"]),
            (["log", "--help"], ["verify", "stats", "export", "backup", "read-only"]),
            (["log", "verify", "--help"], ["Check every event, checksum and index of the log.", "Exit codes", "Examples"]),
            (["log", "stats", "--help"], ["compression ratio", "Examples", "--data-dir", "--output"]),
            (["log", "export", "--help"], ["JSON lines", "--after", "--stream", "--output-file", "base64"]),
            (["log", "backup", "--help"], ["consistent", "Examples"]),
            (["log", "demo", "--help"], ["v1.33", "--events", "--seed", "Examples"]),
        ]
        for (arguments, phrases) in expectations {
            let result = try await runToEnd(capstan, arguments, in: root)
            #expect(result.status == 0, "capstan \(arguments.joined(separator: " "))")
            for phrase in phrases {
                #expect(result.stdout.contains(phrase), "capstan \(arguments.joined(separator: " ")) lacks \"\(phrase)\"")
            }
        }
    }

    /// Goal: a wrong data directory gives a clear error naming it, not an LMDB errno.
    /// Method: run the read-only commands on a missing directory and on a directory that
    /// holds no log.
    @Test("CLI: errors: missing or non-log data directory is named (exit 1)")
    func badDataDirectory() async throws {
        let capstan = try Executables.url("capstan")
        let root = try makeTemporaryDirectory("cli-bad")
        defer { removeTemporaryDirectory(root) }
        let missing = root + "/no-such-dir"
        for command in [["log", "verify"], ["log", "stats"], ["log", "export"]] {
            let result = try await runToEnd(capstan, command + ["--data-dir", missing], in: root)
            #expect(result.status == 1, "\(command)")
            #expect(result.stderr.contains(missing) && result.stderr.contains("does not exist"), "\(result.stderr)")
        }
        let empty = root + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let result = try await runToEnd(
            capstan, ["log", "stats"], in: root, environment: ["CAPSTAN_DATA_DIR": empty])
        #expect(result.status == 1)
        #expect(result.stderr.contains(empty) && result.stderr.contains("data.mdb"), "\(result.stderr)")
    }

    /// Goal: the demo works twice on one data directory and the log commands read what it
    /// wrote, with parseable `-o json`. Method: run `capstan log demo` twice, then stats,
    /// verify and export, and compare the counts.
    @Test("CLI: demo: twice on one directory, then stats, verify and export agree (events=1500)")
    func demoThenReadCommands() async throws {
        let capstan = try Executables.url("capstan")
        let root = try makeTemporaryDirectory("cli-demo")
        defer { removeTemporaryDirectory(root) }
        let data = root + "/data"
        for run in 1...2 {
            let demo = try await runToEnd(
                capstan, ["log", "demo", "--data-dir", data, "--events", "1500", "--clusters", "8", "-o", "json"], in: root)
            #expect(demo.status == 0, "demo run \(run): \(demo.stderr)")
            let summary = try JSONSerialization.jsonObject(with: Data(demo.stdout.utf8)) as? [String: Any]
            #expect(summary?["eventsAppended"] as? Int == 1500)
            #expect(summary?["lastPosition"] as? Int == 1500 * run)
            #expect(summary?["verified"] as? Bool == true)
        }
        let stats = try await runToEnd(capstan, ["log", "stats", "--data-dir", data, "-o", "json"], in: root)
        #expect(stats.status == 0, "\(stats.stderr)")
        let statsJSON = try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any]
        #expect(statsJSON?["events"] as? Int == 3000)
        #expect((statsJSON?["streams"] as? Int ?? 0) > 16)

        let verify = try await runToEnd(capstan, ["log", "verify", "--data-dir", data, "-o", "json"], in: root)
        #expect(verify.status == 0)
        let report = try JSONDecoder().decode(VerifyOutput.self, from: Data(verify.stdout.utf8))
        #expect(report.ok && report.events == 3000 && report.damage.isEmpty)

        let exportFile = root + "/export.jsonl"
        let export = try await runToEnd(
            capstan, ["log", "export", "--data-dir", data, "--after", "1000", "--output-file", exportFile], in: root)
        #expect(export.status == 0, "\(export.stderr)")
        let lines = try String(contentsOfFile: exportFile, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2000)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
        #expect(first?["position"] as? Int == 1001)
        #expect(first?["payload"] is [String: Any], "JSON payloads are embedded as JSON")
        #expect((first?["id"] as? String)?.count == 32)
        #expect((first?["recordedAt"] as? String)?.hasSuffix("Z") == true)
    }

    /// Goal: `log verify` names the damaged position and exits 1. Method: write a log whose
    /// event 201 has an incompressible payload (so its bytes sit verbatim in data.mdb),
    /// flip one of those bytes in a copy, and verify the copy.
    @Test("CLI: verify: flipped payload byte is reported at its position (exit 1)")
    func verifyNamesDamagedPosition() async throws {
        let capstan = try Executables.url("capstan")
        let root = try makeTemporaryDirectory("cli-damage")
        defer { removeTemporaryDirectory(root) }
        let original = root + "/original"
        try FileManager.default.createDirectory(atPath: original, withIntermediateDirectories: true)
        var random = SeededRandom(seed: 201)
        let marker = (0..<600).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        do {
            let log = try EventLog(directory: original)
            var generator = LifecycleEventGenerator(seed: 5)
            for _ in 0..<200 {
                let next = generator.next()
                _ = try await log.append([next.event], to: next.streamID, expectedRevision: .any)
            }
            let binary = ProposedEvent(
                id: EventID(high: 1, low: contentHash(type: "test.Binary", payload: marker)), type: "test.Binary",
                metadata: EventMetadata(actor: "test"), payload: marker)
            let appended = try await log.append([binary], to: "test/binary", expectedRevision: .noStream)
            #expect(appended.lastPosition.rawValue == 201)
            for _ in 0..<50 {
                let next = generator.next()
                _ = try await log.append([next.event], to: next.streamID, expectedRevision: .any)
            }
            await log.close()
        }
        let healthy = try await runToEnd(capstan, ["log", "verify", "--data-dir", original], in: root)
        #expect(healthy.status == 0, "\(healthy.stdout)")

        let damaged = root + "/damaged"
        try FileManager.default.copyItem(atPath: original, toPath: damaged)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: damaged + "/data.mdb")))
        let needle = Array(marker[0..<32])
        var flipped = 0
        var index = 0
        while index + marker.count <= bytes.count {
            if bytes[index] == needle[0] && Array(bytes[index..<index + 32]) == needle {
                bytes[index + 300] ^= 0x5A
                flipped += 1
                index += marker.count
            } else {
                index += 1
            }
        }
        try #require(flipped > 0, "the incompressible payload was not found verbatim in data.mdb")
        try Data(bytes).write(to: URL(fileURLWithPath: damaged + "/data.mdb"))

        let text = try await runToEnd(capstan, ["log", "verify", "--data-dir", damaged], in: root)
        #expect(text.status == 1, "\(text.stdout) \(text.stderr)")
        #expect(text.stdout.contains("position 201"), "\(text.stdout)")
        let json = try await runToEnd(capstan, ["log", "verify", "--data-dir", damaged, "-o", "json"], in: root)
        #expect(json.status == 1)
        let report = try JSONDecoder().decode(VerifyOutput.self, from: Data(json.stdout.utf8))
        #expect(!report.ok)
        #expect(report.damage.map(\.position) == [201], "\(report.damage)")
        #expect(report.lastPosition == 251, "the check went on past the damage to the end")
    }

    /// Goal: a truncated data file is reported, never a crash. Method: cut a copy's
    /// data.mdb to 60% and run verify and stats on it.
    @Test("CLI: verify: truncated data file is reported without crashing")
    func verifyTruncatedFile() async throws {
        let capstan = try Executables.url("capstan")
        let root = try makeTemporaryDirectory("cli-truncated")
        defer { removeTemporaryDirectory(root) }
        let data = root + "/data"
        let demo = try await runToEnd(capstan, ["log", "demo", "--data-dir", data, "--events", "3000", "--clusters", "4"], in: root)
        #expect(demo.status == 0, "\(demo.stderr)")
        let file = FileHandle(forUpdatingAtPath: data + "/data.mdb")
        let size = try file?.seekToEnd() ?? 0
        try file?.truncate(atOffset: size * 6 / 10)
        try file?.close()
        for command in [["log", "verify"], ["log", "stats"]] {
            let result = try await runToEnd(capstan, command + ["--data-dir", data], in: root)
            #expect(!result.signaled, "capstan \(command) crashed: \(result.stderr)")
            #expect(result.status == 1, "capstan \(command): \(result.stdout)")
        }
    }

    /// Goal: `log backup` makes a consistent copy while a writer appends. Method: run the
    /// crash driver as a writer, back up meanwhile, stop the writer, verify the copy.
    @Test("CLI: backup: consistent copy while a writer appends")
    func backupWhileWriting() async throws {
        let capstan = try Executables.url("capstan")
        let driver = try Executables.url("eventlog-crash-driver")
        let root = try makeTemporaryDirectory("cli-backup")
        defer { removeTemporaryDirectory(root) }
        let data = root + "/data"
        let demo = try await runToEnd(capstan, ["log", "demo", "--data-dir", data, "--events", "2000", "--clusters", "8"], in: root)
        #expect(demo.status == 0, "\(demo.stderr)")
        let writer = try ChildProcess(
            driver, ["append", "--data-dir", data, "--seed", "9", "--appenders", "2"], outputPrefix: root + "/writer")
        defer { writer.kill() }
        try await Task.sleep(for: .milliseconds(300))
        let backup = try await runToEnd(capstan, ["log", "backup", root + "/copy", "--data-dir", data, "-o", "json"], in: root)
        writer.kill()
        try await writer.wait()
        #expect(backup.status == 0, "\(backup.stdout) \(backup.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any]
        #expect((summary?["events"] as? Int ?? 0) >= 2000)
        #expect(summary?["verified"] as? Bool == true)
        let verify = try await runToEnd(capstan, ["log", "verify", "--data-dir", root + "/copy"], in: root)
        #expect(verify.status == 0, "\(verify.stdout)")
    }
}
