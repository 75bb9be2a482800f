import ArgumentParser
import EventLog
import EventLogTesting
import Foundation

struct Read: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read consistent snapshots while another process writes; exit 1 on any inconsistency.")

    @Option(name: .customLong("data-dir")) var dataDirectory: String
    @Option(help: "Stop once this position has been read and checked.") var untilPosition: UInt64?
    @Option(help: "Stop after this many seconds.") var seconds: Double = 60

    struct Summary: Codable {
        var snapshots = 0
        var fullRescans = 0
        var eventsChecked: UInt64 = 0
        var lastPosition: UInt64 = 0
        var dataFileBytesFirst: UInt64 = 0
        var dataFileBytesLast: UInt64 = 0
        var problems: [String] = []
    }

    func run() async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var summary = Summary()
        let reader = try await openWhenPresent(deadline: deadline)
        summary.dataFileBytesFirst = dataFileBytes()
        var checker = SnapshotChecker()
        while ContinuousClock.now < deadline && summary.problems.isEmpty {
            summary.snapshots += 1
            do {
                let last = try reader.lastPosition()
                try checker.check(reader, through: last, problems: &summary.problems)
                summary.lastPosition = last.rawValue
                if summary.snapshots % 16 == 0 {
                    // Re-read everything from the start in one snapshot: old pages must stay whole too.
                    var fresh = SnapshotChecker()
                    try fresh.check(reader, through: last, problems: &summary.problems)
                    summary.fullRescans += 1
                }
            } catch {
                summary.problems.append("snapshot \(summary.snapshots): \(error)")
            }
            summary.eventsChecked = checker.position.rawValue
            if let untilPosition, summary.lastPosition >= untilPosition { break }
            try await Task.sleep(for: .milliseconds(2))
        }
        summary.dataFileBytesLast = dataFileBytes()
        if let untilPosition, summary.lastPosition < untilPosition, summary.problems.isEmpty {
            summary.problems.append("read only up to position \(summary.lastPosition) of \(untilPosition) in \(seconds) s")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        if !summary.problems.isEmpty { throw ExitCode(1) }
    }

    private func openWhenPresent(deadline: ContinuousClock.Instant) async throws -> EventLogReader {
        while true {
            do {
                return try EventLogReader(directory: dataDirectory)
            } catch {
                if ContinuousClock.now >= deadline { throw error }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    private func dataFileBytes() -> UInt64 {
        let attributes = try? FileManager.default.attributesOfItem(atPath: dataDirectory + "/data.mdb")
        return (attributes?[.size] as? NSNumber)?.uint64Value ?? 0
    }
}

/// Checks events incrementally: positions without gaps, each stream's revisions without
/// gaps, every event whole (its id carries its content hash).
struct SnapshotChecker {
    private(set) var position = LogPosition.start
    private var revisions: [StreamID: StreamRevision] = [:]

    mutating func check(_ reader: EventLogReader, through last: LogPosition, problems: inout [String]) throws {
        if last < position {
            problems.append("the last position went back from \(position) to \(last)")
            return
        }
        var current = position
        var revisions = self.revisions
        var found: [String] = []
        try reader.scan(after: position, through: last) { event in
            if event.position != current.next {
                found.append("position \(event.position) follows \(current)")
            }
            let expected = revisions[event.streamID].map(\.next) ?? StreamRevision(0)
            if event.revision != expected {
                found.append("position \(event.position): stream \(event.streamID) revision \(event.revision), expected \(expected)")
            }
            if !event.isWhole {
                found.append("position \(event.position): stream \(event.streamID): content hash does not match its id")
            }
            revisions[event.streamID] = event.revision
            current = event.position
            return found.count < 10
        }
        if found.isEmpty && current != last {
            found.append("the snapshot through \(last) ended at \(current)")
        }
        problems += found
        position = current
        self.revisions = revisions
    }
}
