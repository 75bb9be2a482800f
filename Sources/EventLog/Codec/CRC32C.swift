import CCRC32C

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the SSE4.2 CRC32 instruction when
/// the CPU has it (the `CCRC32C` shim), else table-driven, slicing by 16.
///
/// The checksum of every envelope (docs/log-format.md), so it runs over every byte a replay
/// reads. Slicing by 16 folds sixteen bytes per step with sixteen independent table loads:
/// the dependency chain per byte is half that of slicing by 8 (the tables, 16 KiB, stay in
/// L1).
enum CRC32C {
    /// 16 tables of 256 entries, `tables[k * 256 + b]`: table k advances a byte's CRC past k
    /// further zero bytes. A raw pointer (allocated once, never written after) so the hot loop
    /// pays neither the array's lazy-global check nor retain/release per call.
    nonisolated(unsafe) private static let tables: UnsafePointer<UInt32> = {
        let tables = UnsafeMutablePointer<UInt32>.allocate(capacity: 16 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
            }
            tables[byte] = crc
        }
        for byte in 0..<256 {
            var crc = tables[byte]
            for slice in 1..<16 {
                crc = tables[Int(crc & 0xFF)] ^ (crc >> 8)
                tables[slice * 256 + byte] = crc
            }
        }
        return UnsafePointer(tables)
    }()

    /// Whether the CRC32 instruction is used (checked once).
    static let isHardware: Bool = capstan_crc32c_hardware() == 1

    /// Continues a CRC over `bytes` (start with `crc: 0`).
    @inline(__always)
    static func checksum(_ bytes: UnsafeRawBufferPointer, crc: UInt32 = 0) -> UInt32 {
        if isHardware {
            guard let base = bytes.baseAddress else { return crc }
            return ~capstan_crc32c_update(~crc, base, bytes.count)
        }
        return softwareChecksum(bytes, crc: crc)
    }

    /// The table-driven CRC, for CPUs without the instruction (and to check it against).
    static func softwareChecksum(_ bytes: UnsafeRawBufferPointer, crc: UInt32 = 0) -> UInt32 {
        let t = tables
        var crc = ~crc
        guard let base = bytes.baseAddress else { return ~crc }
        var index = 0
        let count = bytes.count
        // Byte i of a 16-byte block goes through table 15 - i.
        @inline(__always) func fold(_ word: UInt64, _ first: Int) -> UInt32 {
            let low = UInt32(truncatingIfNeeded: word)
            let high = UInt32(truncatingIfNeeded: word >> 32)
            return t[(first - 0) * 256 + Int(low & 0xFF)] ^ t[(first - 1) * 256 + Int((low >> 8) & 0xFF)]
                ^ t[(first - 2) * 256 + Int((low >> 16) & 0xFF)] ^ t[(first - 3) * 256 + Int(low >> 24)]
                ^ t[(first - 4) * 256 + Int(high & 0xFF)] ^ t[(first - 5) * 256 + Int((high >> 8) & 0xFF)]
                ^ t[(first - 6) * 256 + Int((high >> 16) & 0xFF)] ^ t[(first - 7) * 256 + Int(high >> 24)]
        }
        while count - index >= 16 {
            let first = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            let second = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self))
            crc = fold(first ^ UInt64(crc), 15) ^ fold(second, 7)
            index += 16
        }
        if count - index >= 8 {
            let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            crc = fold(word ^ UInt64(crc), 7)
            index += 8
        }
        while index < count {
            crc = t[Int((crc ^ UInt32(base.load(fromByteOffset: index, as: UInt8.self))) & 0xFF)] ^ (crc >> 8)
            index += 1
        }
        return ~crc
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}
