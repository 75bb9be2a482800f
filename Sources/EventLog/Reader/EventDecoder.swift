import CLMDB
import Synchronization

/// Decoding caches shared by every reader of one environment in this process: interned names
/// (they never change once written) and loaded dictionaries (kept forever).
final class ReaderCaches: Sendable {
    struct Tables: Sendable {
        var streams = PagedTable<StreamID>()
        var eventTypes: [String?] = []
        var actors: [String?] = []
        var dictionaries: [UInt32: CompressionDictionary] = [:]
    }

    let tables = Mutex(Tables())
    let decompressors = ContextPool<ZstdDecompressor> { ZstdDecompressor() }

    func add(_ dictionary: CompressionDictionary) {
        tables.withLock { $0.dictionaries[dictionary.id] = dictionary }
    }
}

/// Turns stored envelopes into `RecordedEvent`s within one read transaction.
///
/// Works on a private copy of the shared caches so the scan path takes no lock per event;
/// names and dictionaries it had to look up are merged back by `finish()`.
final class EventDecoder {
    // The decoder is used by one thread inside one read transaction and never re-entered, so
    // dynamic exclusivity checks on these hot fields only cost time.
    @exclusivity(unchecked) private var tables: ReaderCaches.Tables
    /// Dictionaries by id (ids are dense from 1): an array index per event, not a hash.
    @exclusivity(unchecked) private var dictionaryByID: [CompressionDictionary?] = []
    private var learned = false
    private let caches: ReaderCaches
    private let decompressor: ZstdDecompressor
    /// Decompressed payload bytes and stored payload bytes, for stats.
    private(set) var lastStoredPayloadCount = 0

    init(caches: ReaderCaches, decompressor: ZstdDecompressor, lenderCount: Int = EventDecoder.scanLenderCount) {
        precondition(lenderCount > 0 && lenderCount & (lenderCount - 1) == 0, "lenderCount must be a power of two")
        self.lenderCount = lenderCount
        lenderMask = UInt64(lenderCount - 1)
        self.caches = caches
        self.decompressor = decompressor
        self.tables = caches.tables.withLock { $0 }
        for (id, dictionary) in tables.dictionaries { remember(dictionary, id: id) }
    }

    private func remember(_ dictionary: CompressionDictionary, id: UInt32) {
        let index = Int(id)
        if dictionaryByID.count <= index {
            dictionaryByID += Array(repeating: nil, count: index + 1 - dictionaryByID.count)
        }
        dictionaryByID[index] = dictionary
    }

    /// Runs `body` with a decoder and a pooled decompression context.
    static func with<R>(
        _ caches: ReaderCaches, lenderCount: Int = EventDecoder.scanLenderCount, _ body: (EventDecoder) throws -> R
    ) throws -> R {
        try caches.decompressors.with { (decompressor: ZstdDecompressor) throws -> R in
            let decoder = EventDecoder(caches: caches, decompressor: decompressor, lenderCount: lenderCount)
            defer { decoder.finish() }
            return try body(decoder)
        }
    }

    func finish() {
        guard learned else { return }
        let tables = self.tables
        caches.tables.withLock { shared in
            if tables.streams.capacity > shared.streams.capacity { shared.streams = tables.streams }
            if tables.eventTypes.count > shared.eventTypes.count { shared.eventTypes = tables.eventTypes }
            if tables.actors.count > shared.actors.count { shared.actors = tables.actors }
            shared.dictionaries.merge(tables.dictionaries) { current, _ in current }
        }
        learned = false
    }

