import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Size and compression figures of a log (`capstan log stats`).
public struct LogStats: Sendable {
    /// One stored dictionary.
    public struct Dictionary: Sendable, Hashable {
        public var id: UInt32
        /// The event type it was trained for (nil: shared, or its name is missing).
        public var eventType: String?
        /// Dictionary size in bytes.
        public var bytes: Int
        /// Events of its type when it was trained.
        public var eventCountAtTraining: UInt64
        /// Samples it was trained from.
        public var sampleCount: UInt64
        /// Events whose payload names it.
        public var eventsUsing: Int
    }

    /// Events per type.
    public struct EventType: Sendable, Hashable {
        public var name: String
        public var events: Int
    }

    public var events = 0
    public var streams = 0
    public var lastPosition = LogPosition.start
    /// The data file's size (`data.mdb`): what the log costs on disk.
    public var dataFileBytes = 0
    /// `dataFileBytes / events` (0 when empty).
    public var bytesPerEvent: Double { events == 0 ? 0 : Double(dataFileBytes) / Double(events) }
    /// Envelope bytes (values of the `events` database), without LMDB's page overhead.
    public var envelopeBytes = 0
    /// Payload bytes before compression.
    public var payloadBytesRaw = 0
    /// Payload bytes as stored (compressed, or raw where compression did not pay).
    public var payloadBytesStored = 0
    /// `payloadBytesRaw / payloadBytesStored` (1 when empty).
    public var compressionRatio: Double {
        payloadBytesStored == 0 ? 1 : Double(payloadBytesRaw) / Double(payloadBytesStored)
    }
    /// Events compressed with a dictionary.
    public var eventsWithDictionary = 0
    /// Events stored raw (compression did not make them smaller).
    public var eventsStoredRaw = 0
    public var dictionaries: [Dictionary] = []
    public var eventTypes: [EventType] = []

    /// Where the data file's pages go, per LMDB database (`mdb_stat`).
    public struct DatabaseUsage: Sendable, Hashable {
        public var name: String
        public var entries: Int
        public var depth: Int
        public var branchPages: Int
        public var leafPages: Int
        public var overflowPages: Int
        public var pages: Int { branchPages + leafPages + overflowPages }
    }

    public var databases: [DatabaseUsage] = []
    /// LMDB page size in bytes.
    public var pageSize = 0
    /// Pages in use up to the last one written (`mdb_env_info` last page + 1).
    public var pagesUsed = 0
    /// Pages on LMDB's free list, reusable by later commits.
    public var freePages = 0
    /// The current map size (the file may grow up to it).
    public var mapSizeBytes = 0
    /// Entries in the `state` database.
    public var stateEntries = 0
}

extension EventLogReader {
    /// Counts events, streams, bytes and compression over the whole log (one read transaction).
    ///
    /// Reads every envelope header but decompresses nothing.
    /// - Throws: `.corrupt` at a damaged envelope (`verify()` lists them all), `.lmdb`.
    /// - Complexity: O(n) in events.
    public func stats() throws -> LogStats {
        var stats = LogStats()
        var info = stat()
        if stat(directory + "/" + LMDBEnvironment.dataFileName, &info) == 0 {
            stats.dataFileBytes = Int(info.st_size)
        }
        stats.mapSizeBytes = environment.mapSizeBytes
        try environment.read { txn in
            var byDictionary: [UInt32: Int] = [:]
            var byType: [UInt32: Int] = [:]
            let cursor = try txn.cursor(txn.dbs.events)
            var entry = try cursor.get(MDB_FIRST)
            while let current = entry {
                let position = LogPosition(Keys.readBigEndian(current.key, UInt64.self) ?? 0)
                let (envelope, payload) = try Envelope.decode(position: position, current.value)
                stats.events += 1
                stats.lastPosition = position
                stats.envelopeBytes += current.value.count
                stats.payloadBytesRaw += envelope.rawPayloadLength
                stats.payloadBytesStored += payload.count
                if envelope.dictionaryID != 0 {
                    stats.eventsWithDictionary += 1
                    byDictionary[envelope.dictionaryID, default: 0] += 1
                }
                if !envelope.compressed { stats.eventsStoredRaw += 1 }
                byType[envelope.typeNumber, default: 0] += 1
                entry = try cursor.get(MDB_NEXT)
            }
            stats.streams = try txn.entryCount(txn.dbs.streamNames)
            try Self.pageUsage(txn, into: &stats)
            stats.stateEntries = try txn.entryCount(txn.dbs.state)
            for record in try txn.dictionaryRecords() {
                stats.dictionaries.append(LogStats.Dictionary(
                    id: record.id, eventType: try txn.name(of: record.typeNumber, kind: .eventType),
                    bytes: record.bytes.count, eventCountAtTraining: record.eventCountAtTraining,
                    sampleCount: record.sampleCount, eventsUsing: byDictionary[record.id] ?? 0))
            }
            for (type, count) in byType {
                let name = try txn.name(of: type, kind: .eventType) ?? "#\(type)"
                stats.eventTypes.append(LogStats.EventType(name: name, events: count))
            }
            stats.eventTypes.sort { ($0.events, $1.name) > ($1.events, $0.name) }
        }
        return stats
    }

