public import EventLog

/// What the engine needs of the log: atomic appends with expected revisions and state
/// writes, stream reads, the state database, and a tail of one stream.
///
/// Two implementations with the same semantics: ``EventLogStore`` (LMDB, durable) and
/// `InMemoryStore` of EngineTesting (for fast deterministic simulation).
public protocol EngineStore: Sendable {
    /// Appends to several streams and writes state, atomically: all or nothing. Durable
    /// when it returns.
    ///
    /// - Throws: an error when an expected revision does not hold (nothing is written).
    func append(_ streams: [StreamAppend], stateWrites: [StateWrite]) async throws -> AppendResult
    /// Every event of `stream`, in revision order (empty when it does not exist).
    func readStream(_ stream: StreamID) throws -> [RecordedEvent]
    /// Whether `stream` holds at least one event.
    func streamExists(_ stream: StreamID) throws -> Bool
    /// A value of the state database, as of the last commit.
    func state(forKey key: String) throws -> [UInt8]?
    /// Every state entry whose key starts with `prefix`, in key order.
    func stateEntries(withPrefix prefix: String) throws -> [(key: String, value: [UInt8])]
    /// Events of `stream` with position > `after`, then each new one as it commits; ends
    /// when the task is cancelled.
    func tail(_ stream: StreamID, after: LogPosition) -> AsyncThrowingStream<RecordedEvent, any Error>
}