    /// Decodes the event stored under `position`, checking its checksum and structure.
    /// - Throws: `.corrupt` naming the position and the damage.
    func decode(position: LogPosition, _ bytes: UnsafeRawBufferPointer, in txn: ReadTransaction) throws
        -> RecordedEvent
    {
        let (envelope, stored) = try Envelope.decode(position: position, bytes)
        let causation = try resolve(envelope.causation, correlation: false, position, txn)
        let correlation = try resolve(envelope.correlation, correlation: true, position, txn)
        remember(position.rawValue, envelope)
        let payload: [UInt8]
        if envelope.compressed {
            let dictionary = envelope.dictionaryID == 0 ? nil : try dictionary(envelope.dictionaryID, position, txn)
            do {
                payload = try decompressor.decompress(
                    stored, rawLength: envelope.rawPayloadLength, dictionary: dictionary)
            } catch {
                throw EventLogError.corrupt(position, error.message)
            }
        } else {
            payload = Array(stored)
        }
        return RecordedEvent(
            position: position,
            streamID: try stream(envelope.streamNumber, position, txn),
            revision: StreamRevision(envelope.revision),
            id: envelope.id,
            type: try name(envelope.typeNumber, .eventType, position, txn),
            schemaVersion: envelope.schemaVersion,
            recordedAtNanoseconds: envelope.recordedAtNanoseconds,
            metadata: EventMetadata(
                actor: try name(envelope.actorNumber, .actor, position, txn),
                causationID: causation, correlationID: correlation),
            payload: payload)
    }

    /// What an earlier event lends to the ones referring to it.
    private struct Lender {
        var position: UInt64 = 0
        var id = EventID.zero
        /// Its correlation id when stored inline (only those may be referred to).
        var correlation: EventID?
    }

    /// Recently decoded events by position modulo the size: a scan finds referenced ids here.
    /// Allocated on first use, so a read of a few events does not pay for the whole ring.
    @exclusivity(unchecked) private var lenders: [Lender] = []
    /// A power of two: the slot is the position's low bits (a mask, not a 64-bit division, twice
    /// per event). A scan's references reach back through recent positions; a point read of
    /// one stream meets few, and a ring of 8,192 (320 KiB, zeroed) per read cost more than the
    /// read itself (100,000 stream reads at recovery zeroed 32 GB). A miss reads the event.
    static let scanLenderCount = 8192
    static let pointReadLenderCount = 16
    private let lenderCount: Int
    private let lenderMask: UInt64

    private func remember(_ position: UInt64, _ envelope: Envelope) {
        var correlation: EventID?
        if case .inline(let id) = envelope.correlation { correlation = id }
        if lenders.isEmpty { lenders = Array(repeating: Lender(), count: lenderCount) }
        lenders[Int(position & lenderMask)] = Lender(position: position, id: envelope.id, correlation: correlation)
    }

    private func lender(_ position: UInt64, for referrer: LogPosition, _ txn: ReadTransaction) throws -> Lender {
        if lenders.isEmpty { lenders = Array(repeating: Lender(), count: lenderCount) }
        let slot = Int(position & lenderMask)
        if lenders[slot].position == position { return lenders[slot] }
        guard let bytes = try txn.get(txn.dbs.events, Keys.position(position)) else {
            throw EventLogError.corrupt(referrer, "refers to position \(position), which holds no event")
        }
        do {
            let (envelope, _) = try Envelope.decode(position: LogPosition(position), bytes)
            remember(position, envelope)
            return lenders[slot]
        } catch {
            throw EventLogError.corrupt(
                referrer, "refers to position \(position), which cannot be read (\(error.message))")
        }
    }

    private func resolve(_ field: Envelope.IDField, correlation: Bool, _ position: LogPosition, _ txn: ReadTransaction)
        throws -> EventID?
    {
        switch field {
        case .none: return nil
        case .inline(let id): return id
        case .reference(let distance):
            let lender = try lender(position.rawValue - distance, for: position, txn)
            guard correlation else { return lender.id }
            guard let id = lender.correlation else {
                throw EventLogError.corrupt(
                    position, "its correlation refers to position \(lender.position), which holds none inline")
            }
            return id
        }
    }

    /// Stream names read ahead per miss: streams are numbered in order of their first event, so
    /// a replay meets new ones in increasing order; one cursor run replaces an `mdb_get` per
    /// new stream (about a third of the events of a lifecycle log).
    static let streamReadAhead = 512

    func stream(_ number: UInt32, _ position: LogPosition, _ txn: ReadTransaction) throws -> StreamID {
        let index = Int(number)
        if let cached = tables.streams[index] { return cached }
        try readStreams(from: number, txn)
        if let cached = tables.streams[index] { return cached }
        throw EventLogError.corrupt(
            position, "\(NameKind.stream.label) number \(number) is not in the names table", damage: .missingName)
    }

