import Engine
import EventLog
import Fleet
import Foundation
import Testing
import Workflows

/// Goal: the query commands answer from the log as kubectl users expect (tables, labels,
/// namespaces, JSON), `--at` gives the fleet as it stood at a position, and the control
/// commands reach the engine through the inbox.
/// Method: a real log built in-process (apply, observed facts, workflows driven through the
/// engine's core at fixed times), queried by the real `capstan` binary.
@Suite struct QueryTests {
    /// Builds the standard log: both clusters observed, three DeleteMachine runs: one
    /// completed, one failing (retry pending), one paused.
    static func standardLog(_ label: String) async throws -> FleetLog {
        let fleet = try await FleetLog(label)
        try await fleet.observeMachines(at: 10)
        let done = try await fleet.startDelete("prod-md-0-x", at: 20)
        try await fleet.finish(done, "drain", .success(FleetLog.drained), at: 21)
        try await fleet.finish(done, "vm-delete", .success(FleetLog.deleted), at: 22)
        try await fleet.finish(done, "node-delete", .success(FleetLog.deleted), at: 23)
        let failing = try await fleet.startDelete("prod-md-0-y", at: 30)
        try await fleet.finish(failing, "drain", .success(FleetLog.drained), at: 31)
        try await fleet.finish(
            failing, "vm-delete", .failure(ActivityFailure(kind: "http503", message: "virtualmachines: service unavailable")),
            at: 32)
        let paused = try await fleet.startDelete("prod-md-0-z", at: 40)
        _ = fleet.core.signal(workflowID: paused, name: EngineSignal.pause, payload: "", now: fleet.time(41))
        try await fleet.flush()
        return fleet
    }

    /// Runs `body` with the log, closed and removed afterwards.
    static func withLog(_ make: () async throws -> FleetLog, _ body: (FleetLog) async throws -> Void) async throws {
        let fleet = try await make()
        do { try await body(fleet) } catch {
            await fleet.close()
            throw error
        }
        await fleet.close()
    }

    /// Compares `actual` with the expected file (set CAPSTAN_UPDATE_EXPECTED=1 to rewrite it,
    /// then read the diff before committing).
    static func expectMatches(_ actual: String, file: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let path = fixturePath("expected/" + file)
        if ProcessInfo.processInfo.environment["CAPSTAN_UPDATE_EXPECTED"] == "1" {
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try actual.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOfFile: path, encoding: .utf8)
        #expect(actual == expected, "\(file) differs:\n\(actual)", sourceLocation: sourceLocation)
    }

    @Test("CLI: get: tables, wide, names, label selectors and JSON match the expected files")
    func tables() async throws {
        try await Self.withLog({ try await Self.standardLog("tables") }) { fleet in
        let d = ["--data-dir", fleet.directory]
        let cases: [([String], String)] = [
            (["get", "clusters"], "clusters.txt"),
            (["get", "clusters", "-A", "-o", "wide"], "clusters-all-wide.txt"),
            (["get", "clusters", "-A", "-l", "env=staging"], "clusters-staging.txt"),
            (["get", "md", "-A"], "machinedeployments-all.txt"),
            (["get", "machines", "-o", "wide"], "machines-wide.txt"),
            (["get", "machines", "-l", "cluster.x-k8s.io/deployment-name!=prod-md-0", "-A"], "machines-not-md0.txt"),
            (["get", "machines", "-A", "-o", "name"], "machines-names.txt"),
            (["get", "clusters", "-o", "json"], "clusters.json"),
            (["get", "workflows", "-o", "json"], "workflows.json"),
            (["get", "workflows", "-l", "capstan.dev/status=paused", "-o", "name"], "workflows-paused.txt"),
            (["workflow", "show", "delete/default/prod-md-0-y", "-o", "yaml"], "workflow-show.yaml"),
            (["workflow", "diagnose", "delete/default/prod-md-0-y"], "workflow-diagnose.txt"),
        ]
        for (arguments, file) in cases {
            let result = try await capstan(arguments + d)
            #expect(result.status == 0, "capstan \(arguments.joined(separator: " ")): \(result.stderr)")
            try Self.expectMatches(result.stdout, file: file)
        }
        // An empty answer goes to standard error, kubectl's way, so scripts read nothing.
        let none = try await capstan(["get", "clusters", "-n", "nowhere"] + d)
        #expect(none.status == 0 && none.stdout.isEmpty && none.stderr.contains("No clusters found in namespace nowhere"))
        }
    }

