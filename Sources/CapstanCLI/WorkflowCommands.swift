import ArgumentParser
import CapstanSupport
import Engine
import EventLog
import Fleet
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// `capstan workflow list|show|history|diagnose` read a workflow's snapshot and stream from
// the log; `pause|resume|cancel|approve|signal|retry` append a signal to the inbox, and
// `fork` a fork request, which `capstan serve` handles once, now if it runs, else when it
// next starts.

struct WorkflowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflow",
        abstract: "Inspect and control workflow runs.",
        discussion: """
            Queries read the log (also while `capstan serve` runs, and with --at as it stood then). \
            Control commands append a signal to the data directory's inbox: a running serve handles \
            it within a second, a stopped one when it starts; each prints what it sent and what happens next.

            Examples:
              capstan workflow list --status running
              capstan workflow diagnose upgrade/default/prod/12
              capstan workflow approve upgrade/default/prod/12
              capstan workflow retry provision/default/prod-md-0-x7 --activity vm.create
              capstan workflow fork upgrade/default/prod/12 --from 4711 --signal approve
            """,
        subcommands: [
            List.self, Show.self, History.self, Diagnose.self, Pause.self, Resume.self, Cancel.self, Approve.self,
            SignalCommand.self, Retry.self, Fork.self,
        ])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List workflow runs, newest activity last.")

        @Option(help: ArgumentHelp("Only workflows of this cluster (name, or namespace/name).", valueName: "cluster"))
        var cluster: String?

        @Option(help: ArgumentHelp("Only this workflow type (ChainedUpgrade, RollingUpdate, …).", valueName: "type"))
        var type: String?

        @Option(help: ArgumentHelp("Only this status: running, paused, completed, failed, cancelled, quarantined.",
                                   valueName: "status"))
        var status: String?

        @Option(help: ArgumentHelp("Only workflows that moved since (RFC 3339, or -2h, -30m, -1d).", valueName: "time"))
        var since: String?

        @OptionGroup var at: AtOptions
        @OptionGroup var common: CommonOptions

        static let statuses = ["running", "paused", "completed", "failed", "cancelled", "quarantined", "continuedAsNew"]

        func validate() throws {
            if let status, !Self.statuses.contains(status) {
                throw ValidationError("--status \(status): expected one of \(Self.statuses.joined(separator: ", "))")
            }
            if let since {
                guard let spec = try? TimeSpec(parsing: since), spec.nanoseconds(now: 0) != nil else {
                    throw ValidationError("--since \(since): expected an RFC 3339 time or a time before now (-2h, -30m, -1d)")
                }
            }
        }

        func run() async throws {
            try await reportingFailures {
                let snapshot = try FleetSnapshot.open(common.dataDirectory, at: at.at)
                let cutoff = try since.flatMap { try TimeSpec(parsing: $0).nanoseconds(now: snapshot.nowNanoseconds) }
                let rows = try snapshot.workflows().map { WorkflowSummary($0) }.filter { row in
                    if let cluster {
                        let name = row.cluster.map { cluster.contains("/") ? "\(row.namespace ?? "")/\($0)" : $0 }
                        if name != cluster { return false }
                    }
                    if let type, row.type != type { return false }
                    if let status, row.status != status { return false }
                    if let cutoff, row.sinceNanoseconds < cutoff { return false }
                    return true
                }.sorted { ($0.sinceNanoseconds, $0.id) < ($1.sinceNanoseconds, $1.id) }
                try emit(
                    rows, format: common.output, table: { workflowTable(rows, now: snapshot.nowNanoseconds) },
                    names: { rows.map { "workflow/\($0.id)" } }, empty: "No workflows found.")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a workflow run: status, progress, open activities, children and timers.")

        @Argument(help: ArgumentHelp("The workflow id.", valueName: "id")) var workflowID: String
        @OptionGroup var at: AtOptions
        @OptionGroup var watch: WatchOptions
        @OptionGroup var common: CommonOptions

        func validate() throws { try watch.validate(at: at, format: common.output) }

        func run() async throws {
            try await reportingFailures {
                if watch.watch {
                    // Named now, as without --watch: a mistyped id must not watch forever.
                    _ = try FleetSnapshot.open(common.dataDirectory, at: nil).workflow(workflowID)
                    return try await LiveWatch.run(common.dataDirectory, format: common.output) { snapshot in
                        let report = try snapshot.workflow(workflowID)
                        let detail = WorkflowDetail(report, now: snapshot.nowNanoseconds)
                        let summary = detail.summary
                        var frame = WatchFrame(
                            screen: detail.text(now: snapshot.nowNanoseconds),
                            lines: [
                                .init(
                                    key: summary.id, text: detail.changeLine(now: snapshot.nowNanoseconds),
                                    change: detail.changeLine(now: nil))
                            ],
                            json: common.output == .json ? try jsonText(detail, pretty: false) : nil)
                        if report.record.isFinished, summary.status != "continuedAsNew" {
                            frame.exitCode = summary.status == "completed" ? 0 : 1
                        }
                        return frame
                    }
                }
                let snapshot = try FleetSnapshot.open(common.dataDirectory, at: at.at)
                let detail = WorkflowDetail(try snapshot.workflow(workflowID), now: snapshot.nowNanoseconds)
                switch common.output {
                case .json, .yaml: try printStructured(detail, format: common.output)
                case .name: print("workflow/\(detail.summary.id)")
                case .text, .wide: print(detail.text(now: snapshot.nowNanoseconds))
                }
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every event of a workflow run: position, time, actor, type and payload.")

        @Argument(help: ArgumentHelp("The workflow id.", valueName: "id")) var workflowID: String
        @OptionGroup var at: AtOptions
        @OptionGroup var common: CommonOptions

        func run() async throws {
            try await reportingFailures {
                let snapshot = try FleetSnapshot.open(common.dataDirectory, at: at.at)
                let report = try snapshot.workflow(workflowID)
                var rows: [HistoryRow] = []
                for run in 1...max(1, report.record.runNumber) {
                    for event in try snapshot.reader.readStream(.forWorkflow(workflowID, run: run))
                    where event.position <= snapshot.position {
                        rows.append(HistoryRow(event, run: run))
                    }
                }
                try emit(
                    rows, format: common.output,
                    table: {
                        var table = Table(["position", "time", "actor", "type", "payload"])
                        for row in rows {
                            let payload = common.output == .wide || row.payloadText.count <= 100
                                ? row.payloadText : String(row.payloadText.prefix(99)) + "…"
                            table.append(["\(row.position)", row.time, row.actor, row.type, payload])
                        }
                        return table
                    }, names: { rows.map { "event/\($0.position)" } }, empty: "No events for workflow \(workflowID).")
            }
        }
    }

    struct Diagnose: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Why a workflow is not moving: what it waits on, since when, the last error, the next retry.")

        @Argument(help: ArgumentHelp("The workflow id.", valueName: "id")) var workflowID: String
        @OptionGroup var at: AtOptions
        @OptionGroup var common: CommonOptions

        func run() async throws {
            try await reportingFailures {
                let snapshot = try FleetSnapshot.open(common.dataDirectory, at: at.at)
                let diagnosis = try Diagnosis(snapshot.workflow(workflowID), snapshot: snapshot)
                switch common.output {
                case .json, .yaml: try printStructured(diagnosis, format: common.output)
                case .name: print("workflow/\(workflowID)")
                case .text, .wide: print(diagnosis.text)
                }
            }
        }
    }

    // MARK: control

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop starting new activities of a workflow (running attempts finish).")
        @Argument(help: ArgumentHelp("The workflow id.", valueName: "id")) var workflowID: String
        @OptionGroup var common: CommonOptions
        func run() async throws {
            try await sendSignal(
                workflowID, name: EngineSignal.pause, payload: "", common: common,
                next: "it starts no new activity until `capstan workflow resume \(workflowID)`; attempts in flight finish")
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a paused workflow start activities again.")
        @Argument(help: ArgumentHelp("The workflow id.", valueName: "id")) var workflowID: String
        @OptionGroup var common: CommonOptions
        func run() async throws {
            try await sendSignal(
                workflowID, name: EngineSignal.resume, payload: "", common: common,
                next: "it continues where it stopped")
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a workflow and its children.")
        @Argument(help: ArgumentHelp("The workflow id.", valueName: "id")) var workflowID: String
        @Option(help: ArgumentHelp("Why (recorded with the cancel).", valueName: "text")) var reason: String?
        @OptionGroup var common: CommonOptions
        func run() async throws {
            try await sendSignal(
                workflowID, name: EngineSignal.cancel, payload: reason ?? "cancelled by \(changeSource().actor)",
                common: common, next: "its running children are cancelled, then it ends as cancelled")
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve the step a workflow waits on (ChainedUpgrade with approveEachStep).")
        @Argument(help: ArgumentHelp("The workflow id.", valueName: "id")) var workflowID: String
        @Option(help: ArgumentHelp("The 1-based step to approve (default: the one waiting).", valueName: "n")) var step: Int?
        @OptionGroup var common: CommonOptions
        func validate() throws {
            if let step, step < 1 { throw ValidationError("--step must be 1 or more") }
        }
        func run() async throws {
            try await sendSignal(
                workflowID, name: EngineSignal.approve, payload: step.map(String.init) ?? "", common: common,
                next: step.map { "step \($0) may start once the chain reaches it" } ?? "the step it waits on starts")
        }
    }

    struct SignalCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "signal", abstract: "Send a named signal, with an optional payload, to a workflow.")
        @Argument(help: ArgumentHelp("The workflow id.", valueName: "id")) var workflowID: String
        @Argument(help: ArgumentHelp("The signal's name (retry-step, approve, …).", valueName: "name")) var name: String
        @Option(help: ArgumentHelp("The signal's payload (text the workflow reads).", valueName: "text")) var payload = ""
        @OptionGroup var common: CommonOptions
        func validate() throws {
            guard !name.isEmpty, !name.contains(where: \.isWhitespace) else {
                throw ValidationError("signal name \"\(name)\": must be non-empty, without spaces")
            }
        }
        func run() async throws {
            try await sendSignal(
                workflowID, name: name, payload: payload, common: common,
                next: "its decider receives `\(name)`; a workflow that does not wait for it ignores it")
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a failed activity again, with the retry policy's attempts afresh.")
        @Argument(help: ArgumentHelp("The workflow id.", valueName: "id")) var workflowID: String
        @Option(help: ArgumentHelp("The activity id (default: the one that failed for good).", valueName: "id"))
        var activity: String?
        @OptionGroup var common: CommonOptions
        func run() async throws {
            try await reportingFailures {
                let snapshot = try FleetSnapshot.open(common.dataDirectory, at: nil)
                let record = try snapshot.workflow(workflowID).record
                let failed = record.activities.values.filter { $0.phase == .failed }.map(\.request.activityID).sorted()
                let target: String
                if let activity {
                    guard record.activities[activity] != nil else {
                        throw CommandFailure(
                            "workflow \(workflowID) has no open activity \(activity)"
                                + (failed.isEmpty ? "" : " (failed: \(failed.joined(separator: ", ")))"))
                    }
                    target = activity
                } else {
                    guard let first = failed.first else {
                        throw CommandFailure(
                            "workflow \(workflowID) has no failed activity to retry (see `capstan workflow diagnose \(workflowID)`)")
                    }
                    guard failed.count == 1 else {
                        throw CommandFailure("workflow \(workflowID) has \(failed.count) failed activities (\(failed.joined(separator: ", "))); choose one with --activity")
                    }
                    target = first
                }
                try await deliver(
                    workflowID, name: EngineSignal.retry, payload: target, common: common, record: record,
                    next: "activity \(target) runs again as a new attempt, with the retry policy's attempts afresh")
            }
        }
    }
}

extension WorkflowCommand {
    struct Fork: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a new run from a prefix of a workflow's history, with a signal applied in the same step.",
            discussion: """
                The new run's history is the old run's events up to and including POSITION (a position \
                as `capstan workflow history ID` lists them), copied with their times; the old run and its \
                history stay as they are. From there the new run goes on as after a restart at that point: \
                an activity attempt that was running at POSITION runs again as a new attempt (under the new \
                id, so executors see a new idempotency key), scheduled activities and retries wait as they \
                did, pending timers fire at their recorded times (at once when those have passed), and no \
                step completed before POSITION runs again. With --signal the signal is delivered in the same \
                step, before anything else happens: Temporal's reset with a signal, DBOS's fork.

                The fork is a run of its own: the old run's type, input and unique key, no parent. Refused, \
                with nothing written: a POSITION that is not an event of ID or that ends its run (completed, \
                failed, cancelled, continued as new); a child workflow running at POSITION; a new id in use; \
                the run's unique key held by a running workflow (cancel that one first).

                Examples:
                  capstan workflow history upgrade/default/prod/12
                  capstan workflow fork upgrade/default/prod/12 --from 4711 --signal approve
                  capstan workflow fork upgrade/default/prod/12 --from 4711 --id upgrade/default/prod/12-b -o json
                  capstan workflow show upgrade/default/prod/12-fork-4711 --watch
                """)

        @Argument(help: ArgumentHelp("The workflow id to fork.", valueName: "id")) var workflowID: String
        @Option(
            help: ArgumentHelp(
                "The last event the new run copies: its log position, as `capstan workflow history` lists it.",
                valueName: "position"))
        var from: UInt64
        @Option(
            name: .customLong("id"),
            help: ArgumentHelp("The new run's workflow id (default: ID-fork-POSITION).", valueName: "new-id"))
        var newID: String?
        @Option(help: ArgumentHelp("A signal to deliver to the new run in the same step.", valueName: "name"))
        var signal: String?
        @Option(help: ArgumentHelp("The signal's payload (needs --signal).", valueName: "text")) var payload: String?
        @OptionGroup var common: CommonOptions

        var targetID: String { newID ?? "\(workflowID)-fork-\(from)" }

        func validate() throws {
            if from == 0 { throw ValidationError("--from 0: log positions start at 1 (see `capstan workflow history \(workflowID)`)") }
            let id = targetID
            if id.isEmpty || id.contains("@") || StreamID.forWorkflow(id, run: 1_000_000).rawValue.utf8.count > StreamID.maxLengthBytes {
                throw ValidationError("--id \(id.debugDescription): a workflow id is 1 to 220 bytes without @")
            }
            if let signal, signal.isEmpty || signal.contains(where: \.isWhitespace) {
                throw ValidationError("--signal \"\(signal)\": must be non-empty, without spaces")
            }
            if payload != nil && signal == nil { throw ValidationError("--payload needs --signal NAME") }
        }

        func run() async throws {
            try await reportingFailures {
                let snapshot = try FleetSnapshot.open(common.dataDirectory, at: nil)
                let record = try snapshot.workflow(workflowID).record
                let cut = try ForkCut(of: workflowID, record: record, position: from, reader: snapshot.reader)
                let newID = targetID
                if let key = record.uniqueKey, let holder = try snapshot.reader.state(forKey: StateKey.unique(key)) {
                    let name = String(decoding: holder, as: UTF8.self)
                    throw CommandFailure(
                        "unique key \(key) of \(workflowID) is held by running workflow \(name), and the fork would take it: "
                            + "cancel \(name) first (`capstan workflow cancel \(name)`) or wait until it ends; nothing was sent")
                }
                if try snapshot.reader.streamRevision(.forWorkflow(newID)) != nil
                    || snapshot.state.value(StateKey.running(newID)) != nil || snapshot.state.value(StateKey.finished(newID)) != nil
                {
                    throw CommandFailure("workflow \(newID) exists already (ids are never reused); choose another with --id; nothing was sent")
                }
                var generator = SystemRandomNumberGenerator()
                let id = EventID(high: generator.next(), low: generator.next())
                try await InboxMessage.fork(
                    workflowID: workflowID, run: cut.run, throughRevision: cut.revision, newID: newID, signal: signal,
                    payload: payload ?? ""
                ).send(id, dataDirectory: common.dataDirectory, actor: changeSource().actor)

                let (holder, when) = inboxHandling(common.dataDirectory)
                var steps = ["\(newID) starts from those \(cut.revision + 1) events"]
                if let signal { steps.append("receives \(signal) in the same step") }
                steps.append(cut.openWork)
                let next = steps.joined(separator: ", ")
                    + "; \(workflowID) stays as it is. Watch it with `capstan workflow show \(newID) --watch`; "
                    + "if the engine refuses the fork (the id or unique key taken meanwhile), \(newID) does not appear and serve's log says why"
                let output = ForkOutput(
                    workflowID: workflowID, position: from, run: cut.run, revision: cut.revision, events: cut.revision + 1,
                    newID: newID, signal: signal, payload: signal == nil ? nil : payload ?? "", via: "inbox",
                    serveRunning: holder != nil, servePID: holder, next: next)
                switch common.output {
                case .json, .yaml: try printStructured(output, format: common.output)
                case .text, .wide, .name:
                    let with = signal.map { name in " with signal \(name)" + ((payload ?? "").isEmpty ? "" : " (\(payload!))") } ?? ""
                    print(
                        "sent fork of workflow \(workflowID) at position \(from) (run \(cut.run), revision \(cut.revision)) "
                            + "as \(newID)\(with) through the inbox")
                    print(when + next + ".")
                }
            }
        }
    }
}

