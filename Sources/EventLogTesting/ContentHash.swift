public import EventLog

/// FNV-1a (64 bit) over an event's type and payload.
///
/// Generated events carry this hash in the low half of their id, so any reader (another
/// process, a crash test after SIGKILL) can check that an event came back whole without
/// asking the writer what it wrote.
public func contentHash(type: String, payload: [UInt8]) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in type.utf8 {
        hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
    }
    hash = (hash ^ 0xFF) &* 0x0000_0100_0000_01B3
    payload.withUnsafeBufferPointer { bytes in
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
    }
    return hash
}

extension RecordedEvent {
    /// Whether the event's id carries the content hash of its type and payload (see
    /// `contentHash(type:payload:)`): true for every event `LifecycleEventGenerator` made.
    public var isWhole: Bool { id.low == contentHash(type: type, payload: payload) }
}
