import CLMDB
public import Logging

/// Read-only access to a log; any number, in any process, while a writer writes.
///
/// Every call is one or more short read transactions (`MDB_NOTLS`), each a consistent
/// snapshot; long scans commit to fresh snapshots every few thousand events (committed events
/// never change, so a scan still sees a gap-free prefix of the log). In the writer's process
/// use `EventLog.reader`, or open another: both share the one environment of the process.
public final class EventLogReader: Sendable {
    let environment: LMDBEnvironment
    let logger: Logger
    /// Events read per read transaction in `scan`.
    static let scanChunk = 4096

    /// Opens the log in `directory` for reading.
    ///
    /// - Throws: `EventLogError` `.notFound` when there is no log, `.corrupt` when the data file
    ///   is truncated, `.lmdb` when liblmdb refuses.
    public convenience init(directory: String, logger: Logger = Logger(label: "capstan.eventlog")) throws {
        let environment = try LMDBEnvironment.shared(directory: directory, create: false, mapSizeBytes: 0)
        self.init(environment: environment, logger: logger)
    }

    init(environment: LMDBEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    /// The data directory (canonical path).
    public var directory: String { environment.directory }

    /// The position of the last committed event; `.start` when the log is empty.
    public func lastPosition() throws -> LogPosition {
        try environment.read { try $0.lastPosition() }
    }

    /// The revision of the stream's last event; nil when the stream does not exist.
    public func streamRevision(_ stream: StreamID) throws -> StreamRevision? {
        try environment.read { txn in
            guard let number = try txn.number(of: stream.rawValue, kind: .stream) else { return nil }
            let count = try txn.eventCount(streamNumber: number)
            return count == 0 ? nil : StreamRevision(count - 1)
        }
    }

    /// The events of `stream` from revision `from`, in order, at most `maxCount`.
    /// - Throws: `.corrupt` naming the position of a damaged event.
    public func readStream(_ stream: StreamID, from: StreamRevision = StreamRevision(0), maxCount: Int = .max) throws
        -> [RecordedEvent]
    {
        guard maxCount > 0 else { return [] }
        return try environment.read { txn in
            guard let number = try txn.number(of: stream.rawValue, kind: .stream) else { return [] }
            return try EventDecoder.with(environment.caches, lenderCount: EventDecoder.pointReadLenderCount) { decoder in
                var events: [RecordedEvent] = []
                try txn.forEachPosition(ofStream: number, from: from.rawValue) { revision, position in
                    guard let bytes = try txn.get(txn.dbs.events, Keys.position(position.rawValue)) else {
                        throw EventLogError(
                            .corrupt, "stream \(stream) revision \(revision): its index names position \(position), "
                                + "which holds no event", stream: stream, position: position)
                    }
                    let event = try decoder.decode(position: position, bytes, in: txn)
                    guard event.streamID == stream, event.revision.rawValue == revision else {
                        throw EventLogError(
                            .corrupt, "stream \(stream) revision \(revision): position \(position) holds "
                                + "\(event.streamID) revision \(event.revision)", stream: stream, position: position)
                    }
                    events.append(event)
                    return events.count < maxCount
                }
                return events
            }
        }
    }

    /// Events with position > `after`, in order, at most `maxCount`.
    public func readAll(after: LogPosition, maxCount: Int = .max) throws -> [RecordedEvent] {
        var events: [RecordedEvent] = []
        guard maxCount > 0 else { return events }
        try scan(after: after) { event in
            events.append(event)
            return events.count < maxCount
        }
        return events
    }

    /// Streaming scan of positions `after` < p ≤ `through` (the end when nil), without
    /// materialising an array; `body` returns false to stop.
    ///
    /// - Throws: `.corrupt` at the first damaged event (use `verify()` to list every problem),
    ///   or what `body` throws.
    public func scan(after: LogPosition, through: LogPosition? = nil, _ body: (RecordedEvent) throws -> Bool) throws {
        var next = after.rawValue + 1
        let end = through?.rawValue ?? .max
        // One decoder for the whole scan: what it caches (names, dictionaries, recent ids) is
        // immutable once committed, so it stays valid from one read transaction to the next.
        try EventDecoder.with(environment.caches) { decoder in
            while next <= end {
                let (read, stopped) = try environment.read { txn in
                    try Self.scanChunk(from: next, through: end, txn: txn, decoder: decoder, body)
                }
                if stopped || read == 0 { return }
                next += UInt64(read)
            }
        }
    }

    /// Decodes up to `scanChunk` events from `first`; returns how many and whether `body` stopped.
    private static func scanChunk(
        from first: UInt64, through end: UInt64, txn: ReadTransaction, decoder: EventDecoder,
        _ body: (RecordedEvent) throws -> Bool
    ) throws -> (Int, Bool) {
        let cursor = try txn.cursor(txn.dbs.events)
        var key = first.bigEndian
        var entry = try withUnsafeBytes(of: &key) { try cursor.get(MDB_SET_RANGE, key: $0) }
        var expected = first
        var count = 0
        while let current = entry, count < scanChunk {
            guard let position = Keys.readBigEndian(current.key, UInt64.self) else {
                throw EventLogError(.corrupt, "events: a key of \(current.key.count) bytes is not a position")
            }
            if position > end { return (count, true) }
            guard position == expected else {
                throw EventLogError(
                    .corrupt, "events: position \(expected) is missing (next stored is \(position))",
                    position: LogPosition(expected))
            }
            let event = try decoder.decode(position: LogPosition(position), current.value, in: txn)
            count += 1
            expected += 1
            if try !body(event) { return (count, true) }
            entry = try cursor.get(MDB_NEXT)
        }
        return (count, false)
    }

    /// The last position whose event was recorded at or before `nanoseconds` (a time cut);
    /// `.start` when every event is later.
    ///
    /// Recorded times never decrease along positions (the writer keeps them monotonic), so
    /// this is a binary search reading 8 bytes per probe.
    /// - Complexity: O(log n) lookups.
    public func position(atTimeNanoseconds nanoseconds: Int64) throws -> LogPosition {
        try environment.read { txn in
            let last = try txn.lastPosition().rawValue
            var low: UInt64 = 0  // recorded at or before (0: none)
            var high = last + 1  // recorded after
            while high - low > 1 {
                let middle = low + (high - low) / 2
                guard let bytes = try txn.get(txn.dbs.events, Keys.position(middle)),
                    let recordedAt = Envelope.recordedAt(bytes)
                else {
                    throw EventLogError.corrupt(LogPosition(middle), "missing or too short to hold a time")
                }
                if recordedAt <= nanoseconds { low = middle } else { high = middle }
            }
            return LogPosition(low)
        }
    }

    /// The value of `key` in the `state` database as of the last commit; nil when absent.
    public func state(forKey key: String) throws -> [UInt8]? {
        try environment.read { txn in
            try txn.get(txn.dbs.state, Array(key.utf8)).map { Array($0) }
        }
    }

    /// Every state entry whose key starts with `prefix`, in key order (byte-wise UTF-8).
    public func stateEntries(withPrefix prefix: String) throws -> [(key: String, value: [UInt8])] {
        try environment.read { txn in
            let cursor = try txn.cursor(txn.dbs.state)
            let prefixBytes = Array(prefix.utf8)
            var entries: [(key: String, value: [UInt8])] = []
            var entry =
                try prefixBytes.isEmpty
                ? cursor.get(MDB_FIRST) : prefixBytes.withUnsafeBytes { try cursor.get(MDB_SET_RANGE, key: $0) }
            while let current = entry, current.key.starts(with: prefixBytes) {
                entries.append((String(decoding: current.key, as: UTF8.self), Array(current.value)))
                entry = try cursor.get(MDB_NEXT)
            }
            return entries
        }
    }

    /// Every event after `after`, then each new one as it commits (also from a writer in
    /// another process); no busy loop. Ends when the consuming task is cancelled.
    ///
    /// Pull-driven: events are read only as fast as the consumer takes them. Wakes on commits
    /// of this process's writer at once; for other processes through inotify on the data file,
    /// with a one-second fallback poll.
    public func tail(after: LogPosition) -> AsyncThrowingStream<RecordedEvent, any Error> {
        let cursor = TailCursor(reader: self, after: after)
        environment.changes.startWatching(dataFile: environment.directory + "/" + LMDBEnvironment.dataFileName)
        return AsyncThrowingStream(unfolding: { try await cursor.next() })
    }
}

/// The state of one tail; used by one consumer at a time (`AsyncThrowingStream(unfolding:)`
/// calls its closure serially).
private final class TailCursor: @unchecked Sendable {
    // @unchecked Sendable: only the serial calls of the unfolding closure touch the fields.
    let reader: EventLogReader
    var last: LogPosition
    var buffered: [RecordedEvent] = []
    var index = 0

    init(reader: EventLogReader, after: LogPosition) {
        self.reader = reader
        self.last = after
    }

    func next() async throws -> RecordedEvent? {
        while !Task.isCancelled {
            if index < buffered.count {
                defer { index += 1 }
                return buffered[index]
            }
            let seen = reader.environment.changes.generation
            buffered = try reader.readAll(after: last, maxCount: 512)
            index = 0
            if let newest = buffered.last {
                last = newest.position
                continue
            }
            await reader.environment.changes.wait(beyond: seen)
        }
        return nil
    }
}
