import Foundation
public import Logging

/// The single writer of a data directory.
///
/// Holds an exclusive lock across processes (a second writer gets `EventLogError` code
/// `.writerLocked` naming the holder's pid) and owns one dedicated OS thread that runs every
/// LMDB write transaction (group commit). Appends from any task are validated and their
/// payloads compressed in the caller's task, then queued in a bounded inbox; each returns once
/// its batch is durably committed.
public final class EventLog: Sendable {
    /// The data directory, as given.
    public let directory: String
    /// The reader over the same environment (same process).
    public let reader: EventLogReader
    let environment: LMDBEnvironment
    private let inbox: Inbox
    private let completion: Completion
    private let registry: DictionaryRegistry
    private let compressors: ContextPool<ZstdCompressor>
    private let options: EventLogOptions
    private let logger: Logger

    /// Opens (creating when missing) the log in `directory` for writing.
    ///
    /// - Parameters:
    ///   - directory: the data directory; created with its parents if missing.
    ///   - options: map size, inbox and batch bounds, dictionary training.
    ///   - logger: where the log reports (info and below).
    /// - Throws: `EventLogError` `.writerLocked` (another writer holds the directory), `.invalidInput`
    ///   (bad options), `.corrupt` (truncated data file), `.lmdb`, `.system`.
    public init(
        directory: String, options: EventLogOptions = .init(),
        logger: Logger = Logger(label: "capstan.eventlog")
    ) throws {
        guard options.inboxCapacity > 0, options.maxBatchEvents > 0, options.initialMapSizeBytes >= 0 else {
            throw EventLogError(
                .invalidInput, "EventLogOptions: inboxCapacity and maxBatchEvents must be positive, the map size not negative")
        }
        try LMDBEnvironment.makeDirectory(directory)
        // The lock first: a second writer must fail at once, before touching the environment.
        let lock = try WriterLock(directory: directory)
        let environment = try LMDBEnvironment.shared(
            directory: directory, create: true, mapSizeBytes: options.initialMapSizeBytes)
        let inbox = Inbox(capacity: options.inboxCapacity)
        let completion = Completion()
        let registry = DictionaryRegistry()
        let writer = try BatchWriter(
            environment: environment, inbox: inbox, options: options, logger: logger, registry: registry, lock: lock,
            completion: completion)
        self.directory = directory
        self.environment = environment
        self.reader = EventLogReader(environment: environment, logger: logger)
        self.inbox = inbox
        self.completion = completion
        self.registry = registry
        let level = options.compressionLevel
        self.compressors = ContextPool(keep: 16) { ZstdCompressor(level: level) }
        self.options = options
        self.logger = logger
        let handoff = WriterHandoff(writer: writer)
        let thread = Thread { handoff.writer.run() }
        thread.name = "capstan.eventlog.writer"
        thread.start()
        logger.info("eventlog.opened", metadata: ["eventlog.directory": "\(directory)"])
    }

    deinit {
        // Without close(), the writer still drains what is queued, then ends.
        inbox.close()
    }

    /// Appends `events` to one stream; durable when it returns.
    ///
    /// - Parameters:
    ///   - events: at least one event.
    ///   - stream: the stream to append to.
    ///   - expectedRevision: what the stream must hold (optimistic concurrency).
    ///   - stateWrites: key-value writes committed atomically with the events.
    /// - Throws: `EventLogError` `.wrongExpectedRevision` (with `stream`, `expected`, `actual`),
    ///   `.invalidInput`, `.closed`, `.diskFull`, `.lmdb`.
    @discardableResult
    public func append(
        _ events: [ProposedEvent], to stream: StreamID, expectedRevision: ExpectedRevision,
        stateWrites: [StateWrite] = []
    ) async throws -> AppendResult {
        try await append(
            [StreamAppend(streamID: stream, expectedRevision: expectedRevision, events: events)],
            stateWrites: stateWrites)
    }

