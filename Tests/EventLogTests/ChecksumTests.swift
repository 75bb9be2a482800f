import Testing

@testable import EventLog

@Suite("EventLog: CRC-32C")
struct ChecksumTests {
    /// Bit by bit, straight from the polynomial: the reference the sliced tables must match.
    static func reference(_ bytes: [UInt8], crc: UInt32 = 0) -> UInt32 {
        var crc = ~crc
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    @Test("EventLog: CRC-32C: the standard check value of \"123456789\"")
    func checkValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
    }

    @Test("EventLog: CRC-32C: every length 0-100 and chained calls match the bitwise reference")
    func matchesReference() {
        var generator = SystemRandomNumberGenerator()
        for length in 0...100 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(CRC32C.checksum(bytes) == Self.reference(bytes), "length \(length)")
            // Continuing from a split point gives the CRC of the whole (how envelopes chain the key).
            let split = length / 3
            let head = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<split])) }
            let whole = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[split...]), crc: head) }
            #expect(whole == Self.reference(bytes), "length \(length) split at \(split)")
            // Both implementations, whichever `checksum` uses on this CPU.
            #expect(bytes.withUnsafeBytes { CRC32C.softwareChecksum($0) } == Self.reference(bytes), "length \(length)")
        }
    }

    // Breaking it on purpose: feed capstan_crc32c_update the non-inverted state and every
    // value differs from the reference.
    @Test("EventLog: CRC-32C: the hardware instruction is used on x86-64 and agrees at every length and alignment")
    func hardware() {
        #if arch(x86_64)
        #expect(CRC32C.isHardware, "this x86-64 CPU has SSE4.2; the shim did not detect it")
        #endif
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for start in 0..<9 {
            for length in [0, 1, 7, 8, 9, 15, 16, 17, 63, 100, 255, 1000, 4000] {
                let slice = Array(bytes[start..<(start + length)])
                #expect(CRC32C.checksum(slice) == Self.reference(slice), "start \(start) length \(length)")
            }
        }
    }
}
