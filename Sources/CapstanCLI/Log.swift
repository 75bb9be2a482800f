import ArgumentParser
import EventLog
import Foundation

/// `capstan log …`: read the event log itself.
struct Log: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect, check, export and back up the event log.",
        discussion: """
            The log lives in the data directory (--data-dir, else $CAPSTAN_DATA_DIR, else \
            ./capstan-data) as an LMDB environment: data.mdb and lock.mdb. Every command \
            here opens it read-only, so it answers while an engine or `capstan log demo` is \
            writing, and never changes it.

            Examples:
              capstan log demo                  append generated lifecycle events, verify, print stats
              capstan log verify
              capstan log stats -o json
              capstan log export --after 1000 --stream cluster/prod-eu-west-3-k7q0
              capstan log backup /var/backups/capstan-2026-11-23
            """,
        subcommands: [Verify.self, Stats.self, Export.self, Backup.self, LogDemo.self]
    )
}

extension Log {
    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every event, checksum and index of the log.",
            discussion: """
                Reads one consistent snapshot of the whole log and checks that every event \
                decodes (its checksum matches, its zstd dictionary exists, it decompresses), \
                that positions run 1, 2, 3… without a gap, that each stream's revisions run \
                0, 1, 2…, and that the stream index agrees with the events. Damage does not \
                stop the check: each finding names the position, the stream when known, and \
                the kind of damage (checksumMismatch, malformedEnvelope, positionGap, \
                revisionGap, missingIndexEntry, danglingIndexEntry, missingDictionary, \
                truncatedFile, unreadable).

                Safe while a writer runs: it checks the log as of the moment it starts.

                Exit codes: 0 the log is whole; 1 damage found (a data file too damaged to \
                open counts as damage); 2 there is no log at the path (the message names it).

                Examples:
                  capstan log verify
                  capstan log verify --data-dir /srv/capstan -o json | jq '.damage[]'
                """
        )

        @OptionGroup var options: CommonOptions

        func run() async throws {
            try await reportingFailures {
                let report = try verifyLog(options.dataDirectory)
                switch options.output {
                case .json, .yaml: try printStructured(VerifyOutput(report), format: options.output)
                case .text, .wide, .name: printVerifyReport(report)
                }
                if !report.isClean { throw ExitCodes.damage }
            }
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show how many events and streams the log holds and how compactly.",
            discussion: """
                Counts events and streams, the bytes the data file takes on disk, bytes per \
                event, payload bytes before and after compression (the compression ratio), \
                the zstd dictionaries trained from the log's own events and how many events \
                use each, and a count per event type. Decompresses nothing, so it is quick.

                Examples:
                  capstan log stats
                  capstan log stats -o json | jq .bytesPerEvent
                """
        )

        @OptionGroup var options: CommonOptions

        func run() async throws {
            try await reportingFailures {
                let directory = options.dataDirectory
                let stats = StatsOutput(try openReader(directory).stats(), directory: directory)
                switch options.output {
                case .json, .yaml: try printStructured(stats, format: options.output)
                case .text, .wide, .name: printStats(stats)
                }
            }
        }
    }
}

func printVerifyReport(_ report: VerifyReport) {
    print(
        "checked \(grouped(report.eventsChecked)) events (positions 1...\(report.lastPosition)), "
            + "\(grouped(report.streamsChecked)) streams, \(report.dictionariesChecked) dictionaries in \(report.directory)")
    for problem in report.problems {
        var place = problem.position.map { "position \($0)" } ?? "log"
        if let stream = problem.stream { place += ", stream \(stream)" }
        print("DAMAGE \(place): \(problem.kind.rawValue): \(problem.message)")
    }
    print(report.isClean ? "OK: the log is whole" : "FAILED: \(report.problems.count) problem(s)")
}

func printStats(_ stats: StatsOutput) {
    print("log:               \(stats.dataDirectory)")
    print("events:            \(grouped(stats.events)) (last position \(stats.lastPosition))")
    print("streams:           \(grouped(stats.streams))")
    print("bytes stored:      \(grouped(stats.bytesStored)) (data.mdb; map \(grouped(stats.mapSizeBytes)))")
    print("bytes per event:   \(formatted(stats.bytesPerEvent))")
    print(
        "payloads:          \(grouped(stats.payloadBytesRaw)) bytes raw, \(grouped(stats.payloadBytesStored)) stored: "
            + "compression ratio \(formatted(stats.compressionRatio, digits: 2))x")
    print(
        "                   \(grouped(stats.eventsWithDictionary)) events with a dictionary, "
            + "\(grouped(stats.eventsStoredRaw)) stored raw")
    print(
        "pages:             \(grouped(stats.pagesUsed)) used, \(grouped(stats.freePages)) free, "
            + "\(grouped(stats.pageSize)) bytes each")
    for database in stats.databases {
        let share = stats.events == 0 ? 0 : Double(database.pages * stats.pageSize) / Double(stats.events)
        print(
            "  \(database.name.padding(toLength: max(16, database.name.count), withPad: " ", startingAt: 0)) \(grouped(database.entries)) entries, "
                + "\(grouped(database.pages)) pages (\(formatted(share)) bytes/event)")
    }
    print("dictionaries:      \(stats.dictionaries.count)")
    for dictionary in stats.dictionaries {
        print(
            "  #\(dictionary.id) \(dictionary.eventType ?? "(shared)"): \(grouped(dictionary.bytes)) bytes, "
                + "used by \(grouped(dictionary.eventsUsing)) events")
    }
    if !stats.eventTypes.isEmpty {
        print("event types:")
        for (type, count) in stats.eventTypes.sorted(by: { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }) {
            print("  \(type.padding(toLength: max(32, type.count), withPad: " ", startingAt: 0)) \(grouped(count))")
        }
    }
}
