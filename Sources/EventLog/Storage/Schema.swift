import CLMDB

/// What an interned number names. The kind byte prefixes keys in `names` and `numbers`.
enum NameKind: UInt8, CaseIterable, Sendable {
    case stream = 0x73  // "s"
    case eventType = 0x74  // "t"
    case actor = 0x61  // "a"

    var label: String {
        switch self {
        case .stream: "stream"
        case .eventType: "event type"
        case .actor: "actor"
        }
    }

    /// The `names` key: kind byte + FNV-1a 64 of the UTF-8 name, big-endian (9 bytes instead
    /// of the whole name: most of a stream's fixed cost when streams hold few events).
    func hashKey(_ name: String) -> [UInt8] {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        return [rawValue] + Keys.bigEndian(hash)
    }
}

/// Keys of the `meta` database.
enum MetaKey {
    /// UTF-8 "capstan-eventlog 2": what wrote this environment (written with the first
    /// `fold` record; logs of format 1 have none and are wholly folded).
    static let format: [UInt8] = Array("format".utf8)
    static let formatValue: [UInt8] = Array("capstan-eventlog 2".utf8)
    /// The fold record (`FoldState`): how much of the log the derived tables cover.
    static let fold: [UInt8] = Array("fold".utf8)
    /// "count.type" + type number (UInt32 BE) → events of that type (UInt64 LE).
    static let typeCountPrefix: [UInt8] = Array("count.type".utf8)

    static func typeCount(_ type: UInt32) -> [UInt8] { typeCountPrefix + Keys.bigEndian(type) }
}

/// A stored dictionary: `dictionaries` value = version byte, varint event type number (0:
/// shared), varint events of that type when trained, varint samples used, dictionary bytes;
/// version 2 (written since format 2) ends with a CRC-32C (UInt32 LE) over the id key
/// (UInt32 BE) and every byte before it. Version 1 records (no checksum) still read.
///
/// The checksum matters: zstd frames carry no checksum of their own (the envelope's covers
/// the compressed bytes), so a damaged dictionary would decompress every event that names it
/// into other bytes without any error.
struct DictionaryRecord: Sendable {
    var id: UInt32
    var typeNumber: UInt32
    var eventCountAtTraining: UInt64
    var sampleCount: UInt64
    var bytes: [UInt8]

    static let version: UInt8 = 2

    func encoded() -> [UInt8] {
        let size = 1 + 30 + bytes.count + 4
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            var writer = ByteWriter(UnsafeMutableRawBufferPointer(buffer))
            writer.byte(Self.version)
            writer.varint(UInt64(typeNumber))
            writer.varint(eventCountAtTraining)
            writer.varint(sampleCount)
            bytes.withUnsafeBytes { writer.bytes($0) }
            let body = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<writer.offset])
            writer.littleEndian(Self.checksum(id: id, body: body))
            count = writer.offset
        }
    }

    static func checksum(id: UInt32, body: UnsafeRawBufferPointer) -> UInt32 {
        let key = withUnsafeBytes(of: id.bigEndian) { CRC32C.checksum($0) }
        return CRC32C.checksum(body, crc: key)
    }

    static func decode(id: UInt32, _ raw: UnsafeRawBufferPointer) throws(EventLogError) -> DictionaryRecord {
        var end = raw.count
        if raw.first == 2 {
            guard raw.count >= 5 else {
                throw EventLogError(.corrupt, "dictionary \(id): its record of \(raw.count) bytes is too short")
            }
            end = raw.count - 4
            let stored = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: end, as: UInt32.self))
            let computed = checksum(id: id, body: UnsafeRawBufferPointer(rebasing: raw[0..<end]))
            guard stored == computed else {
                throw EventLogError(
                    .corrupt, "dictionary \(id): checksum mismatch (stored \(Envelope.hex(stored)), "
                        + "computed \(Envelope.hex(computed))): its record is damaged")
            }
        }
        let body = UnsafeRawBufferPointer(rebasing: raw[0..<end])
        var reader = ByteReader(body)
        do {
            let version = try reader.byte("version")
            guard version == 1 || version == 2 else {
                throw ByteReader.Failure.overlong(field: "version")
            }
            let type = try reader.varint("eventType")
            let count = try reader.varint("eventCount")
            let samples = try reader.varint("sampleCount")
            guard let type32 = UInt32(exactly: type) else { throw ByteReader.Failure.overlong(field: "eventType") }
            let bytes = Array(UnsafeRawBufferPointer(rebasing: body[reader.offset...]))
            return DictionaryRecord(
                id: id, typeNumber: type32, eventCountAtTraining: count, sampleCount: samples, bytes: bytes)
        } catch {
            throw EventLogError(.corrupt, "dictionary \(id): its record is damaged (\(error))")
        }
    }
}

