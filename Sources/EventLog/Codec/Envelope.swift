/// The stored form of one event: the value under its position in the `events` database.
///
/// Byte by byte in docs/log-format.md. In short: a version/flags byte, the recorded time at a
/// fixed offset (so a time cut can binary-search positions reading 8 bytes), varints for the
/// interned stream, revision, event type, schema version and actor, the raw 16-byte event id
/// (causation/correlation ids inline or as a distance back to an envelope holding them), the
/// dictionary id when one was used, the raw payload length, the payload (zstd or raw), and a
/// CRC-32C over the position key and every byte before the checksum.
struct Envelope {
    /// How a causation or correlation id is stored: not at all, as 16 bytes, or as the
    /// distance back to an earlier position whose envelope holds it inline (its event id for a
    /// causation, its inline correlation id for a correlation): ids are random and do not
    /// compress, and they repeat (a causation is usually a recent event, a correlation is
    /// shared by a whole run).
    enum IDField: Equatable {
        case none
        case inline(EventID)
        case reference(distance: UInt64)

        var mode: UInt8 {
            switch self {
            case .none: 0
            case .inline: 1
            case .reference: 2
            }
        }

        var size: Int {
            switch self {
            case .none: 0
            case .inline: 16
            case .reference(let distance): ByteWriter.varintSize(distance)
            }
        }
    }

    /// Bits 6-7 of the first byte.
    static let formatVersion: UInt8 = 1
    /// Bits 0-1: causation mode; bits 2-3: correlation mode (0 none, 1 inline, 2 reference).
    static let flagCompressed: UInt8 = 0x10
    static let flagDictionary: UInt8 = 0x20
    static let timeOffset = 1
    /// The smallest possible envelope: flags, time, 5 one-byte varints, id, length, checksum.
    static let minimumSize = 1 + 8 + 5 + 16 + 1 + 4
    /// An upper bound on one envelope's size (payload included), so a corrupt length is caught.
    static let maximumPayloadBytes = 64 << 20

    var recordedAtNanoseconds: Int64
    var streamNumber: UInt32
    var revision: UInt64
    var typeNumber: UInt32
    var schemaVersion: UInt16
    var actorNumber: UInt32
    var id: EventID
    var causation: IDField
    var correlation: IDField
    /// 0: no dictionary.
    var dictionaryID: UInt32
    var compressed: Bool
    var rawPayloadLength: Int

    var flags: UInt8 {
        var flags = Envelope.formatVersion << 6 | causation.mode | correlation.mode << 2
        if compressed { flags |= Envelope.flagCompressed }
        if dictionaryID != 0 { flags |= Envelope.flagDictionary }
        return flags
    }

    /// The stored size for a payload of `storedPayloadCount` bytes.
    func encodedSize(storedPayloadCount: Int) -> Int {
        var size = 1 + 8
        size += ByteWriter.varintSize(UInt64(streamNumber))
        size += ByteWriter.varintSize(revision)
        size += ByteWriter.varintSize(UInt64(typeNumber))
        size += ByteWriter.varintSize(UInt64(schemaVersion))
        size += ByteWriter.varintSize(UInt64(actorNumber))
        size += 16
        size += causation.size + correlation.size
        if dictionaryID != 0 { size += ByteWriter.varintSize(UInt64(dictionaryID)) }
        size += ByteWriter.varintSize(UInt64(rawPayloadLength))
        return size + storedPayloadCount + 4
    }

    /// Writes the envelope into `target` (exactly `encodedSize` bytes) and its checksum.
    ///
    /// Not decoded again: that cost a second CRC and a parse per event on the writer thread,
    /// and checked only this function against `decode`, which the tests do (round trips of
    /// every field and mode).
    func write(position: LogPosition, payload: UnsafeRawBufferPointer, into target: UnsafeMutableRawBufferPointer) {
        precondition(target.count == encodedSize(storedPayloadCount: payload.count), "reserved size mismatch")
        var writer = ByteWriter(target)
        writer.byte(flags)
        writer.littleEndian(recordedAtNanoseconds)
        writer.varint(UInt64(streamNumber))
        writer.varint(revision)
        writer.varint(UInt64(typeNumber))
        writer.varint(UInt64(schemaVersion))
        writer.varint(UInt64(actorNumber))
        Envelope.write(id, &writer)
        Envelope.write(causation, &writer)
        Envelope.write(correlation, &writer)
        if dictionaryID != 0 { writer.varint(UInt64(dictionaryID)) }
        writer.varint(UInt64(rawPayloadLength))
        writer.bytes(payload)
        let body = UnsafeRawBufferPointer(rebasing: target[0..<writer.offset])
        writer.littleEndian(Envelope.checksum(position: position, body: body))
        precondition(writer.offset == target.count, "envelope size differs from its computed size")
    }

    private static func write(_ field: IDField, _ writer: inout ByteWriter) {
        switch field {
        case .none: break
        case .inline(let id): write(id, &writer)
        case .reference(let distance): writer.varint(distance)
        }
    }

    private static func write(_ id: EventID, _ writer: inout ByteWriter) {
        writer.bigEndian(id.high)
        writer.bigEndian(id.low)
    }

    static func checksum(position: LogPosition, body: UnsafeRawBufferPointer) -> UInt32 {
        let key = withUnsafeBytes(of: position.rawValue.bigEndian) { CRC32C.checksum($0) }
        return CRC32C.checksum(body, crc: key)
    }

