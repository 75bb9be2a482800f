/// The place of an event in the whole log: gap-free, starting at 1, assigned at commit.
///
/// Stored big-endian as the key of the `events` database so that LMDB keeps events in
/// order and appends can use `MDB_APPEND`.
public struct LogPosition: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    /// The position before the first event: reading "from `.start`" reads the whole log.
    public static let start = LogPosition(0)

    public var next: LogPosition { LogPosition(rawValue + 1) }
    public var description: String { String(rawValue) }
    public static func < (lhs: LogPosition, rhs: LogPosition) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The place of an event within its stream: 0 for the first event, gap-free.
public struct StreamRevision: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    public var next: StreamRevision { StreamRevision(rawValue + 1) }
    public var description: String { String(rawValue) }
    public static func < (lhs: StreamRevision, rhs: StreamRevision) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The name of a stream, such as `workflow/upgrade/cluster-a` or `cluster/cluster-a`.
///
/// UTF-8, 1 to 255 bytes, no NUL. Streams are named by what they hold; the engine and the
/// domain choose the scheme.
public struct StreamID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public static let maxLengthBytes = 255
    public var description: String { rawValue }
    public static func < (lhs: StreamID, rhs: StreamID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A 128-bit identifier (an event id, a causation or correlation id), stored as 16 raw bytes.
public struct EventID: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }
    public static let zero = EventID(high: 0, low: 0)

    /// 32 lowercase hex digits, the way the CLI prints ids.
    public var description: String {
        let h = String(high, radix: 16)
        let l = String(low, radix: 16)
        return String(repeating: "0", count: 16 - h.count) + h + String(repeating: "0", count: 16 - l.count) + l
    }
}

/// What an append expects of its stream: optimistic concurrency.
public enum ExpectedRevision: Hashable, Sendable, CustomStringConvertible {
    /// Whether a stream holding `eventCount` events meets this expectation: the one rule
    /// that the log's writer and the engine's in-memory store both check.
    public func holds(eventCount count: UInt64) -> Bool {
        switch self {
        case .any: true
        case .noStream: count == 0
        case .streamExists: count > 0
        case .exact(let revision): count > 0 && count - 1 == revision.rawValue
        }
    }

    /// Append whatever the stream holds.
    case any
    /// The stream must not exist yet.
    case noStream
    /// The stream must exist (hold at least one event).
    case streamExists
    /// The stream's last event must have exactly this revision.
    case exact(StreamRevision)

    public var description: String {
        switch self {
        case .any: "any"
        case .noStream: "no stream"
        case .streamExists: "stream exists"
        case .exact(let revision): "revision \(revision)"
        }
    }
}
