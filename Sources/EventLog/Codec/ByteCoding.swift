/// Appends integers to a raw buffer: LEB128 varints and fixed-width little/big-endian.
struct ByteWriter {
    let buffer: UnsafeMutableRawBufferPointer
    private(set) var offset = 0

    init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    static func varintSize(_ value: UInt64) -> Int {
        // 7 bits per byte; at least one byte.
        max(1, (64 - value.leadingZeroBitCount + 6) / 7)
    }

    mutating func byte(_ value: UInt8) {
        precondition(offset < buffer.count, "envelope larger than its computed size")
        buffer[offset] = value
        offset += 1
    }

    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            byte(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        byte(UInt8(value))
    }

    mutating func littleEndian<T: FixedWidthInteger>(_ value: T) {
        precondition(offset + MemoryLayout<T>.size <= buffer.count, "envelope larger than its computed size")
        buffer.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
    }

    mutating func bigEndian<T: FixedWidthInteger>(_ value: T) {
        precondition(offset + MemoryLayout<T>.size <= buffer.count, "envelope larger than its computed size")
        buffer.storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
    }

    mutating func bytes(_ source: UnsafeRawBufferPointer) {
        precondition(offset + source.count <= buffer.count, "envelope larger than its computed size")
        if let base = source.baseAddress, source.count > 0 {
            (buffer.baseAddress! + offset).copyMemory(from: base, byteCount: source.count)
        }
        offset += source.count
    }
}

/// Reads integers from untrusted bytes; every read is bounds-checked and fails with a reason.
struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    var offset: Int
    /// Reads stop here (the checksum follows).
    let end: Int

    init(_ buffer: UnsafeRawBufferPointer, offset: Int = 0, end: Int? = nil) {
        self.buffer = buffer
        self.offset = offset
        self.end = end ?? buffer.count
    }

    enum Failure: Error {
        case truncated(field: StaticString)
        case overlong(field: StaticString)
    }

    @inline(__always)
    mutating func byte(_ field: StaticString) throws(Failure) -> UInt8 {
        guard offset < end else { throw .truncated(field: field) }
        let value = buffer[offset]
        offset += 1
        return value
    }

    @inline(__always)
    mutating func varint(_ field: StaticString) throws(Failure) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else { throw .truncated(field: field) }
            let b = buffer[offset]
            offset += 1
            if shift == 63 && b > 1 { throw .overlong(field: field) }
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
            if shift > 63 { throw .overlong(field: field) }
        }
    }

    @inline(__always)
    mutating func littleEndian<T: FixedWidthInteger>(_: T.Type, _ field: StaticString) throws(Failure) -> T {
        guard end - offset >= MemoryLayout<T>.size else { throw .truncated(field: field) }
        let value = T(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return value
    }

    @inline(__always)
    mutating func bigEndian<T: FixedWidthInteger>(_: T.Type, _ field: StaticString) throws(Failure) -> T {
        guard end - offset >= MemoryLayout<T>.size else { throw .truncated(field: field) }
        let value = T(bigEndian: buffer.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return value
    }
}

/// Big-endian key encodings.
enum Keys {
    static func position(_ position: UInt64) -> [UInt8] { bigEndian(position) }
    static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }
    static func readBigEndian<T: FixedWidthInteger>(_ bytes: UnsafeRawBufferPointer, _: T.Type) -> T? {
        guard bytes.count == MemoryLayout<T>.size else { return nil }
        return T(bigEndian: bytes.loadUnaligned(as: T.self))
    }
}
