import EventLog
import EventLogTesting
import Foundation
import Testing

@Suite("EventLog processes")
struct MultiProcessTests {
    struct ReaderSummary: Decodable {
        var snapshots: Int
        var fullRescans: Int
        var eventsChecked: UInt64
        var lastPosition: UInt64
        var dataFileBytesFirst: UInt64
        var dataFileBytesLast: UInt64
        var problems: [String]
    }

    /// Goal: a reader in another process always sees whole, gap-free snapshots while a
    /// writer process appends and grows the map. Method: the crash driver appends 20,000
    /// events (with large ones) from a 256 KiB initial map, so the map grows many times;
    /// a second driver process reads and checks snapshots until it has seen them all.
    @Test("EventLog: processes: reader stays consistent while a writer grows the map (events=20000)")
    func readerWhileWriterGrowsMap() async throws {
        let driver = try Executables.url("eventlog-crash-driver")
        let root = try makeTemporaryDirectory("multiprocess")
        defer { removeTemporaryDirectory(root) }
        let dataDirectory = root + "/data"
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let initialMapSize = 256 * 1024

        let writer = try ChildProcess(
            driver,
            [
                "append", "--data-dir", dataDirectory, "--seed", "77", "--appenders", "4",
                "--initial-map-size", String(initialMapSize), "--max-events", "20000", "--large-every", "8",
            ],
            outputPrefix: root + "/writer")
        let reader = try ChildProcess(
            driver, ["read", "--data-dir", dataDirectory, "--until-position", "20000", "--seconds", "240"],
            outputPrefix: root + "/reader")
        try await writer.wait(timeout: .seconds(300))
        try await reader.wait(timeout: .seconds(300))

        #expect(writer.exitStatus == 0 && !writer.killedBySignal, "writer failed: \(writer.stderr)")
        let done = writer.stdout.split(separator: "\n").last { $0.hasPrefix("done ") }
        let lastPosition = done.flatMap { UInt64($0.dropFirst(5)) } ?? 0
        #expect(lastPosition >= 20000, "writer output ends: \(writer.stdout.suffix(200))")

        #expect(reader.exitStatus == 0 && !reader.killedBySignal, "reader failed: \(reader.stdout) \(reader.stderr)")
        let summaryLine = reader.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let summary = try JSONDecoder().decode(ReaderSummary.self, from: Data(summaryLine.utf8))
        #expect(summary.problems.isEmpty)
        #expect(summary.lastPosition >= 20000)
        #expect(summary.eventsChecked >= 20000)
        #expect(summary.snapshots > 1, "the reader must have read while the writer wrote")
        #expect(summary.dataFileBytesLast > UInt64(initialMapSize), "the map never grew past its initial size")

        let log = try EventLogReader(directory: dataDirectory)
        #expect(try log.lastPosition().rawValue == lastPosition)
    }
}