/// Where a fork cuts a workflow's history: the run and revision of a log position, checked
/// as the engine will check it (so a refusal is said now, and nothing is sent).
struct ForkCut {
    var run: Int
    var revision: UInt64
    /// What the new run does first, in words (the work open at the cut).
    var openWork: String

    /// - Throws: `CommandFailure` naming the position and what is wrong with it.
    init(of workflowID: String, record: WorkflowRecord, position: UInt64, reader: EventLogReader) throws {
        var found: (run: Int, events: [RecordedEvent], index: Int)?
        var positions: [UInt64] = []
        for run in 1...max(1, record.runNumber) {
            let events = try reader.readStream(.forWorkflow(workflowID, run: run))
            positions += events.map(\.position.rawValue)
            if let index = events.firstIndex(where: { $0.position.rawValue == position }) { found = (run, events, index) }
        }
        guard let found else {
            let range = positions.first.map { "its events are at positions \($0) to \(positions.last!)" } ?? "it has no events"
            throw CommandFailure(
                "position \(position) is not an event of workflow \(workflowID) (\(range); see `capstan workflow history \(workflowID)`); nothing was sent")
        }
        run = found.run
        revision = UInt64(found.index)
        var folded = WorkflowRecord(workflowID: workflowID)
        for event in found.events[...found.index] {
            let stamped = try WorkflowEventCodec.decode(event)
            if stamped.event.isTerminal {
                let before = found.index > 0 ? " (the one before is \(found.events[found.index - 1].position))" : ""
                throw CommandFailure(
                    "position \(position) is \(event.type), the end of \(run > 1 ? "run \(run) of " : "")\(workflowID): "
                        + "a fork copies a prefix without its end; fork from an earlier position\(before); nothing was sent")
            }
            folded.apply(stamped, revision: event.revision.rawValue)
        }
        if let child = folded.children.filter({ $0.value == .running }).keys.sorted().first {
            throw CommandFailure(
                "child workflow \(child) was running at position \(position) and belongs to \(workflowID): "
                    + "fork from before it started or after it ended; nothing was sent")
        }
        let activities = folded.activities.values.sorted { $0.request.activityID < $1.request.activityID }
        var open: [String] = []
        for activity in activities {
            switch activity.phase {
            case .running: open.append("activity \(activity.request.activityID) (attempt \(activity.attempt) was running) runs again as a new attempt")
            case .scheduled: open.append("activity \(activity.request.activityID) starts")
            case .backoff: open.append("activity \(activity.request.activityID) retries when its backoff ends")
            case .completed, .failed: break
            }
        }
        if !folded.timers.isEmpty { open.append("\(folded.timers.count == 1 ? "its timer fires" : "its timers fire") at the recorded time") }
        if folded.paused { open.append("it stays paused until `capstan workflow resume`") }
        openWork = open.isEmpty ? "then its decider decides what comes next" : "then " + open.joined(separator: ", ")
    }
}

