/// How an `EventLog` writer is tuned.
public struct EventLogOptions: Sendable {
    /// The map size to start from (default 64 MiB); the writer doubles it on `MDB_MAP_FULL`.
    public var initialMapSizeBytes: Int = 64 << 20
    /// Append requests the bounded inbox holds before appenders wait (default 4096).
    public var inboxCapacity: Int = 4096
    /// Events per group commit at most (default 8192); one request is never split.
    public var maxBatchEvents: Int = 8192
    /// When and how zstd dictionaries are trained.
    public var dictionaryTraining: DictionaryTraining = .init()
    /// zstd level for payloads (default 3).
    public var compressionLevel: Int32 = 3
    /// Events the writer leaves unfolded at most before it folds them into the derived tables
    /// (stream index, name hashes, type counters) in a transaction of its own (default 4096);
    /// it also folds once its inbox has been idle for 2 ms, and at close. Readers cover the
    /// unfolded tail by reading its envelopes, so a larger bound trades their work for fewer
    /// scattered page writes (see docs/log-format.md, "The fold"). 0: every commit writes its
    /// own derived entries, as format 1 did (no tail, ever: binaries older than format 2 can
    /// read the log at any moment), at the cost of those scattered writes in every commit.
    public var maxUnfoldedEvents: Int = 4096
    /// Tests only: fold when the inbox is idle (tests that look at the tail turn it off).
    var foldsWhenIdle = true

    public init() {}
}

/// When the writer trains a zstd dictionary for an event type, and when it trains a new one.
///
/// A type gets its first dictionary once the log holds `minimumSamples` events of it (and the
/// writer has seen that many since it opened: samples are kept in memory only), and a new one
/// whenever the count has grown by `retrainGrowthFactor` since the last training. Every
/// dictionary stays in the log forever; old events keep naming theirs.
public struct DictionaryTraining: Sendable {
    /// Train at all (default true).
    public var isEnabled: Bool = true
    /// Events of a type before its first dictionary (default 1000).
    public var minimumSamples: Int = 1000
    /// Retrain when the type's count reaches this multiple of the count at the last training (default 8).
    public var retrainGrowthFactor: Int = 8
    /// Largest dictionary, in bytes (default 16 KiB).
    public var dictionaryCapacityBytes: Int = 16 << 10
    /// Recent payloads kept per type as training samples (default 2000, at least `minimumSamples`).
    public var samplesKept: Int = 2000
    /// Bytes of samples kept per type at most (default 1 MiB).
    public var sampleBytesKept: Int = 1 << 20

    public init() {}
}