    /// Appends to several streams, with state writes, in one atomic transaction: all or nothing.
    ///
    /// If any stream's expected revision does not hold, nothing of this append is written and
    /// the error names that stream; other appends in the same group commit are unaffected.
    /// - Throws: as `append(_:to:expectedRevision:stateWrites:)`.
    @discardableResult
    public func append(_ streams: [StreamAppend], stateWrites: [StateWrite] = []) async throws -> AppendResult {
        try Self.validate(streams, stateWrites)
        let prepared = try streams.map { stream in
            PreparedStream(
                streamID: stream.streamID, expectedRevision: stream.expectedRevision,
                events: try stream.events.map(prepare))
        }
        try await inbox.reserve()
        return try await withCheckedThrowingContinuation { waiter in
            inbox.enqueue(AppendRequest(streams: prepared, stateWrites: stateWrites, waiter: waiter))
        }
    }

    /// Compresses in the appender's task, so the writer thread only positions, checksums and writes.
    private func prepare(_ event: ProposedEvent) throws -> PreparedEvent {
        let dictionary = registry.dictionary(forType: event.type)
        let compressed = try compressors.with { compressor throws(EventLogError) in
            try compressor.compress(event.payload, dictionary: dictionary)
        }
        return PreparedEvent(proposed: event, compressed: compressed, dictionaryID: dictionary?.id ?? 0)
    }

    /// The error the writer stopped with after an I/O error or LMDB's panic state, nil while it
    /// runs (or after a plain `close()`). Once set, every append fails with it: report it, and
    /// reopen the log after the disk is fixed.
    public var writerFailure: EventLogError? { inbox.stopError }

    /// Stops intake, commits what is queued, and joins the writer thread. Idempotent.
    public func close() async {
        inbox.close()
        await completion.wait()
    }

    static func validate(_ streams: [StreamAppend], _ stateWrites: [StateWrite]) throws {
        func invalid(_ message: String) -> EventLogError { EventLogError(.invalidInput, "append: \(message)") }
        if streams.isEmpty && stateWrites.isEmpty { throw invalid("no streams and no state writes") }
        var seen: Set<StreamID> = []
        for stream in streams {
            let bytes = stream.streamID.rawValue.utf8
            guard !bytes.isEmpty, bytes.count <= StreamID.maxLengthBytes, !bytes.contains(0) else {
                throw EventLogError(
                    .invalidInput,
                    "append: stream id \"\(stream.streamID)\" must be 1 to \(StreamID.maxLengthBytes) UTF-8 bytes without NUL",
                    stream: stream.streamID)
            }
            guard seen.insert(stream.streamID).inserted else {
                throw EventLogError(.invalidInput, "append: stream \(stream.streamID) appears twice", stream: stream.streamID)
            }
            guard !stream.events.isEmpty else {
                throw EventLogError(.invalidInput, "append: no events for stream \(stream.streamID)", stream: stream.streamID)
            }
            for event in stream.events {
                let type = event.type.utf8
                guard !type.isEmpty, type.count <= 255, !type.contains(0) else {
                    throw EventLogError(
                        .invalidInput, "append: event type \"\(event.type)\" must be 1 to 255 UTF-8 bytes without NUL",
                        stream: stream.streamID)
                }
                guard event.metadata.actor.utf8.count <= 255, !event.metadata.actor.utf8.contains(0) else {
                    throw EventLogError(
                        .invalidInput, "append: actor of a \(event.type) event must be at most 255 bytes without NUL",
                        stream: stream.streamID)
                }
                guard event.payload.count <= Envelope.maximumPayloadBytes else {
                    throw EventLogError(
                        .invalidInput,
                        "append: payload of a \(event.type) event has \(event.payload.count) bytes, "
                            + "more than \(Envelope.maximumPayloadBytes)",
                        stream: stream.streamID)
                }
            }
        }
        for write in stateWrites {
            let key: String
            switch write {
            case .put(let k, _), .delete(let k): key = k
            }
            guard !key.utf8.isEmpty, key.utf8.count <= 500 else {
                throw invalid("state key \"\(key.prefix(40))\" must be 1 to 500 UTF-8 bytes")
            }
        }
    }
}