/// What `workflow fork` prints with `-o json`.
struct ForkOutput: Encodable {
    var workflowID: String
    var position: UInt64
    var run: Int
    var revision: UInt64
    /// Events the new run copies.
    var events: UInt64
    var newID: String
    var signal: String?
    var payload: String?
    var via: String
    var serveRunning: Bool
    var servePID: Int32?
    var next: String
}

/// Checks the workflow exists and runs, then sends the signal (see ``deliver``).
func sendSignal(_ workflowID: String, name: String, payload: String, common: CommonOptions, next: String) async throws {
    try await reportingFailures {
        let snapshot = try FleetSnapshot.open(common.dataDirectory, at: nil)
        let record = try snapshot.workflow(workflowID).record
        try await deliver(workflowID, name: name, payload: payload, common: common, record: record, next: next)
    }
}

/// What a control command prints with `-o json`.
struct SignalOutput: Encodable {
    var workflowID: String
    var signal: String
    var payload: String
    var via: String
    /// Whether a `capstan serve` seemed to hold the log when the signal was sent.
    var serveRunning: Bool
    var servePID: Int32?
    var next: String
}

/// Appends the signal to the inbox and says what happens next.
func deliver(
    _ workflowID: String, name: String, payload: String, common: CommonOptions, record: WorkflowRecord, next: String
) async throws {
    guard !record.isFinished else {
        throw CommandFailure(
            "workflow \(workflowID) already ended (\(record.status.rawValue)); nothing was sent")
    }
    var generator = SystemRandomNumberGenerator()
    let id = EventID(high: generator.next(), low: generator.next())
    try await InboxMessage.signal(workflowID: workflowID, name: name, payload: payload)
        .send(id, dataDirectory: common.dataDirectory, actor: changeSource().actor)
    let (holder, when) = inboxHandling(common.dataDirectory)
    let output = SignalOutput(
        workflowID: workflowID, signal: name, payload: payload, via: "inbox", serveRunning: holder != nil, servePID: holder,
        next: next)
    switch common.output {
    case .json, .yaml: try printStructured(output, format: common.output)
    case .text, .wide, .name:
        print("sent \(name)\(payload.isEmpty ? "" : " (\(payload))") to workflow \(workflowID) through the inbox")
        print(when + next + ".")
    }
}

/// Who handles an inbox request just sent, and when, in words: the serve holding the log
/// (its pid), or the next one to start.
func inboxHandling(_ dataDirectory: String) -> (servePID: Int32?, text: String) {
    let holder = writerPID(dataDirectory)
    let text = holder.map { "the engine holding the log (pid \($0), capstan serve) handles it within a second: " }
        ?? "no capstan serve runs on \(dataDirectory) now; when one starts it handles it first: "
    return (holder, text)
}

/// The pid of the process holding the log's writer lock, when it is alive; nil when none.
///
/// Reads `writer.lock` without locking it (a probe that took the lock, even shared, could
/// make a `serve` starting at that instant refuse to start).
func writerPID(_ directory: String) -> Int32? {
    guard let data = FileManager.default.contents(atPath: directory + "/writer.lock"),
        let pid = Int32(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0
    else { return nil }
    return kill(pid, 0) == 0 || errno == EPERM ? pid : nil
}

extension TimeSpec {
    /// The moment as nanoseconds since the epoch (nil for a log position).
    func nanoseconds(now: Int64) -> Int64? {
        switch self {
        case .position: nil
        case .time(let nanoseconds): nanoseconds
        case .relative(let nanoseconds): now + nanoseconds
        }
    }
}
