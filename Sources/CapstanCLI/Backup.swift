import ArgumentParser
import EventLog
import Foundation

extension Log {
    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy the log, compacted and consistent, to another directory.",
            discussion: """
                Writes a copy of the log as of one moment into DIR (created if missing; it \
                must not already hold a log): free pages are left out and pages renumbered, \
                so the copy is often smaller than the original. It runs in one read \
                transaction, so a writer may keep appending meanwhile; the copy holds every \
                event committed when the backup began. Restore by pointing --data-dir at the \
                copy. The copy is verified after it is written.

                Examples:
                  capstan log backup /var/backups/capstan-$(date +%F)
                  CAPSTAN_DATA_DIR=/srv/capstan capstan log backup ./snapshot -o json
                """
        )

        @OptionGroup var options: CommonOptions

        @Argument(help: ArgumentHelp("The directory to write the copy into.", valueName: "dir"))
        var target: String

        struct Summary: Codable {
            var source: String
            var target: String
            var events: Int
            var lastPosition: UInt64
            var bytesSource: UInt64
            var bytesCopy: UInt64
            var verified: Bool
        }

        func run() async throws {
            try await reportingFailures {
                let source = options.dataDirectory
                let reader = try openReader(source)
                if FileManager.default.fileExists(atPath: (target as NSString).appendingPathComponent("data.mdb")) {
                    throw CommandFailure("\(target) already holds a log (data.mdb); choose an empty directory")
                }
                do {
                    try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
                } catch {
                    throw CommandFailure("cannot create the backup directory \(target): \(error)")
                }
                try reader.backup(to: target)
                let report = try verifyLog(target)
                let summary = Summary(
                    source: source, target: target, events: report.eventsChecked, lastPosition: report.lastPosition.rawValue,
                    bytesSource: dataFileBytes(source), bytesCopy: dataFileBytes(target), verified: report.isClean)
                switch options.output {
                case .json, .yaml: try printStructured(summary, format: options.output)
                case .text, .wide, .name:
                    print(
                        "backed up \(grouped(summary.events)) events (positions 1...\(summary.lastPosition)) "
                            + "from \(source) to \(target)")
                    print("data file: \(grouped(summary.bytesSource)) bytes → \(grouped(summary.bytesCopy)) bytes")
                    print(report.isClean ? "the copy verifies" : "the copy does NOT verify:\n\(report)")
                }
                if !report.isClean { throw ExitCodes.damage }
            }
        }
    }
}
