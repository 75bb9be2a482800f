import EventLog
import Foundation

/// The medians of one benchmark run, per system.
struct SystemFigures: Codable {
    var singleCommitsPerSecond: Double = 0
    var singleLatencyP50Milliseconds: Double = 0
    var singleLatencyP99Milliseconds: Double = 0
    var groupEventsPerSecond: Double = 0
    var groupLatencyP50Milliseconds: Double = 0
    var groupLatencyP99Milliseconds: Double = 0
    var replayEventsPerSecond: Double = 0
    var storedBytesPerEvent: Double = 0
    /// Group commit with 1,024 appenders (peers: batches of 1,024 events).
    var group1024EventsPerSecond: Double = 0
    /// --appenders appenders each submitting batches of 100 events (peers: batches of 100).
    var batch100EventsPerSecond: Double = 0
    /// A full replay split over two threads (Capstan only).
    var replayTwoCoreEventsPerSecond: Double = 0
    /// Opening the replay log, page check included (Capstan only).
    var openMilliseconds: Double = 0
    /// Group commit (--appenders and 1,024 appenders) with the derived tables written by every
    /// commit, as before the fold (`maxUnfoldedEvents = 0`; Capstan only).
    var groupInlineEventsPerSecond: Double = 0
    var group1024InlineEventsPerSecond: Double = 0
}

struct BenchResult: Codable {
    var machine: String
    var runs: Int
    var events: Int
    var groupEvents: Int
    var singleCommits: Int
    var appenders: Int
    var payloadBytesPerEvent: Double
    var capstan: SystemFigures
    var sqlite: SystemFigures
    var rawLMDB: SystemFigures
    var perRun: [String: [[Double]]]
    var limits: [String]?

    func printText() {
        print("eventlog-bench on \(machine): medians of \(runs) runs")
        print(
            "events: realistic lifecycle JSON, \(formatted(payloadBytesPerEvent, 0)) payload bytes on average; "
                + "\(grouped(singleCommits)) single commits, \(grouped(groupEvents)) group-commit events "
                + "(\(appenders) appenders), \(grouped(events)) replayed")
        print("")
        let header = ["", "Capstan", "SQLite", "raw LMDB", "Capstan/SQLite", "Capstan/LMDB"]
        var rows: [[String]] = [header]
        func row(_ name: String, _ value: (SystemFigures) -> Double, digits: Int = 0) {
            let (c, s, l) = (value(capstan), value(sqlite), value(rawLMDB))
            rows.append([
                name, formatted(c, digits), formatted(s, digits), formatted(l, digits),
                formatted(c / s, 2), formatted(c / l, 2),
            ])
        }
        row("single commit: commits/s", \.singleCommitsPerSecond)
        row("single commit: p50 ms", \.singleLatencyP50Milliseconds, digits: 3)
        row("single commit: p99 ms", \.singleLatencyP99Milliseconds, digits: 3)
        row("group commit: events/s", \.groupEventsPerSecond)
        row("group commit: p50 ms", \.groupLatencyP50Milliseconds, digits: 3)
        row("group commit: p99 ms", \.groupLatencyP99Milliseconds, digits: 3)
        row("group commit 1,024 appenders: events/s", \.group1024EventsPerSecond)
        row("group commit, index in each commit: events/s", \.groupInlineEventsPerSecond)
        row("  same, 1,024 appenders: events/s", \.group1024InlineEventsPerSecond)
        row("appenders x batches of 100: events/s", \.batch100EventsPerSecond)
        row("replay: events/s", \.replayEventsPerSecond)
        row("replay on two cores: events/s", \.replayTwoCoreEventsPerSecond)
        row("open (page check): ms", \.openMilliseconds, digits: 1)
        row("stored bytes/event", \.storedBytesPerEvent, digits: 1)
        let widths = (0..<header.count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for cells in rows {
            let line = cells.enumerated().map { index, cell in
                index == 0
                    ? cell.padding(toLength: widths[0], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[index] - cell.count) + cell
            }
            print(line.joined(separator: "  "))
        }
        print("")
        print("aims:")
        aim("group commit >= 0.8x raw LMDB at the same batch size",
            capstan.groupEventsPerSecond >= 0.8 * rawLMDB.groupEventsPerSecond)
        aim("group commit >= 3x SQLite", capstan.groupEventsPerSecond >= 3 * sqlite.groupEventsPerSecond)
        aim("group commit, 1,024 appenders >= 400,000 events/s", capstan.group1024EventsPerSecond >= 400_000)
        aim(
            "single commit p50 <= 1.2x raw LMDB",
            capstan.singleLatencyP50Milliseconds <= 1.2 * rawLMDB.singleLatencyP50Milliseconds)
        aim("replay >= 1,500,000 events/s", capstan.replayEventsPerSecond >= 1_500_000)
        aim("replay on two cores >= 2,500,000 events/s", capstan.replayTwoCoreEventsPerSecond >= 2_500_000)
        aim("stored bytes/event <= 120", capstan.storedBytesPerEvent <= 120)
        if let limits {
            print("")
            print("machine limits (../shared/limits/run, same run):")
            for line in limits { print("  " + line) }
        }
    }

    private func aim(_ text: String, _ met: Bool) {
        print("  \(met ? "met    " : "NOT met") \(text)")
    }
}

struct BenchRunner {
    let options: EventLogBench
    let root: String