    @Test("CLI: workflow history: every event with position, time, actor and payload (-o json)")
    func history() async throws {
        try await Self.withLog({ try await Self.standardLog("history") }) { fleet in
        let result = try await capstan(["workflow", "history", "delete/default/prod-md-0-x", "-o", "json", "--data-dir", fleet.directory])
        #expect(result.status == 0, "\(result.stderr)")
        struct Row: Decodable {
            var position: UInt64
            var time: String
            var actor: String
            var type: String
        }
        let rows = try JSONDecoder().decode([Row].self, from: Data(result.stdout.utf8))
        let stream = try fleet.log.reader.readStream(.forWorkflow("delete/default/prod-md-0-x"))
        #expect(rows.map(\.position) == stream.map(\.position.rawValue))  // break: drop the last event in History
        #expect(rows.map(\.type).first == "WorkflowStarted" && rows.map(\.type).last == "WorkflowCompleted")
        #expect(rows.allSatisfy { $0.actor == "engine" && $0.time.hasSuffix("Z") })
        }
    }

    @Test("CLI: --at: a query at a past position answers what the same query answered then")
    func timeTravel() async throws {
        try await Self.withLog({ try await FleetLog("at") }) { fleet in
        try await fleet.observeMachines(at: 10)
        let failing = try await fleet.startDelete("prod-md-0-y", at: 30)
        try await fleet.finish(failing, "drain", .success(FleetLog.drained), at: 31)
        let then = try fleet.log.reader.lastPosition()
        let d = ["--data-dir", fleet.directory]
        let queries = [["get", "machines", "-A", "-o", "json"], ["get", "workflows", "-o", "json"], ["get", "clusters", "-A", "-o", "json"],
                       ["workflow", "show", failing, "-o", "json"]]
        var answers: [String] = []
        for query in queries { answers.append(try await capstan(query + d).stdout) }
        // The fleet moves on: a machine goes, another turns Ready, the workflow fails an attempt.
        let at = FleetLog.t0 + 50_000_000_000
        try await fleet.observe([
            .machineDeleted(namespace: "default", cluster: "prod", machine: "prod-md-0-a", atNanoseconds: at),
            .machineConditionChanged(namespace: "default", cluster: "prod", machine: "prod-md-0-c", type: "Ready", status: "True",
                                     reason: nil, lastTransitionNanoseconds: at, atNanoseconds: at),
        ])
        try await fleet.finish(failing, "vm-delete", .failure(ActivityFailure(kind: "http503", message: "unavailable")), at: 52)
        for (query, before) in zip(queries, answers) {
            let now = try await capstan(query + d)
            #expect(now.stdout != before, "\(query): the fleet changed, so the answer now must differ")
            let past = try await capstan(query + d + ["--at", "\(then.rawValue)"])
            #expect(past.status == 0, "\(past.stderr)")
            #expect(past.stdout == before, "\(query) --at \(then)")  // break: scan one position fewer in FleetSnapshot.open
        }
        let beyond = try await capstan(["get", "clusters", "--at", "999999"] + d)
        #expect(beyond.status != 0 && beyond.stderr.contains("the log ends at position"))
        }
    }

    @Test("CLI: control: pause, approve, retry go through the inbox and the engine acts on them")
    func control() async throws {
        try await Self.withLog({ try await Self.standardLog("control") }) { fleet in
        let d = ["--data-dir", fleet.directory]
        let pause = try await capstan(["workflow", "pause", "delete/default/prod-md-0-y"] + d)
        #expect(pause.status == 0, "\(pause.stderr)")
        #expect(pause.stdout.contains("sent pause to workflow delete/default/prod-md-0-y through the inbox"))
        // This test process holds the log's writer lock, as serve would: the CLI names it.
        #expect(pause.stdout.contains("the engine holding the log (pid \(getpid()), capstan serve) handles it"), "\(pause.stdout)")
        let retry = try await capstan(["workflow", "retry", "delete/default/prod-md-0-y", "-o", "json"] + d)
        // vm-delete is in backoff, not failed for good: nothing to retry, nothing sent.
        #expect(retry.status != 0 && retry.stderr.contains("has no failed activity to retry"), "\(retry.stdout) \(retry.stderr)")
        let ended = try await capstan(["workflow", "cancel", "delete/default/prod-md-0-x"] + d)
        #expect(ended.status != 0 && ended.stderr.contains("already ended (completed); nothing was sent"))
        let unknown = try await capstan(["workflow", "resume", "nope"] + d)
        #expect(unknown.status != 0 && unknown.stderr.contains("no workflow nope"))
        // The engine reads the inbox: exactly the one pause arrives, and it pauses the run.
        let inbox = try EventLogReader(directory: EventLogStore.inboxDirectory(of: fleet.directory))
        let messages = try inbox.readAll(after: .start).compactMap { try InboxMessage.decode($0) }
        #expect(messages == [.signal(workflowID: "delete/default/prod-md-0-y", name: "pause", payload: "")])
        for event in try inbox.readAll(after: .start) { try fleet.core.handleInbox(event, now: fleet.time(60)) }
        try await fleet.flush()
        let show = try await capstan(["get", "workflows", "-l", "capstan.dev/status=paused", "-o", "name"] + d)
        #expect(show.stdout == "workflow/delete/default/prod-md-0-y\nworkflow/delete/default/prod-md-0-z\n", "\(show.stdout)")
        }
    }