    /// Caches the names of up to `streamReadAhead` streams from `first` on, in one cursor run.
    private func readStreams(from first: UInt32, _ txn: ReadTransaction) throws {
        let cursor = try txn.cursor(txn.dbs.streamNames)
        var entry = try Keys.bigEndian(first).withUnsafeBytes { try cursor.get(MDB_SET_RANGE, key: $0) }
        var read = 0
        while let current = entry, read < Self.streamReadAhead {
            // A damaged key (names carry no checksum) must not size the table.
            guard let number = Keys.readBigEndian(current.key, UInt32.self), number >= first,
                number - first < 1 << 20
            else { break }
            let index = Int(number)
            if tables.streams[index] == nil {
                tables.streams[index] = StreamID(String(decoding: current.value, as: UTF8.self))
            }
            read += 1
            entry = try cursor.get(MDB_NEXT)
        }
        if read > 0 { learned = true }
    }

    func name(_ number: UInt32, _ kind: NameKind, _ position: LogPosition, _ txn: ReadTransaction) throws -> String {
        let index = Int(number)
        switch kind {
        case .eventType:
            if index < tables.eventTypes.count, let cached = tables.eventTypes[index] { return cached }
        case .actor:
            if index < tables.actors.count, let cached = tables.actors[index] { return cached }
        case .stream:
            return try stream(number, position, txn).rawValue
        }
        let name = try lookUp(number, kind, position, txn)
        func store(_ table: inout [String?]) {
            if table.count <= index { table += Array(repeating: nil, count: index + 1 - table.count) }
            table[index] = name
        }
        if kind == .eventType { store(&tables.eventTypes) } else { store(&tables.actors) }
        learned = true
        return name
    }

    private func lookUp(_ number: UInt32, _ kind: NameKind, _ position: LogPosition, _ txn: ReadTransaction) throws
        -> String
    {
        guard let name = try txn.name(of: number, kind: kind) else {
            throw EventLogError.corrupt(
                position, "\(kind.label) number \(number) is not in the names table", damage: .missingName)
        }
        return name
    }

    func dictionary(_ id: UInt32, _ position: LogPosition, _ txn: ReadTransaction) throws -> CompressionDictionary {
        if Int(id) < dictionaryByID.count, let cached = dictionaryByID[Int(id)] { return cached }
        guard let raw = try txn.get(txn.dbs.dictionaries, Keys.bigEndian(id)) else {
            throw EventLogError.corrupt(position, "dictionary \(id) named by the envelope does not exist")
        }
        let record = try DictionaryRecord.decode(id: id, raw)
        let dictionary = try CompressionDictionary(id: id, bytes: record.bytes, level: 3)
        tables.dictionaries[id] = dictionary
        remember(dictionary, id: id)
        learned = true
        return dictionary
    }
}

@available(*, unavailable)
extension EventDecoder: Sendable {}

/// A table of names by dense number, in pages of ``pageSize``: a decoder works on its own copy
/// of the shared table, so learning one name copies one page and the page list, never the
/// whole table. (With one flat array, each point read that met an unknown stream copied and
/// later freed every cached name: recovery of 100,000 workflows, which reads their streams in
/// key order, spent 37 s doing that.)
struct PagedTable<Element: Sendable>: Sendable {
    static var pageSize: Int { 1024 }
    private var pages: [[Element?]] = []

    /// Numbers below this have a slot (filled or not).
    var capacity: Int { pages.count * Self.pageSize }

    subscript(index: Int) -> Element? {
        get {
            let page = index / Self.pageSize
            guard index >= 0, page < pages.count else { return nil }
            return pages[page][index % Self.pageSize]
        }
        set {
            precondition(index >= 0, "negative name number \(index)")
            let page = index / Self.pageSize
            while pages.count <= page { pages.append(Array(repeating: nil, count: Self.pageSize)) }
            pages[page][index % Self.pageSize] = newValue
        }
    }
}