    func measure() async throws -> BenchResult {
        note("generating \(grouped(options.events)) events (seed \(options.seed))")
        let replayEvents = interleave(makeEvents(seed: options.seed, count: options.events, clusters: 256))
        let payloadBytes = Double(replayEvents.reduce(0) { $0 + $1.payload.count }) / Double(replayEvents.count)

        // Fill each system once with the replay events; every run scans them again.
        note("loading \(grouped(options.events)) events into each system")
        let capstanFull = root + "/capstan-full"
        try makeFreshDirectory(capstanFull)
        try await CapstanWorkloads.load(directory: capstanFull, events: replayEvents, batch: 1000)
        let sqliteFull = root + "/sqlite-full.db"
        do {
            let sqlite = try SQLiteLog(path: sqliteFull)
            var index = 0
            while index < replayEvents.count {
                try sqlite.append(replayEvents[index..<min(index + 1000, replayEvents.count)])
                index += 1000
            }
            try sqlite.checkpoint()
        }
        let lmdbFull = root + "/lmdb-full"
        try makeFreshDirectory(lmdbFull)
        do {
            let lmdb = try RawLMDB(directory: lmdbFull)
            var index = 0
            while index < replayEvents.count {
                try lmdb.append(replayEvents[index..<min(index + 1000, replayEvents.count)])
                index += 1000
            }
        }
        var capstan = SystemFigures()
        var sqlite = SystemFigures()
        var rawLMDB = SystemFigures()
        let count = Double(replayEvents.count)
        capstan.storedBytesPerEvent = Double(fileBytes(capstanFull + "/data.mdb")) / count
        sqlite.storedBytesPerEvent = Double(fileBytes(sqliteFull) + fileBytes(sqliteFull + "-wal")) / count
        rawLMDB.storedBytesPerEvent = Double(fileBytes(lmdbFull + "/data.mdb")) / count

        var perRun: [String: [[Double]]] = [:]
        for run in 0..<options.runs {
            note("run \(run + 1) of \(options.runs)")
            let single = interleave(
                makeEvents(seed: options.seed &+ UInt64(run) &+ 1, count: options.singleCommits, clusters: 4))
            let groupPerAppender = makeEvents(
                seed: options.seed &+ UInt64(run) &+ 1000, count: options.groupEvents, clusters: options.appenders)
            let groupFlat = interleave(groupPerAppender)
            let runRoot = root + "/run\(run)"
            var figures: [String: [Double]] = [:]

            try makeFreshDirectory(runRoot + "/capstan-single")
            let cs = try await CapstanWorkloads.single(directory: runRoot + "/capstan-single", events: single)
            let ss = try PeerWorkloads.commits(events: single, batch: 1, append: try SQLiteLog(path: runRoot + "/single.db").append)
            try makeFreshDirectory(runRoot + "/lmdb-single")
            let ls = try PeerWorkloads.commits(events: single, batch: 1, append: try RawLMDB(directory: runRoot + "/lmdb-single").append)

            try makeFreshDirectory(runRoot + "/capstan-group")
            let cg = try await CapstanWorkloads.group(directory: runRoot + "/capstan-group", perAppender: groupPerAppender)
            let sg = try PeerWorkloads.commits(
                events: groupFlat, batch: options.appenders, append: try SQLiteLog(path: runRoot + "/group.db").append)
            try makeFreshDirectory(runRoot + "/lmdb-group")
            let lg = try PeerWorkloads.commits(
                events: groupFlat, batch: options.appenders, append: try RawLMDB(directory: runRoot + "/lmdb-group").append)

            let group1024 = makeEvents(
                seed: options.seed &+ UInt64(run) &+ 2000, count: options.groupEvents, clusters: 1024)
            let group1024Flat = interleave(group1024)
            try makeFreshDirectory(runRoot + "/capstan-group1024")
            let cg1024 = try await CapstanWorkloads.group(directory: runRoot + "/capstan-group1024", perAppender: group1024)
            // The same two with every commit writing its derived tables (the layout of writes
            // before the fold), in the same run.
            var inline = EventLogOptions()
            inline.maxUnfoldedEvents = 0
            try makeFreshDirectory(runRoot + "/capstan-group-inline")
            let cgi = try await CapstanWorkloads.group(
                directory: runRoot + "/capstan-group-inline", perAppender: groupPerAppender, options: inline)
            try makeFreshDirectory(runRoot + "/capstan-group1024-inline")
            let cg1024i = try await CapstanWorkloads.group(
                directory: runRoot + "/capstan-group1024-inline", perAppender: group1024, options: inline)
            let sg1024 = try PeerWorkloads.commits(
                events: group1024Flat, batch: 1024, append: try SQLiteLog(path: runRoot + "/group1024.db").append)
            try makeFreshDirectory(runRoot + "/lmdb-group1024")
            let lg1024 = try PeerWorkloads.commits(
                events: group1024Flat, batch: 1024, append: try RawLMDB(directory: runRoot + "/lmdb-group1024").append)

            try makeFreshDirectory(runRoot + "/capstan-batch100")
            let cb = try await CapstanWorkloads.batches(
                directory: runRoot + "/capstan-batch100", perAppender: groupPerAppender, batch: 100)
            let sb = try PeerWorkloads.commits(
                events: groupFlat, batch: 100, append: try SQLiteLog(path: runRoot + "/batch100.db").append)
            try makeFreshDirectory(runRoot + "/lmdb-batch100")
            let lb = try PeerWorkloads.commits(
                events: groupFlat, batch: 100, append: try RawLMDB(directory: runRoot + "/lmdb-batch100").append)

            // The open (its page check walks every B-tree page with pread) is timed on its own;
            // the replays then scan with that reader, as an engine replays after opening.
            let openStart = ContinuousClock.now
            let capstanReader = try EventLogReader(directory: capstanFull)
            _ = try capstanReader.lastPosition()
            let co = (ContinuousClock.now - openStart).seconds * 1000
            let cr2 = try timedScan { try CapstanWorkloads.replayTwoCores(capstanReader) }
            let cr = try timedScan { try CapstanWorkloads.replay(capstanReader) }
            let sr = try timedScan { try SQLiteLog(path: sqliteFull, readOnly: true).scan() }
            let lr = try timedScan { try RawLMDB(directory: lmdbFull).scan() }

            figures["capstan"] = [cs.eventsPerSecond, cs.latencyP50Milliseconds, cs.latencyP99Milliseconds,
                                  cg.eventsPerSecond, cg.latencyP50Milliseconds, cg.latencyP99Milliseconds, cr,
                                  cg1024.eventsPerSecond, cb.eventsPerSecond, cr2, co, cgi.eventsPerSecond,
                                  cg1024i.eventsPerSecond]
            figures["sqlite"] = [ss.eventsPerSecond, ss.latencyP50Milliseconds, ss.latencyP99Milliseconds,
                                 sg.eventsPerSecond, sg.latencyP50Milliseconds, sg.latencyP99Milliseconds, sr,
                                 sg1024.eventsPerSecond, sb.eventsPerSecond, .nan, .nan, .nan, .nan]
            figures["rawLMDB"] = [ls.eventsPerSecond, ls.latencyP50Milliseconds, ls.latencyP99Milliseconds,
                                  lg.eventsPerSecond, lg.latencyP50Milliseconds, lg.latencyP99Milliseconds, lr,
                                  lg1024.eventsPerSecond, lb.eventsPerSecond, .nan, .nan, .nan, .nan]
            for (system, values) in figures { perRun[system, default: []].append(values) }
            try? FileManager.default.removeItem(atPath: runRoot)
        }
        for (system, runs) in perRun {
            let medians = (0..<13).map { column in median(runs.map { $0[column] }) }
            func apply(_ figures: inout SystemFigures) {
                figures.singleCommitsPerSecond = medians[0]
                figures.singleLatencyP50Milliseconds = medians[1]
                figures.singleLatencyP99Milliseconds = medians[2]
                figures.groupEventsPerSecond = medians[3]
                figures.groupLatencyP50Milliseconds = medians[4]
                figures.groupLatencyP99Milliseconds = medians[5]
                figures.replayEventsPerSecond = medians[6]
                figures.group1024EventsPerSecond = medians[7]
                figures.batch100EventsPerSecond = medians[8]
                figures.replayTwoCoreEventsPerSecond = medians[9]
                figures.openMilliseconds = medians[10]
                figures.groupInlineEventsPerSecond = medians[11]
                figures.group1024InlineEventsPerSecond = medians[12]
            }
            switch system {
            case "capstan": apply(&capstan)
            case "sqlite": apply(&sqlite)
            default: apply(&rawLMDB)
            }
        }
        return BenchResult(
            machine: machineDescription(), runs: options.runs, events: replayEvents.count,
            groupEvents: options.groupEvents, singleCommits: options.singleCommits, appenders: options.appenders,
            payloadBytesPerEvent: payloadBytes, capstan: capstan, sqlite: sqlite, rawLMDB: rawLMDB, perRun: perRun,
            limits: nil)
    }

