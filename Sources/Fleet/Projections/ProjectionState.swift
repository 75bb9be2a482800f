public import EventLog

/// Where the projections are read from: the log's `state` database as of its last commit
/// (``init(reader:)``), or a set of entries rebuilt from a prefix of the log
/// (``init(entries:)``), so every query answers the same way for "now" and for `--at`.
public struct ProjectionState: Sendable {
    /// The value of a key; nil when absent.
    public let value: @Sendable (String) throws -> [UInt8]?
    /// Every entry whose key starts with a prefix, in key order (byte-wise UTF-8).
    public let entries: @Sendable (String) throws -> [(key: String, value: [UInt8])]

    public init(
        value: @escaping @Sendable (String) throws -> [UInt8]?,
        entries: @escaping @Sendable (String) throws -> [(key: String, value: [UInt8])]
    ) {
        self.value = value
        self.entries = entries
    }

    /// The log's stored projections (each call is its own read transaction).
    public init(reader: EventLogReader) {
        self.init(value: { try reader.state(forKey: $0) }, entries: { try reader.stateEntries(withPrefix: $0) })
    }

    /// Entries held in memory, such as ``FleetProjection/rebuild(_:through:)`` returns.
    public init(entries: [String: [UInt8]]) {
        // Byte-wise key order, as LMDB keeps the state database.
        let sorted = entries.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
        self.init(
            value: { entries[$0] },
            entries: { prefix in sorted.filter { $0.key.hasPrefix(prefix) }.map { (key: $0.key, value: $0.value) } })
    }
}