    private static func pageUsage(_ txn: ReadTransaction, into stats: inout LogStats) throws {
        let dbs = txn.dbs
        let named: [(String, MDB_dbi)] = [
            ("events", dbs.events), ("streamIndex", dbs.streamIndex), ("names", dbs.names), ("streamNames", dbs.streamNames),
            ("eventTypeNames", dbs.eventTypeNames), ("actorNames", dbs.actorNames),
            ("dictionaries", dbs.dictionaries), ("state", dbs.state), ("meta", dbs.meta), ("(main)", 1),
            ("(free)", 0),
        ]
        for (name, dbi) in named {
            var stat = MDB_stat()
            try LMDBError.check(mdb_stat(txn.txn, dbi, &stat), "mdb_stat")
            stats.pageSize = Int(stat.ms_psize)
            stats.databases.append(LogStats.DatabaseUsage(
                name: name, entries: stat.ms_entries, depth: Int(stat.ms_depth), branchPages: stat.ms_branch_pages,
                leafPages: stat.ms_leaf_pages, overflowPages: stat.ms_overflow_pages))
        }
        var info = MDB_envinfo()
        mdb_env_info(mdb_txn_env(txn.txn), &info)
        stats.pagesUsed = info.me_last_pgno + 1
        // Free list values are ID lists whose first word is their length (mdb.c, MDB_IDL).
        let cursor = try txn.cursor(0)
        var entry = try cursor.get(MDB_FIRST)
        while let current = entry {
            if current.value.count >= MemoryLayout<Int>.size {
                stats.freePages += current.value.loadUnaligned(as: Int.self)
            }
            entry = try cursor.get(MDB_NEXT)
        }
    }

    /// Writes a consistent, compacted copy of the log into `target` while a writer may run
    /// (`mdb_env_copy2` with `MDB_CP_COMPACT`: one read transaction, free pages left out).
    ///
    /// - Parameter target: a directory that does not exist yet or is empty; created if missing.
    /// - Throws: `.invalidInput` when `target` already holds a log, `.lmdb`/`.diskFull` when
    ///   the copy fails (a partial copy is removed).
    public func backup(to target: String) throws {
        try LMDBEnvironment.makeDirectory(target)
        let dataPath = target + "/" + LMDBEnvironment.dataFileName
        if access(dataPath, F_OK) == 0 {
            throw EventLogError(.invalidInput, "backup: \(target) already holds \(LMDBEnvironment.dataFileName)")
        }
        do {
            try environment.copy(to: target)
        } catch let error as LMDBError {
            unlink(dataPath)
            throw EventLogError.wrap(error, "backup of \(directory) to \(target)")
        } catch {
            unlink(dataPath)
            throw error
        }
        logger.info("eventlog.backup.done", metadata: ["eventlog.backup.target": "\(target)"])
    }
}
