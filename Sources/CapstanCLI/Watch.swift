import ArgumentParser
import CapstanSupport
import EventLog
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// `--watch` of `get`, `describe` and `workflow show`: the view again whenever the log moves
// (a commit of `serve` in another process wakes it through the reader's tail), redrawn in
// place on a terminal, one line per change when piped, so a script or a CI log sees each
// step once and not a screen a second.

/// `-w/--watch` of the commands that show live state.
struct WatchOptions: ParsableArguments {
    @Flag(
        name: [.customShort("w"), .long],
        help: ArgumentHelp(
            "Keep showing it as it changes: redrawn in place on a terminal, one line per change when piped.",
            discussion: "Ends with Ctrl-C; `workflow show --watch` also ends when the workflow ends (exit 1 unless completed)."))
    var watch = false

    /// - Throws: `ValidationError` for `--watch` with `--at` (the past does not change) or a
    ///   structured format other than json (one compact document per change).
    func validate(at: AtOptions, format: OutputFormat) throws {
        guard watch else { return }
        if let past = at.at { throw ValidationError("--watch shows the present; drop --at \(past) (the past does not change)") }
        if format == .yaml { throw ValidationError("--watch prints text or json (one document a line); -o yaml is not streamable") }
    }
}

/// One rendering of a watched view.
struct WatchFrame {
    /// A line of the piped form: printed when `change` differs from the last one printed
    /// under `key` (or `key` is new).
    struct Line {
        var key: String
        var text: String
        /// What counts as a change: `text` without what moves by itself (ages, poll counters).
        var change: String
    }

    /// The whole view, redrawn on a terminal.
    var screen: String
    /// Printed once, before the first line (a table's header).
    var header: String? = nil
    var lines: [Line]
    /// The value as one compact JSON document, for `-o json` (printed when it changes).
    var json: String? = nil
    /// Non-nil ends the watch with this exit code (the workflow ended).
    var exitCode: Int32? = nil
}

/// What is a change of a wait: the engine's words with their numbers taken out, so a poll
/// loop's counter or a timer's instant is one wait, not one per poll.
func waitShape(_ wait: String) -> String {
    wait.replacingOccurrences(of: #"[0-9]+"#, with: "#", options: .regularExpression)
}

enum LiveWatch {
    /// How often a terminal's screen is redrawn with nothing new (its ages move).
    static let redraw: Duration = .seconds(1)

    /// Renders `view` now and after every commit to the log of `directory` until a frame
    /// carries an exit code (then exits with it) or the process is interrupted.
    ///
    /// - Throws: `CommandFailure` for no log; the view's errors (a workflow that is not
    ///   there yet is the view's to explain).
    static func run(
        _ directory: String, format: OutputFormat, _ view: @escaping (FleetSnapshot) throws -> WatchFrame
    ) async throws {
        let reader = try openReader(directory)
        let terminal = isatty(STDOUT_FILENO) == 1 && format != .json
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let tail = Task {
            // Events are not needed, only that one committed: every commit wakes one render.
            for try await _ in reader.tail(after: try reader.lastPosition()) { wake.yield() }
        }
        let ticker = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: redraw)
                if terminal { wake.yield() }
            }
        }
        defer {
            tail.cancel()
            ticker.cancel()
        }
        // Unbuffered, so a pipe sees each change as it happens.
        func out(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
        var printed: [String: String] = [:]
        var printedHeader = false
        var lastJSON: String?
        var iterator = wakes.makeAsyncIterator()
        while true {
            let frame = try view(FleetSnapshot.present(reader))
            if terminal {
                // Home, clear to the end: one frame in place, no scrollback per redraw.
                let footer = Style.dim("Watching \(directory) (every commit); Ctrl-C to stop")
                out("\u{1B}[H\u{1B}[2J\(frame.screen)\n\n\(footer)")
            } else if format == .json {
                if let json = frame.json, json != lastJSON {
                    out(json)
                    lastJSON = json
                }
            } else {
                if let header = frame.header, !printedHeader, !frame.lines.isEmpty {
                    out(header)
                    printedHeader = true
                }
                for line in frame.lines where printed[line.key] != line.change {
                    out(line.text)
                    printed[line.key] = line.change
                }
            }
            if let code = frame.exitCode {
                if code != 0 { throw ExitCode(code) }
                return
            }
            guard await iterator.next() != nil else { return }
        }
    }
}

/// A table as watch lines: each row keyed by its name (`names`, in row order, with its
/// namespace when shown); a row's change is its cells without the `age` column (ages move by
/// themselves) and with the `waiting on` column's numbers taken out (`waitShape`).
func tableFrame(_ table: Table, names: [String], namespaced: Bool, wide: Bool, empty: String, json: String?) -> WatchFrame {
    let rendered = table.render(wide: wide).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let headers = table.columns.map(\.header)
    var lines: [WatchFrame.Line] = []
    for (index, row) in table.rows.enumerated() where index < names.count && index + 1 < rendered.count {
        var change: [String] = []
        for (column, cell) in row.enumerated() where headers[column] != "age" {
            change.append(headers[column] == "waiting on" ? waitShape(cell) : cell)
        }
        let key = namespaced ? "\(row[0])/\(names[index])" : names[index]
        lines.append(.init(key: key, text: rendered[index + 1], change: change.joined(separator: "\u{1F}")))
    }
    return WatchFrame(
        screen: table.rows.isEmpty ? empty : rendered.joined(separator: "\n"), header: rendered.first, lines: lines, json: json)
}

extension ClusterDescription {
    /// `describe cluster --watch` piped: a line for the control plane, each
    /// MachineDeployment (machines rolled out of total, by version), each chain (its step and
    /// wait) and each problem, printed when it changes.
    func watchLines(now: Int64) -> [WatchFrame.Line] {
        let time = timeText(now)
        var lines: [WatchFrame.Line] = []
        let plane = cluster.controlPlane
        let planeText = "control plane \(plane.status ?? "NotObserved") \(plane.installedVersion?.description ?? "-")"
            + " (desired \(plane.desiredVersion?.description ?? "-"))"
        lines.append(.init(key: "controlplane", text: "\(time) \(cluster.name) \(planeText)", change: planeText))
        for deployment in cluster.deployments {
            let text = "MachineDeployment/\(deployment.name) \(deployment.readyMachines)/\(deployment.replicas) ready, "
                + "desired \(deployment.desiredVersion?.description ?? "-"), machines \(versionCounts(deployment.versions))"
            lines.append(.init(key: "md/" + deployment.name, text: "\(time) \(cluster.name) \(text)", change: text))
        }
        for chain in chains {
            let current = chain.steps.first { $0.state == "current" }
            let done = chain.steps.filter { $0.state == "done" }.count
            var text = "chain \(chain.workflowID) \(chain.phase), \(done)/\(chain.steps.count) steps done"
            if let current { text += ", step \(current.number): \(current.description)" }
            if let reason = chain.reason { text += " [\(reason)]" }
            var change = text
            if let wait = chain.waitingOn, !wait.isEmpty {
                change += ", waiting on " + waitShape(wait)
                text += ", waiting on \(wait)"
                if let since = chain.since, let nanoseconds = parseRFC3339(since) { text += " (for \(ageText(nanoseconds, now: now)))" }
            }
            lines.append(.init(key: "chain/" + chain.workflowID, text: "\(time) \(cluster.name) \(text)", change: change))
        }
        for problem in problems {
            lines.append(.init(key: "problem/" + problem, text: "\(time) \(cluster.name) problem: \(problem)", change: problem))
        }
        return lines
    }
}
