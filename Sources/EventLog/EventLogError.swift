/// An error from the event log: what went wrong, for which stream, position or file.
public struct EventLogError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure; callers switch on it (new codes may be added).
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// An append's expected revision did not hold; `stream`, `expected`, `actual` say how.
        public static let wrongExpectedRevision = Code(rawValue: "wrongExpectedRevision")
        /// Another writer (`holderPID`) holds the data directory.
        public static let writerLocked = Code(rawValue: "writerLocked")
        /// The disk is full (or failed) while committing; nothing of the batch was committed.
        public static let diskFull = Code(rawValue: "diskFull")
        /// Stored bytes are damaged (checksum, length, or structure); `position` names the event.
        public static let corrupt = Code(rawValue: "corrupt")
        /// The request itself is wrong (empty stream name, oversize key...); nothing was written.
        public static let invalidInput = Code(rawValue: "invalidInput")
        /// The log was closed before the request was taken.
        public static let closed = Code(rawValue: "closed")
        /// No event log in the directory.
        public static let notFound = Code(rawValue: "notFound")
        /// liblmdb failed; `lmdb` holds its code and call.
        public static let lmdb = Code(rawValue: "lmdb")
        /// zstd failed; the message holds `ZSTD_getErrorName`.
        public static let zstd = Code(rawValue: "zstd")
        /// A system call failed (open, flock, inotify...); the message names it and `errno`.
        public static let system = Code(rawValue: "system")

        public var description: String { rawValue }
    }

    public var code: Code
    /// Names the stream / position / file and the reason.
    public var message: String
    /// The stream concerned, when there is one.
    public var stream: StreamID?
    /// The position concerned (the damaged event for `.corrupt`), when there is one.
    public var position: LogPosition?
    /// For `.wrongExpectedRevision`: what the append expected.
    public var expected: ExpectedRevision?
    /// For `.wrongExpectedRevision`: the stream's revision when checked (nil: no stream).
    public var actual: StreamRevision?
    /// For `.writerLocked`: the process id written by the holder of the lock (nil if unreadable).
    public var holderPID: Int32?
    /// For `.lmdb` (and `.diskFull`): the underlying liblmdb error.
    public var lmdb: LMDBError?
    /// For `.corrupt`: the kind of damage, so `verify` classifies it without reading the message.
    var damage: Damage?
    /// For `.corrupt` with damage `.damagedPage`: the damaged page of the data file.
    var page: UInt64?

    /// What a `.corrupt` error found.
    enum Damage: Sendable, Hashable {
        /// An envelope's stored checksum does not match its bytes.
        case checksumMismatch
        /// An envelope's checksum holds but its fields do not decode.
        case malformedEnvelope
        /// An envelope names an interned stream, event type or actor that does not exist.
        case missingName
        /// The data file is shorter than its meta page says.
        case truncatedFile
        /// Neither meta page of the data file is valid.
        case noValidMetaPage
        /// A B-tree page of the data file is damaged (`page` names it): LMDB must not read it.
        case damagedPage
    }

    public init(
        _ code: Code, _ message: String, stream: StreamID? = nil, position: LogPosition? = nil,
        expected: ExpectedRevision? = nil, actual: StreamRevision? = nil, holderPID: Int32? = nil,
        lmdb: LMDBError? = nil
    ) {
        self.code = code
        self.message = message
        self.stream = stream
        self.position = position
        self.expected = expected
        self.actual = actual
        self.holderPID = holderPID
        self.lmdb = lmdb
    }

    public var description: String { "\(code): \(message)" }

    static func wrap(_ error: LMDBError, _ context: String) -> EventLogError {
        switch error.code {
        case .noSpace, .ioError:
            EventLogError(.diskFull, "\(context): disk full or failing (\(error))", lmdb: error)
        default:
            EventLogError(.lmdb, "\(context): \(error)", lmdb: error)
        }
    }

    static func corrupt(_ position: LogPosition, _ reason: String, damage: Damage = .malformedEnvelope)
        -> EventLogError
    {
        var error = EventLogError(.corrupt, "event at position \(position): \(reason)", position: position)
        error.damage = damage
        return error
    }

    static func corrupt(_ message: String, damage: Damage) -> EventLogError {
        var error = EventLogError(.corrupt, message)
        error.damage = damage
        return error
    }
}
