import EventLog
import Foundation

/// Opens the log in `directory` read-only, with an error that names the path when there is
/// no log there (rather than LMDB's bare errno).
func openReader(_ directory: String) throws -> EventLogReader {
    try requireLogDirectory(directory)
    do {
        return try EventLogReader(directory: directory)
    } catch {
        throw CommandFailure("cannot open the log at \(directory): \(error)")
    }
}

/// Size in bytes of the log's data file (`data.mdb`), or 0 when it cannot be read.
func dataFileBytes(_ directory: String) -> UInt64 {
    let path = (directory as NSString).appendingPathComponent("data.mdb")
    let attributes = try? FileManager.default.attributesOfItem(atPath: path)
    return (attributes?[.size] as? NSNumber)?.uint64Value ?? 0
}

/// Checks that `directory` looks like a log, with an error that names the path when not.
func requireLogDirectory(_ directory: String) throws {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
        throw CommandFailure(
            "no Capstan log at \(directory): the directory does not exist (set --data-dir or CAPSTAN_DATA_DIR)")
    }
    guard isDirectory.boolValue else {
        throw CommandFailure("no Capstan log at \(directory): it is a file, not a data directory")
    }
    let dataFile = (directory as NSString).appendingPathComponent("data.mdb")
    guard FileManager.default.fileExists(atPath: dataFile) else {
        throw CommandFailure("no Capstan log at \(directory): it holds no data.mdb (is it a Capstan data directory?)")
    }
}

/// One thing `log verify` found wrong (the JSON form of `VerifyReport.Problem`).
struct Damage: Codable, Sendable, Equatable {
    /// The position of the damaged event, when the damage has one.
    var position: UInt64?
    /// The stream concerned, when known.
    var stream: String?
    /// The kind of damage: `checksumMismatch`, `positionGap`, `truncatedFile`, ….
    var kind: String
    /// What exactly is wrong, for people.
    var detail: String
}

/// What `log verify` prints with `-o json`.
struct VerifyOutput: Encodable, Sendable {
    var dataDirectory: String
    var events: Int
    var streams: Int
    var dictionaries: Int
    var lastPosition: UInt64
    var damage: [Damage]
    var ok: Bool

    init(_ report: VerifyReport) {
        dataDirectory = report.directory
        events = report.eventsChecked
        streams = report.streamsChecked
        dictionaries = report.dictionariesChecked
        lastPosition = report.lastPosition.rawValue
        damage = report.problems.map {
            Damage(position: $0.position?.rawValue, stream: $0.stream?.rawValue, kind: $0.kind.rawValue, detail: $0.message)
        }
        ok = report.isClean
    }
}

/// Verifies the log in `directory` (after checking there is one): a log that cannot even
/// be opened, such as a truncated data file, comes back as damage, not as an error.
func verifyLog(_ directory: String) throws -> VerifyReport {
    try requireLogDirectory(directory)
    return try EventLogReader.verify(directory: directory)
}

/// What `log stats` prints with `-o json`.
struct StatsOutput: Codable, Sendable {
    struct Dictionary: Codable, Sendable {
        var id: UInt32
        var eventType: String?
        var bytes: Int
        var eventsUsing: Int
        var trainedFromSamples: UInt64
    }

    struct Database: Codable, Sendable {
        var name: String
        var entries: Int
        var pages: Int
        var overflowPages: Int
    }

    var dataDirectory: String
    var events: Int
    var streams: Int
    var lastPosition: UInt64
    /// The data file's size on disk.
    var bytesStored: Int
    var bytesPerEvent: Double
    var envelopeBytes: Int
    var payloadBytesRaw: Int
    var payloadBytesStored: Int
    /// Payload bytes before compression / payload bytes stored.
    var compressionRatio: Double
    var eventsWithDictionary: Int
    var eventsStoredRaw: Int
    var dictionaries: [Dictionary]
    var eventTypes: [String: Int]
    var mapSizeBytes: Int
    var pageSize: Int
    var pagesUsed: Int
    var freePages: Int
    /// LMDB page usage per database: where the stored bytes go.
    var databases: [Database]

    init(_ stats: LogStats, directory: String) {
        dataDirectory = directory
        events = stats.events
        streams = stats.streams
        lastPosition = stats.lastPosition.rawValue
        bytesStored = stats.dataFileBytes
        bytesPerEvent = stats.bytesPerEvent
        envelopeBytes = stats.envelopeBytes
        payloadBytesRaw = stats.payloadBytesRaw
        payloadBytesStored = stats.payloadBytesStored
        compressionRatio = stats.compressionRatio
        eventsWithDictionary = stats.eventsWithDictionary
        eventsStoredRaw = stats.eventsStoredRaw
        dictionaries = stats.dictionaries.map {
            Dictionary(
                id: $0.id, eventType: $0.eventType, bytes: $0.bytes, eventsUsing: $0.eventsUsing,
                trainedFromSamples: $0.sampleCount)
        }
        eventTypes = Swift.Dictionary(stats.eventTypes.map { ($0.name, $0.events) }, uniquingKeysWith: +)
        mapSizeBytes = stats.mapSizeBytes
        pageSize = stats.pageSize
        pagesUsed = stats.pagesUsed
        freePages = stats.freePages
        databases = stats.databases.map {
            Database(name: $0.name, entries: $0.entries, pages: $0.pages, overflowPages: $0.overflowPages)
        }
    }
}
