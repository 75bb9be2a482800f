import Engine
import EventLog
import Foundation
import Testing

/// Goal: `capstan workflow fork` checks what the engine will check before it writes (a
/// refusal names what is wrong, exits 1 and sends nothing), sends one request through the
/// inbox, says what it did and what happens next, and the engine's handling of that request
/// starts the new run from the prefix: the step after the cut runs under the new id, the
/// steps before it do not run again, the signal is in the new history, the old one unchanged.
/// Method: the standard log of QueryTests (this process holds its writer lock, as serve
/// would), the real `capstan` binary, and the engine's core handling the inbox.
@Suite struct ForkCommandTests {
    struct Row: Decodable {
        struct Fields: Decodable { var activityID: String? }
        var position: UInt64
        var revision: UInt64
        var type: String
        var payload: Fields?
    }

    static func history(_ workflowID: String, _ d: [String]) async throws -> (text: String, rows: [Row]) {
        let result = try await capstan(["workflow", "history", workflowID, "-o", "json"] + d)
        #expect(result.status == 0, "\(result.stderr)")
        return (result.stdout, try JSONDecoder().decode([Row].self, from: Data(result.stdout.utf8)))
    }

    @Test("CLI: workflow fork: refusals send nothing; a fork is one inbox request, and the engine runs the next step again under the new id")
    func fork() async throws {
        try await QueryTests.withLog({ try await QueryTests.standardLog("fork") }) { fleet in
            let d = ["--data-dir", fleet.directory]
            let id = "delete/default/prod-md-0-x"
            let (oldText, rows) = try await Self.history(id, d)
            let cut = try #require(rows.first { $0.type == "ActivityScheduled" && $0.payload?.activityID == "vm-delete" })
            let end = try #require(rows.last)
            #expect(end.type == "WorkflowCompleted")
            let other = try #require(try await Self.history("delete/default/prod-md-0-y", d).rows.first)

            let refusals: [([String], String)] = [
                (["nope", "--from", "\(cut.position)"], "no workflow nope"),
                ([id, "--from", "\(other.position)"], "position \(other.position) is not an event of workflow \(id) (its events are at positions \(rows[0].position) to \(end.position)"),
                ([id, "--from", "\(end.position)"], "position \(end.position) is WorkflowCompleted, the end of \(id): a fork copies a prefix without its end; fork from an earlier position (the one before is \(rows[rows.count - 2].position))"),
                ([id, "--from", "\(cut.position)", "--id", "delete/default/prod-md-0-y"], "workflow delete/default/prod-md-0-y exists already"),
            ]
            for (arguments, message) in refusals {
                let result = try await capstan(["workflow", "fork"] + arguments + d)
                #expect(result.status == 1, "\(arguments): exited \(result.status)")
                #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            }
            let inboxDirectory = EventLogStore.inboxDirectory(of: fleet.directory)
            #expect(!FileManager.default.fileExists(atPath: inboxDirectory), "a refused fork sends nothing")

            let newID = "\(id)-fork-\(cut.position)"
            let sent = try await capstan(["workflow", "fork", id, "--from", "\(cut.position)", "--signal", "nudge", "--payload", "hi"] + d)
            #expect(sent.status == 0, "\(sent.stderr)")
            #expect(
                sent.stdout.contains(
                    "sent fork of workflow \(id) at position \(cut.position) (run 1, revision \(cut.revision)) as \(newID) with signal nudge (hi) through the inbox"),
                "\(sent.stdout)")
            #expect(sent.stdout.contains("the engine holding the log (pid \(getpid()), capstan serve) handles it within a second: "))
            #expect(
                sent.stdout.contains(
                    "\(newID) starts from those \(cut.revision + 1) events, receives nudge in the same step, then activity vm-delete starts"),
                "\(sent.stdout)")
            #expect(sent.stdout.contains("`capstan workflow show \(newID) --watch`"))

            let json = try await capstan(["workflow", "fork", id, "--from", "\(cut.position)", "--id", "\(id)-b", "-o", "json"] + d)
            #expect(json.status == 0, "\(json.stderr)")
            struct Output: Decodable {
                var newID: String
                var revision: UInt64
                var events: UInt64
                var signal: String?
                var serveRunning: Bool
                var servePID: Int32?
            }
            let output = try JSONDecoder().decode(Output.self, from: Data(json.stdout.utf8))
            #expect(output.newID == "\(id)-b" && output.revision == cut.revision && output.events == cut.revision + 1)
            #expect(output.signal == nil && output.serveRunning && output.servePID == getpid())

            // The engine reads the inbox: the two requests, each acted on once.
            let inbox = try EventLogReader(directory: inboxDirectory)
            let events = try inbox.readAll(after: .start)
            #expect(
                try events.compactMap { try InboxMessage.decode($0) } == [
                    .fork(workflowID: id, run: 1, throughRevision: cut.revision, newID: newID, signal: "nudge", payload: "hi"),
                    .fork(workflowID: id, run: 1, throughRevision: cut.revision, newID: "\(id)-b", signal: nil, payload: ""),
                ])
            fleet.core.readStream = { [log = fleet.log] in try log.reader.readStream($0) }
            let before = fleet.dispatches.count
            for event in events { try fleet.core.handleInbox(event, now: fleet.time(90)) }
            try await fleet.flush()
            let calls = fleet.dispatches[before...].map { "\($0.key.idempotencyKey)#\($0.attempt)" }.sorted()
            // Break on purpose (seen failing): with the pending `ActivityScheduled` not
            // queued at the fork (`case .scheduled: break`), vm-delete is never called.
            #expect(calls == ["\(id)-b/vm-delete#1", "\(newID)/vm-delete#1"], "drain ran in the prefix: not again")

            let forked = try await Self.history(newID, d).rows
            #expect(forked.map(\.type) == rows.prefix(Int(cut.revision) + 1).map(\.type) + ["SignalReceived", "ActivityStarted"])
            let show = try await capstan(["workflow", "show", newID] + d)
            #expect(show.stdout.contains("Forked from: \(id) revision \(cut.revision)"), "\(show.stdout)")
            #expect(try await Self.history(id, d).text == oldText, "the old run's history is unchanged")
        }
    }

    @Test("CLI: workflow fork: a bad invocation exits 2 with a usage message saying what is wrong")
    func usage() async throws {
        let cases: [([String], String)] = [
            (["x"], "Missing expected argument '--from <position>'"),
            (["x", "--from", "abc"], "--from"),
            (["x", "--from", "0"], "--from 0: log positions start at 1"),
            (["x", "--from", "3", "--id", "a@b"], "--id \"a@b\": a workflow id is 1 to 220 bytes without @"),
            (["x", "--from", "3", "--signal", "two words"], "--signal \"two words\": must be non-empty, without spaces"),
            (["x", "--from", "3", "--payload", "p"], "--payload needs --signal NAME"),
        ]
        for (arguments, message) in cases {
            let result = try await capstan(["workflow", "fork"] + arguments + ["--data-dir", "/nonexistent"])
            #expect(result.status == 2, "fork \(arguments.joined(separator: " ")) exited \(result.status)")
            #expect(result.stderr.contains(message) && result.stderr.contains("Usage:"), "\(arguments): \(result.stderr)")
        }
        let help = try await capstan(["workflow", "fork", "--help"])
        #expect(help.status == 0 && help.stdout.contains("capstan workflow fork upgrade/default/prod/12 --from 4711 --signal approve"))
    }
}