    @Test("CLI: concurrency: queries answer while another process appends, each a consistent snapshot")
    func whileWriting() async throws {
        try await Self.withLog({ try await FleetLog("writing") }) { fleet in
            // This process holds the writer lock (as serve does) and keeps appending machines;
            // each `capstan get machines` is another process reading the log read-only.
            let log = fleet.log
            let writer = Task {
                var added = 0
                while !Task.isCancelled && added < 400 {
                    added += 1
                    let at = FleetLog.t0 + Int64(added) * 1_000_000_000
                    _ = try await FleetRecorder.recordObserved(
                        [.machineObserved(namespace: "default", cluster: "prod", machine: "m-\(added)", deployment: "prod-md-0",
                                          phase: "Running", version: nil, atNanoseconds: at)], actor: "observer", to: log)
                    try? await Task.sleep(for: .milliseconds(5))  // a cancel ends the loop, not the task
                }
                return added
            }
            var seen: [Int] = []
            for _ in 0..<5 {
                let result = try await capstan(["get", "machines", "-o", "json", "--data-dir", fleet.directory])
                #expect(result.status == 0, "\(result.stderr)")
                struct Row: Decodable { var name: String }
                let rows = try JSONDecoder().decode([Row].self, from: Data(result.stdout.utf8))
                // A consistent snapshot holds machines m-1…m-k with no gap.
                let numbers = rows.compactMap { Int($0.name.dropFirst(2)) }.sorted()
                #expect(numbers == Array(stride(from: 1, through: numbers.count, by: 1)), "\(numbers)")
                seen.append(numbers.count)
            }
            writer.cancel()
            let added = try await writer.value
            #expect(seen == seen.sorted(), "answers go forward: \(seen)")
            let last = try await capstan(["get", "machines", "-o", "name", "--data-dir", fleet.directory])
            #expect(last.stdout.split(separator: "\n").count == added)
        }
    }

    @Test("CLI: usage: every bad invocation exits 2 with a usage message saying what is wrong")
    func usage() async throws {
        let cases: [([String], String)] = [
            (["get", "clusters", "-n", "a", "-A"], "give -n NAMESPACE or -A, not both"),
            (["get", "clusters", "-l", "a=b,=c"], "is not a label requirement"),
            (["get", "clusters", "--at", "yesterday"], "--at yesterday: expected a log position"),
            (["get", "clusters", "-o", "xml"], "-o"),
            (["workflow", "list", "--status", "stuck"], "--status stuck: expected one of"),
            (["workflow", "list", "--since", "12"], "--since 12"),
            (["workflow", "show"], "Missing expected argument"),
            (["workflow", "approve", "x", "--step", "0"], "--step must be 1 or more"),
            (["workflow", "signal", "x", ""], "must be non-empty"),
        ]
        for (arguments, message) in cases {
            let result = try await capstan(arguments + ["--data-dir", "/nonexistent"])
            #expect(result.status == 2, "capstan \(arguments.joined(separator: " ")) exited \(result.status)")
            #expect(result.stderr.contains(message) && result.stderr.contains("Usage:"), "\(arguments): \(result.stderr)")
        }
        let unknown = try await capstan(["get", "pods"])
        #expect(unknown.status == 2 && unknown.stderr.contains("Usage: capstan get"), "\(unknown.stderr)")
        // A command that could not run is a failure (1), not a usage error.
        let missing = try await capstan(["get", "clusters", "--data-dir", "/nonexistent"])
        #expect(missing.status == 1 && missing.stderr.contains("no Capstan log at /nonexistent"))
    }
}