    func replayOnly() async throws {
        let events = interleave(makeEvents(seed: options.seed, count: options.events, clusters: 256))
        let directory = root + "/capstan-full"
        try makeFreshDirectory(directory)
        try await CapstanWorkloads.load(directory: directory, events: events, batch: 1000)
        let reader = try EventLogReader(directory: directory)
        for run in 0..<options.runs {
            let rate = try timedScan { try CapstanWorkloads.replay(reader) }
            print("replay run \(run + 1): \(formatted(rate, 0)) events/s")
        }
    }

    /// Events per second of a full scan; checks the scan saw every event.
    private func timedScan(_ scan: () throws -> (count: Int, sum: UInt64)) throws -> Double {
        let start = ContinuousClock.now
        let (count, _) = try scan()
        let elapsed = ContinuousClock.now - start
        guard count == options.events else { throw BenchError("a scan saw \(count) events of \(options.events)") }
        return Double(count) / elapsed.seconds
    }

    private func makeFreshDirectory(_ path: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    private func machineDescription() -> String {
        let cpuInfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuInfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" }
            ?? "unknown CPU"
        return "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(model)"
    }
}

func grouped(_ value: Int) -> String {
    let digits = Array(String(value.magnitude))
    var text = ""
    for (index, digit) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { text.append(",") }
        text.append(digit)
    }
    return value < 0 ? "-" + text : text
}

func formatted(_ value: Double, _ digits: Int) -> String {
    value.isFinite ? String(format: "%.\(digits)f", value) : "n/a"
}
