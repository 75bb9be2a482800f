/// Who caused an event and why: kept with every event for audit.
public struct EventMetadata: Hashable, Sendable {
    /// Who asked: `cli:alice`, `engine`, `controller:remediation`.
    public var actor: String
    /// The event (or request) that caused this one.
    public var causationID: EventID?
    /// The request or workflow run this event belongs to.
    public var correlationID: EventID?

    public init(actor: String, causationID: EventID? = nil, correlationID: EventID? = nil) {
        self.actor = actor
        self.causationID = causationID
        self.correlationID = correlationID
    }
}

/// An event to be appended: the log assigns its position, revision and recorded time.
public struct ProposedEvent: Hashable, Sendable {
    /// Unique id of this event (the caller chooses it, so a retried append can be recognised).
    public var id: EventID
    /// Past tense, namespaced: `ActivityCompleted`, `fleet.MachineProvisioned`.
    public var type: String
    /// The version of the payload's schema; readers upcast old versions.
    public var schemaVersion: UInt16
    public var metadata: EventMetadata
    /// The payload, usually JSON; the log compresses it.
    public var payload: [UInt8]

    public init(id: EventID, type: String, schemaVersion: UInt16 = 1, metadata: EventMetadata, payload: [UInt8]) {
        self.id = id
        self.type = type
        self.schemaVersion = schemaVersion
        self.metadata = metadata
        self.payload = payload
    }
}

/// An event as the log holds it.
public struct RecordedEvent: Hashable, Sendable {
    public var position: LogPosition
    public var streamID: StreamID
    public var revision: StreamRevision
    public var id: EventID
    public var type: String
    public var schemaVersion: UInt16
    /// When the event was committed: nanoseconds since the Unix epoch (UTC).
    public var recordedAtNanoseconds: Int64
    public var metadata: EventMetadata
    /// The payload, decompressed.
    public var payload: [UInt8]

    public init(
        position: LogPosition, streamID: StreamID, revision: StreamRevision, id: EventID, type: String,
        schemaVersion: UInt16, recordedAtNanoseconds: Int64, metadata: EventMetadata, payload: [UInt8]
    ) {
        self.position = position
        self.streamID = streamID
        self.revision = revision
        self.id = id
        self.type = type
        self.schemaVersion = schemaVersion
        self.recordedAtNanoseconds = recordedAtNanoseconds
        self.metadata = metadata
        self.payload = payload
    }
}

/// Events for one stream within an append.
public struct StreamAppend: Hashable, Sendable {
    public var streamID: StreamID
    public var expectedRevision: ExpectedRevision
    public var events: [ProposedEvent]

    public init(streamID: StreamID, expectedRevision: ExpectedRevision, events: [ProposedEvent]) {
        self.streamID = streamID
        self.expectedRevision = expectedRevision
        self.events = events
    }
}

/// A write to the log's key-value `state` database, committed in the same transaction as
/// the events of its append: how snapshots and projections stay exactly as current as the
/// events they cover.
public enum StateWrite: Hashable, Sendable {
    case put(key: String, value: [UInt8])
    case delete(key: String)
}

/// What an append committed, per stream, in the order of the request.
public struct AppendResult: Hashable, Sendable {
    public struct Stream: Hashable, Sendable {
        public var streamID: StreamID
        /// Revision of the first event appended (the stream's revision before, plus one).
        public var firstRevision: StreamRevision
        /// Revision of the last event appended: the stream's current revision.
        public var lastRevision: StreamRevision
        public var firstPosition: LogPosition
        public var lastPosition: LogPosition

        public init(
            streamID: StreamID, firstRevision: StreamRevision, lastRevision: StreamRevision,
            firstPosition: LogPosition, lastPosition: LogPosition
        ) {
            self.streamID = streamID
            self.firstRevision = firstRevision
            self.lastRevision = lastRevision
            self.firstPosition = firstPosition
            self.lastPosition = lastPosition
        }
    }

    public var streams: [Stream]
    /// Position of the last event of the whole append.
    public var lastPosition: LogPosition
    /// Commit time of the append (nanoseconds since the Unix epoch, UTC): every event in it
    /// carries this `recordedAtNanoseconds`.
    public var recordedAtNanoseconds: Int64

    public init(streams: [Stream], lastPosition: LogPosition, recordedAtNanoseconds: Int64) {
        self.streams = streams
        self.lastPosition = lastPosition
        self.recordedAtNanoseconds = recordedAtNanoseconds
    }
}