/// How far the derived tables (stream index, `names` hash entries, per-type counters) cover
/// the log: every event at a position up to `position`, every name of each kind numbered up to
/// its `numbers` entry. What lies beyond (the unfolded tail) is derived from the events and
/// the number → name tables by whoever reads it; the writer folds it in when its inbox is
/// idle or the tail reaches `EventLogOptions.maxUnfoldedEvents`.
///
/// `meta["fold"]`: byte 1 (version), position UInt64 LE, then the folded numbers of streams,
/// event types and actors, UInt32 LE each (21 bytes). A log without the record (format 1)
/// has no tail: every commit wrote its derived entries.
struct FoldState: Equatable, Sendable {
    var position: UInt64
    var streams: UInt32
    var eventTypes: UInt32
    var actors: UInt32

    static let version: UInt8 = 1
    static let encodedSize = 21

    func numbers(_ kind: NameKind) -> UInt32 {
        switch kind {
        case .stream: streams
        case .eventType: eventTypes
        case .actor: actors
        }
    }

    init(position: UInt64, numbers: [NameKind: UInt32]) {
        self.position = position
        streams = numbers[.stream] ?? 0
        eventTypes = numbers[.eventType] ?? 0
        actors = numbers[.actor] ?? 0
    }

    func encoded() -> [UInt8] {
        var bytes: [UInt8] = [Self.version]
        withUnsafeBytes(of: position.littleEndian) { bytes += $0 }
        for number in [streams, eventTypes, actors] { withUnsafeBytes(of: number.littleEndian) { bytes += $0 } }
        return bytes
    }

    static func decode(_ raw: UnsafeRawBufferPointer) throws(EventLogError) -> FoldState {
        guard raw.count == encodedSize, raw[0] == version else {
            throw EventLogError(
                .corrupt, "meta fold: a record of \(raw.count) bytes, version \(raw.first ?? 0) "
                    + "(expected \(encodedSize) bytes, version \(version)): the log's fold record is damaged")
        }
        var state = FoldState(position: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 1, as: UInt64.self)),
                              numbers: [:])
        state.streams = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 9, as: UInt32.self))
        state.eventTypes = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 13, as: UInt32.self))
        state.actors = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 17, as: UInt32.self))
        return state
    }
}

extension ReadTransaction {
    /// The fold record of this snapshot; nil for a log of format 1 (wholly folded).
    func foldState() throws -> FoldState? {
        guard let raw = try get(dbs.meta, MetaKey.fold) else { return nil }
        return try FoldState.decode(raw)
    }

    /// The number interned for `name`, or nil: its hash entry in `names`, else (readers only,
    /// not the writer's own view) the names numbered since the last fold.
    func number(of name: String, kind: NameKind) throws -> UInt32? {
        if let number = try hashedNumber(of: name, kind: kind) { return number }
        return try tailNumber(of: name, kind: kind)
    }

    /// The number interned for `name` according to the `names` hash entries only.
    func hashedNumber(of name: String, kind: NameKind) throws(LMDBError) -> UInt32? {
        let cursor = try self.cursor(dbs.names)
        let key = kind.hashKey(name)
        var entry = try key.withUnsafeBytes { key in
            Result { () throws(LMDBError) in try cursor.get(MDB_SET_KEY, key: key) }
        }.get()
        while let current = entry {
            if let number = Keys.readBigEndian(current.value, UInt32.self),
                let stored = try get(dbs.numbers(kind), Keys.bigEndian(number)),
                stored.elementsEqual(name.utf8)
            {
                return number
            }
            entry = try cursor.get(MDB_NEXT_DUP)
        }
        return nil
    }

    /// The name interned as `number`, or nil.
    func name(of number: UInt32, kind: NameKind) throws(LMDBError) -> String? {
        guard let value = try get(dbs.numbers(kind), Keys.bigEndian(number)) else { return nil }
        return String(decoding: value, as: UTF8.self)
    }

    /// The highest number interned for `kind` (0 when none).
    func lastNumber(kind: NameKind) throws(LMDBError) -> UInt32 {
        let cursor = try self.cursor(dbs.numbers(kind))
        guard let entry = try cursor.get(MDB_LAST) else { return 0 }
        return Keys.readBigEndian(entry.key, UInt32.self) ?? 0
    }

    /// The last position in `events` (`.start` when empty).
    func lastPosition() throws(LMDBError) -> LogPosition {
        let cursor = try self.cursor(dbs.events)
        guard let entry = try cursor.get(MDB_LAST) else { return .start }
        return LogPosition(Keys.readBigEndian(entry.key, UInt64.self) ?? 0)
    }

    /// Every stored dictionary record.
    func dictionaryRecords() throws -> [DictionaryRecord] {
        let cursor = try self.cursor(dbs.dictionaries)
        var records: [DictionaryRecord] = []
        var entry = try cursor.get(MDB_FIRST)
        while let current = entry {
            guard let id = Keys.readBigEndian(current.key, UInt32.self) else {
                throw EventLogError(.corrupt, "dictionaries: a key of \(current.key.count) bytes is not an id")
            }
            records.append(try DictionaryRecord.decode(id: id, current.value))
            entry = try cursor.get(MDB_NEXT)
        }
        return records
    }
}