    /// Checks length, checksum and structure of stored bytes and returns the fields, with
    /// `payload` pointing into `bytes`.
    ///
    /// - Throws: `EventLogError` `.corrupt` naming the position and the kind of damage.
    static func decode(position: LogPosition, _ bytes: UnsafeRawBufferPointer) throws(EventLogError)
        -> (envelope: Envelope, payload: UnsafeRawBufferPointer)
    {
        guard bytes.count >= minimumSize else {
            throw .corrupt(position, "envelope of \(bytes.count) bytes is shorter than the minimum \(minimumSize)")
        }
        let bodyEnd = bytes.count - 4
        let stored = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: bodyEnd, as: UInt32.self))
        let computed = checksum(position: position, body: UnsafeRawBufferPointer(rebasing: bytes[0..<bodyEnd]))
        guard stored == computed else {
            throw .corrupt(
                position,
                "checksum mismatch (stored \(hex(stored)), computed \(hex(computed))) over \(bytes.count) bytes",
                damage: .checksumMismatch)
        }
        do {
            return try decodeFields(position: position, bytes, bodyEnd: bodyEnd)
        } catch let failure as ByteReader.Failure {
            switch failure {
            case .truncated(let field): throw .corrupt(position, "field \(field) runs past the envelope end")
            case .overlong(let field): throw .corrupt(position, "field \(field) is an overlong varint")
            }
        } catch let error as EventLogError {
            throw error
        } catch {
            throw .corrupt(position, "\(error)")
        }
    }

    private static func decodeFields(position: LogPosition, _ bytes: UnsafeRawBufferPointer, bodyEnd: Int) throws
        -> (envelope: Envelope, payload: UnsafeRawBufferPointer)
    {
        var reader = ByteReader(bytes, end: bodyEnd)
        let flags = try reader.byte("flags")
        guard flags >> 6 == formatVersion else {
            throw EventLogError.corrupt(position, "unknown envelope format version \(flags >> 6)")
        }
        let recordedAt = try reader.littleEndian(Int64.self, "recordedAt")
        let stream = try narrow(reader.varint("stream"), UInt32.self, "stream", position)
        let revision = try reader.varint("revision")
        let type = try narrow(reader.varint("eventType"), UInt32.self, "eventType", position)
        let schema = try narrow(reader.varint("schemaVersion"), UInt16.self, "schemaVersion", position)
        let actor = try narrow(reader.varint("actor"), UInt32.self, "actor", position)
        let id = try readID(&reader, "eventID")
        let causation = try readField(&reader, mode: flags & 0x3, "causationID", position)
        let correlation = try readField(&reader, mode: (flags >> 2) & 0x3, "correlationID", position)
        var dictionary: UInt32 = 0
        if flags & flagDictionary != 0 {
            dictionary = try narrow(reader.varint("dictionaryID"), UInt32.self, "dictionaryID", position)
            guard dictionary != 0 else { throw EventLogError.corrupt(position, "dictionary flag set with id 0") }
        }
        let rawLength = try reader.varint("payloadLength")
        guard rawLength <= UInt64(maximumPayloadBytes) else {
            throw EventLogError.corrupt(position, "payload length \(rawLength) exceeds \(maximumPayloadBytes)")
        }
        let compressed = flags & flagCompressed != 0
        let payload = UnsafeRawBufferPointer(rebasing: bytes[reader.offset..<bodyEnd])
        if !compressed && payload.count != Int(rawLength) {
            throw EventLogError.corrupt(
                position, "raw payload holds \(payload.count) bytes but its length field says \(rawLength)")
        }
        let envelope = Envelope(
            recordedAtNanoseconds: recordedAt, streamNumber: stream, revision: revision, typeNumber: type,
            schemaVersion: schema, actorNumber: actor, id: id, causation: causation, correlation: correlation,
            dictionaryID: dictionary, compressed: compressed, rawPayloadLength: Int(rawLength))
        return (envelope, payload)
    }

    /// The recorded time only (fixed offset), for binary searches over positions.
    static func recordedAt(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        guard bytes.count >= minimumSize else { return nil }
        return Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: timeOffset, as: Int64.self))
    }

    private static func readField(
        _ reader: inout ByteReader, mode: UInt8, _ field: StaticString, _ position: LogPosition
    ) throws -> IDField {
        switch mode {
        case 0: return .none
        case 1: return .inline(try readID(&reader, field))
        case 2:
            let distance = try reader.varint(field)
            guard distance > 0, distance < position.rawValue else {
                throw EventLogError.corrupt(position, "field \(field) refers \(distance) positions back, out of the log")
            }
            return .reference(distance: distance)
        default: throw EventLogError.corrupt(position, "field \(field) has unknown mode \(mode)")
        }
    }

    @inline(__always)
    private static func readID(_ reader: inout ByteReader, _ field: StaticString) throws(ByteReader.Failure) -> EventID {
        let high = try reader.bigEndian(UInt64.self, field)
        let low = try reader.bigEndian(UInt64.self, field)
        return EventID(high: high, low: low)
    }

    @inline(__always)
    private static func narrow<T: FixedWidthInteger>(
        _ value: UInt64, _: T.Type, _ field: StaticString, _ position: LogPosition
    ) throws(EventLogError) -> T {
        guard let narrowed = T(exactly: value) else {
            throw .corrupt(position, "field \(field) value \(value) is out of range")
        }
        return narrowed
    }

    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}
