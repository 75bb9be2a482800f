import CLMDB
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The current dictionary of each event type, read by appenders to compress before enqueueing.
final class DictionaryRegistry: Sendable {
    private let current = Mutex<[String: CompressionDictionary]>([:])

    func dictionary(forType type: String) -> CompressionDictionary? {
        current.withLock { $0[type] }
    }

    func set(_ dictionary: CompressionDictionary, forType type: String) {
        current.withLock { $0[type] = dictionary }
    }
}

/// Signals the end of the writer thread to everyone awaiting `close()`.
final class Completion: Sendable {
    private let state = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func finish() {
        let waiters = state.withLock { state in
            state.done = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state in
                if !state.done { state.waiters.append(continuation) }
                return state.done
            }
            if done { continuation.resume() }
        }
    }
}

/// The group-commit writer: runs on its own OS thread and owns every write transaction.
///
/// Loop: take a batch from the inbox, check each request's expected revisions against the
/// stream heads (including earlier requests of the same batch), write the accepted ones in one
/// write transaction, commit with LMDB's default durable sync, and only then resume the
/// waiters. A rejected request writes nothing; `MDB_MAP_FULL` aborts, grows the map and redoes
/// the batch; any other commit failure fails that batch only.
final class BatchWriter {
    private let environment: LMDBEnvironment
    private let inbox: Inbox
    private let options: EventLogOptions
    private let logger: Logger
    private let registry: DictionaryRegistry
    private let lock: WriterLock
    private let completion: Completion
    private var threadID: pthread_t?

    // Committed state, owned by the writer thread.
    private var nextPosition: UInt64
    private var lastRecordedAt: Int64 = 0
    private var names: [NameKind: [String: UInt32]] = [:]
    private var lastNumbers: [NameKind: UInt32] = [:]
    private var typeNames: [UInt32: String] = [:]
    private var streamCounts: [UInt32: UInt64] = [:]
    private var typeCounts: [UInt32: UInt64] = [:]
    private var nextTrainingAt: [UInt32: UInt64] = [:]
    private var nextDictionaryID: UInt32 = 1
    private var samples: [UInt32: SampleRing] = [:]
    /// Dictionaries trained off the writer thread, waiting to be stored.
    private let trained: TrainingOutbox
    /// Recent event ids and the positions holding them, for causation references; and the
    /// positions storing each recent correlation id inline, for correlation references. Both
    /// cover the last `referenceWindow` positions (a ring evicts older entries).
    static let referenceWindow: UInt64 = 1 << 16
    /// Map doublings one batch may need: 24 take the default 64 MiB map past 1 PiB.
    static let maximumGrowthsPerBatch = 24
    private var recentIDs: [EventID: UInt64] = [:]
    private var recentIDRing = [EventID?](repeating: nil, count: Int(referenceWindow))
    private var anchors: [EventID: UInt64] = [:]
    private var anchorRing = [EventID?](repeating: nil, count: Int(referenceWindow))
    /// Event types with a training under way.
    private var training: Set<UInt32> = []

    // The unfolded tail (see `FoldState`): what commits since the last fold added to the
    // derived tables, which the writer folds in when idle or once `maxUnfoldedEvents` is
    // reached. Commits write only what must be durable: envelopes and new names (number →
    // name, appended in order) and state writes.
    /// The fold record as committed; nil while the log has none (format 1: wholly folded).
    private var fold: FoldState?
    /// Each stream's unfolded positions, in revision order.
    private var unfoldedStreams: [UInt32: [UInt64]] = [:]
    /// Names numbered since the fold: their `names` hash entries are still to write.
    private var unfoldedNames: [(kind: NameKind, name: String, number: UInt32)] = []
    private var unfoldedTypes: Set<UInt32> = []
    private var unfoldedEvents = 0
    /// Why folding stopped (a damaged index chunk it must extend, say): commits go on, readers
    /// cover the growing tail, `verify` names the damage.
    private var foldFailure: EventLogError?
    /// Folds committed since open (tests and stats).
    private(set) var foldCount = 0

    /// Loads the committed state (read transaction, on the caller's thread).
    init(
        environment: LMDBEnvironment, inbox: Inbox, options: EventLogOptions, logger: Logger,
        registry: DictionaryRegistry, lock: WriterLock, completion: Completion
    ) throws {
        self.environment = environment
        self.inbox = inbox
        self.options = options
        self.logger = logger
        self.registry = registry
        self.lock = lock
        self.completion = completion
        self.trained = TrainingOutbox(inbox: inbox, logger: logger)
        var loaded: (UInt64, Int64, [NameKind: UInt32], [UInt32: UInt64], [DictionaryRecord]) = (1, 0, [:], [:], [])
        loaded = try environment.read { txn in
            let last = try txn.lastPosition()
            var recordedAt: Int64 = 0
            if last != .start, let bytes = try txn.get(txn.dbs.events, Keys.position(last.rawValue)) {
                recordedAt = Envelope.recordedAt(bytes) ?? 0
            }
            var lastNumbers: [NameKind: UInt32] = [:]
            for kind in NameKind.allCases { lastNumbers[kind] = try txn.lastNumber(kind: kind) }
            var counts: [UInt32: UInt64] = [:]
            let cursor = try txn.cursor(txn.dbs.meta)
            var entry = try MetaKey.typeCountPrefix.withUnsafeBytes { try cursor.get(MDB_SET_RANGE, key: $0) }
            while let current = entry, current.key.starts(with: MetaKey.typeCountPrefix) {
                let typeBytes = UnsafeRawBufferPointer(rebasing: current.key[MetaKey.typeCountPrefix.count...])
                if let type = Keys.readBigEndian(typeBytes, UInt32.self), current.value.count == 8 {
                    counts[type] = UInt64(littleEndian: current.value.loadUnaligned(as: UInt64.self))
                }
                entry = try cursor.get(MDB_NEXT)
            }
            return (last.rawValue + 1, recordedAt, lastNumbers, counts, try txn.dictionaryRecords())
        }
        (nextPosition, lastRecordedAt, lastNumbers, typeCounts, _) = loaded
        try recoverTail()
        for record in loaded.4 {
            nextDictionaryID = max(nextDictionaryID, record.id + 1)
            let growth = UInt64(max(2, options.dictionaryTraining.retrainGrowthFactor))
            nextTrainingAt[record.typeNumber] = record.eventCountAtTraining * growth
            let dictionary = try CompressionDictionary(id: record.id, bytes: record.bytes, level: options.compressionLevel)
            environment.caches.add(dictionary)
            let typeName = try environment.read { try $0.name(of: record.typeNumber, kind: .eventType) }
            if let typeName { registry.set(dictionary, forType: typeName) }
        }
    }

    // MARK: the thread

    /// Linger before a batch only after one of at least this many requests.
    private static let lingerAfterRequests = 4
    /// The longest linger: small next to a durable commit (milliseconds here).
    private static let lingerMaxNanoseconds = 300_000
    /// Stop lingering once the inbox has been quiet this long.
    private static let lingerIdleNanoseconds = 100_000
    /// Fold the tail once the inbox has been empty this long.
    private static let foldIdleNanoseconds = 2_000_000

    private var hasUnfolded: Bool { unfoldedEvents > 0 || !unfoldedNames.isEmpty }

    /// The writer thread's body: batches until the inbox is closed and drained.
    func run() {
        threadID = pthread_self()
        // Appenders that each await their commit come back together after it: the writer
        // lingers (briefly) for those it just released and those already queued then
        // (`Inbox.willRelease`), so batches do not split into two alternating halves. A lone
        // appender (small batches) never waits.
        var previous = 0
        // Derived entries written by each commit: a tail left by an earlier open goes first.
        if options.maxUnfoldedEvents <= 0 { foldTail() }
        while true {
            let linger: Inbox.Linger = previous >= Self.lingerAfterRequests
                ? Inbox.Linger(requests: .max, maxNanoseconds: Self.lingerMaxNanoseconds,
                               idleNanoseconds: Self.lingerIdleNanoseconds)
                : .none
            // With a tail to fold, wait for requests only so long: then fold it while idle.
            let idle = hasUnfolded && foldFailure == nil && stopped == nil && options.foldsWhenIdle
                ? Self.foldIdleNanoseconds : nil
            guard let batch = inbox.takeBatch(maxEvents: options.maxBatchEvents, linger: linger,
                                              idleNanoseconds: idle)
            else { break }
            if let stopped {
                for request in batch { request.waiter.resume(throwing: stopped) }
                continue
            }
            storeTrainedDictionaries()
            if !batch.isEmpty {
                process(batch)
                previous = batch.count
                if unfoldedEvents >= max(1, options.maxUnfoldedEvents) { foldTail() }
            } else if idle != nil {
                foldTail()
            }
        }
        // Closed: leave the log folded, so the next open has no tail to read.
        if stopped == nil { foldTail() }
        lock.release()
        logger.debug("eventlog.writer.stopped", metadata: ["eventlog.directory": "\(environment.directory)"])
        completion.finish()
    }

    private func preconditionOnWriterThread() {
        precondition(threadID.map { pthread_equal($0, pthread_self()) != 0 } ?? false,
                     "an LMDB write transaction touched off the writer thread")
    }

    private enum Outcome {
        case committed(AppendResult)
        case rejected(EventLogError)
    }

    /// What a batch adds to the committed state, applied only once its commit succeeded.
    private struct Pending {
        var nextPosition: UInt64
        var lastNumbers: [NameKind: UInt32]
        var newNames: [NameKind: [String: UInt32]] = [:]
        var streamCounts: [UInt32: UInt64] = [:]
        /// What the batch adds to the stream index, folded later: positions per stream.
        var indexRuns: [(stream: UInt32, positions: Range<UInt64>)] = []
        /// This commit writes its derived entries itself (`maxUnfoldedEvents` 0, no tail).
        var derivedInline = false
        var typeCountDelta: [UInt32: UInt64] = [:]
        var samples: [(type: UInt32, payload: [UInt8])] = []
        var ids: [EventID: UInt64] = [:]
        var newIDs: [(EventID, UInt64)] = []
        var anchors: [EventID: UInt64] = [:]
        var newAnchors: [(EventID, UInt64)] = []
    }

    /// An error raised while writing one request of a batch: that request fails alone and
    /// the batch is redone without it.
    struct RequestFailure: Error {
        var index: Int
        var error: any Error
    }

    /// Errors after which LMDB's environment cannot be trusted: an I/O error (the page cache
    /// may have dropped what a failed fsync was writing; retrying would acknowledge appends
    /// that are not on disk) and LMDB's panic state (every later call fails).
    static func isFatal(_ error: any Error) -> Bool {
        guard let error = error as? LMDBError else { return false }
        return error.code == .ioError || error.code == .panic
    }

    /// The error the writer stopped with; set once, on the writer thread.
    private(set) var stopped: EventLogError?

    private func process(_ batch: [AppendRequest]) {
        let recordedAt = max(Self.now(), lastRecordedAt)
        var growths = 0
        var batch = batch
        while !batch.isEmpty {
            do {
                let (outcomes, pending) = try writeAndCommit(batch, recordedAt: recordedAt)
                apply(pending, recordedAt: recordedAt)
                environment.changes.publish()
                inbox.willRelease(batch.count)
                for (request, outcome) in zip(batch, outcomes) {
                    switch outcome {
                    case .committed(let result): request.waiter.resume(returning: result)
                    case .rejected(let error): request.waiter.resume(throwing: error)
                    }
                }
                trainDictionaries(touched: Array(pending.typeCountDelta.keys))
                growAheadOfNeed()
                return
            } catch let failure as RequestFailure where !Self.isFatal(failure.error) {
                // Only this request is at fault (a damaged index chunk of its stream, say):
                // it fails alone, the others are written again without it.
                let request = batch.remove(at: failure.index)
                let error = Self.eventLogError(failure.error, "appending")
                logger.warning(
                    "eventlog.request.failed",
                    metadata: ["eventlog.error": "\(error)", "eventlog.batch.requests": "\(batch.count + 1)"])
                request.waiter.resume(throwing: error)
            } catch let error as LMDBError where error.code == .mapFull {
                environment.mapFullCount.add(1, ordering: .relaxed)
                if let failure = growMap(afterGrowths: growths, error, context: "committing a batch") {
                    fail(batch, failure)
                    return
                }
                growths += 1
            } catch {
                let cause = (error as? RequestFailure)?.error ?? error
                let failure = Self.eventLogError(cause, "committing a batch")
                fail(batch, failure)
                if Self.isFatal(cause) { stop(failure) }
                return
            }
        }
    }

    static func eventLogError(_ error: any Error, _ context: String) -> EventLogError {
        (error as? LMDBError).map { EventLogError.wrap($0, context) }
            ?? (error as? EventLogError) ?? EventLogError(.lmdb, "\(context): \(error)")
    }

    /// Stops taking appends after a fatal error: what is queued and every later append fail
    /// with an error naming the cause; the writer thread ends and releases the lock.
    private func stop(_ cause: EventLogError) {
        var error = EventLogError(
            cause.code,
            "the event log's writer stopped after a fatal error and takes no more appends "
                + "(reopen the log once the disk is fixed): \(cause.message)", lmdb: cause.lmdb)
        error.damage = cause.damage
        stopped = error
        logger.error("eventlog.writer.stoppedAfterFailure", metadata: ["eventlog.error": "\(cause)"])
        inbox.fail(error)
    }

    /// Grows the map while it is still half empty, when no read transaction of this process
    /// holds it (a brief wait at most), so `MDB_MAP_FULL`, where the writer must wait for every
    /// reader and a running backup, is not reached in steady operation.
    private func growAheadOfNeed() {
        let (used, size) = environment.usedAndMapSize
        guard used > size / 2 else { return }
        let (target, overflow) = size.multipliedReportingOverflow(by: 2)
        guard !overflow else { return }
        do {
            if try environment.setMapSize(target, waitingAtMostNanoseconds: 2_000_000) {
                logger.info(
                    "eventlog.map.grownAhead",
                    metadata: ["eventlog.map.bytes.before": "\(size)", "eventlog.map.bytes.after": "\(target)",
                               "eventlog.map.bytes.used": "\(used)"])
            }
        } catch {
            // Not fatal: the next batch tries again, and MDB_MAP_FULL still grows the map.
            logger.info("eventlog.map.growAheadFailed", metadata: ["eventlog.error": "\(error)"])
        }
    }

    /// Fails every request of a batch; nothing of it was committed.
    private func fail(_ batch: [AppendRequest], _ failure: EventLogError) {
        logger.warning(
            "eventlog.batch.failed",
            metadata: ["eventlog.error": "\(failure)", "eventlog.batch.requests": "\(batch.count)"])
        for request in batch { request.waiter.resume(throwing: failure) }
    }

    /// Doubles the map after `MDB_MAP_FULL`; returns the error to fail the batch with when the
    /// map cannot grow (retrying at the same size would only hit `MDB_MAP_FULL` again).
    private func growMap(afterGrowths growths: Int, _ mapFull: LMDBError, context: String) -> EventLogError? {
        let current = environment.mapSizeBytes
        guard growths < Self.maximumGrowthsPerBatch else {
            return EventLogError(
                .lmdb,
                "\(context): the map is still full at \(current) bytes after doubling it "
                    + "\(growths) times (\(mapFull))",
                lmdb: mapFull)
        }
        let (target, overflow) = current.multipliedReportingOverflow(by: 2)
        guard !overflow else {
            return EventLogError(.lmdb, "\(context): the map is full at \(current) bytes, which cannot double",
                                 lmdb: mapFull)
        }
        do {
            try environment.setMapSize(target)
        } catch {
            return EventLogError(
                .lmdb,
                "\(context): the map is full at \(current) bytes and could not grow to \(target) bytes "
                    + "(\(error)); free disk space, or open the log with a larger "
                    + "EventLogOptions.initialMapSizeBytes",
                lmdb: error)
        }
        logger.info(
            "eventlog.map.grown",
            metadata: ["eventlog.map.bytes.before": "\(current)", "eventlog.map.bytes.after": "\(target)"])
        return nil
    }

    private func writeAndCommit(_ batch: [AppendRequest], recordedAt: Int64) throws -> ([Outcome], Pending) {
        preconditionOnWriterThread()
        let txn = try WriteTransaction(environment: environment)
        var pending = Pending(nextPosition: nextPosition, lastNumbers: lastNumbers)
        pending.derivedInline = options.maxUnfoldedEvents <= 0 && !hasUnfolded && foldFailure == nil
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(batch.count)
        do {
            for (index, request) in batch.enumerated() {
                do {
                    outcomes.append(try write(request, recordedAt: recordedAt, txn: txn, pending: &pending))
                } catch let error as LMDBError where error.code == .mapFull {
                    throw error
                } catch {
                    throw RequestFailure(index: index, error: error)
                }
            }
            if pending.derivedInline {
                // Derived entries in the commit itself (as format 1 wrote them): the log
                // never has a tail, and the fold record follows each commit.
                for (type, delta) in pending.typeCountDelta {
                    let total = (typeCounts[type] ?? 0) + delta
                    try txn.put(txn.dbs.meta, MetaKey.typeCount(type), withUnsafeBytes(of: total.littleEndian) { Array($0) })
                }
                let state = FoldState(position: pending.nextPosition - 1, numbers: pending.lastNumbers)
                try txn.put(txn.dbs.meta, MetaKey.fold, state.encoded())
                if fold == nil { try txn.put(txn.dbs.meta, MetaKey.format, MetaKey.formatValue) }
            } else if fold == nil {
                // The first commit that leaves derived entries to a fold: from here on readers
                // must know where the derived tables end. Everything before is folded.
                try txn.put(txn.dbs.meta, MetaKey.fold, FoldState(position: nextPosition - 1, numbers: lastNumbers).encoded())
                try txn.put(txn.dbs.meta, MetaKey.format, MetaKey.formatValue)
            }
        } catch {
            txn.abort()
            throw error
        }
        if let injected = environment.injectedCommitError.withLock({ $0 }) {
            txn.abort()
            throw LMDBError(code: .init(rawValue: injected), call: "mdb_txn_commit")
        }
        try txn.commit()
        if pending.derivedInline {
            fold = FoldState(position: pending.nextPosition - 1, numbers: pending.lastNumbers)
        } else if fold == nil {
            fold = FoldState(position: nextPosition - 1, numbers: lastNumbers)
        }
        return (outcomes, pending)
    }

    private func write(_ request: AppendRequest, recordedAt: Int64, txn: borrowing WriteTransaction,
                       pending: inout Pending) throws -> Outcome
    {
        // Check every stream before writing anything: a rejected request leaves no trace.
        var counts: [UInt64] = []
        for stream in request.streams {
            let number = try number(of: stream.streamID.rawValue, kind: .stream, txn: txn, pending: &pending, create: false)
            let count = try number.map { try eventCount(of: $0, txn: txn, pending: pending) } ?? 0
            if let error = Self.check(stream.expectedRevision, count: count, stream: stream.streamID) {
                return .rejected(error)
            }
            counts.append(count)
        }
        var results: [AppendResult.Stream] = []
        for (stream, count) in zip(request.streams, counts) {
            let streamNumber = try number(of: stream.streamID.rawValue, kind: .stream, txn: txn, pending: &pending,
                                          create: true)!
            let firstPosition = pending.nextPosition
            for (offset, event) in stream.events.enumerated() {
                try write(event, streamNumber: streamNumber, revision: count + UInt64(offset), recordedAt: recordedAt,
                          txn: txn, pending: &pending)
            }
            let added = UInt64(stream.events.count)
            if pending.derivedInline {
                try txn.appendToStreamIndex(stream: streamNumber, count: count, positions: firstPosition..<pending.nextPosition)
            } else {
                pending.indexRuns.append((streamNumber, firstPosition..<pending.nextPosition))
            }
            pending.streamCounts[streamNumber] = count + added
            results.append(AppendResult.Stream(
                streamID: stream.streamID, firstRevision: StreamRevision(count),
                lastRevision: StreamRevision(count + added - 1), firstPosition: LogPosition(firstPosition),
                lastPosition: LogPosition(pending.nextPosition - 1)))
        }
        for write in request.stateWrites {
            switch write {
            case .put(let key, let value): try txn.put(txn.dbs.state, Array(key.utf8), value)
            case .delete(let key): try txn.delete(txn.dbs.state, Array(key.utf8))
            }
        }
        return .committed(AppendResult(
            streams: results, lastPosition: LogPosition(pending.nextPosition - 1), recordedAtNanoseconds: recordedAt))
    }

    private func write(_ event: PreparedEvent, streamNumber: UInt32, revision: UInt64, recordedAt: Int64,
                       txn: borrowing WriteTransaction, pending: inout Pending) throws
    {
        let proposed = event.proposed
        let typeNumber = try number(of: proposed.type, kind: .eventType, txn: txn, pending: &pending, create: true)!
        let actorNumber = try number(of: proposed.metadata.actor, kind: .actor, txn: txn, pending: &pending,
                                     create: true)!
        let envelope = Envelope(
            recordedAtNanoseconds: recordedAt, streamNumber: streamNumber, revision: revision, typeNumber: typeNumber,
            schemaVersion: proposed.schemaVersion, actorNumber: actorNumber, id: proposed.id,
            causation: causationField(proposed.metadata.causationID, at: pending.nextPosition, pending: pending),
            correlation: correlationField(proposed.metadata.correlationID, at: pending.nextPosition, pending: &pending),
            dictionaryID: event.compressed == nil ? 0 : event.dictionaryID, compressed: event.compressed != nil,
            rawPayloadLength: proposed.payload.count)
        let stored = event.compressed ?? proposed.payload
        let position = LogPosition(pending.nextPosition)
        let size = envelope.encodedSize(storedPayloadCount: stored.count)
        var key = position.rawValue.bigEndian
        try withUnsafeBytes(of: &key) { key in
            let target = try txn.reserve(txn.dbs.events, key, size: size, flags: MDB_APPEND)
            stored.withUnsafeBytes { envelope.write(position: position, payload: $0, into: target) }
        }
        pending.ids[proposed.id] = position.rawValue
        pending.newIDs.append((proposed.id, position.rawValue))
        pending.nextPosition += 1
        pending.typeCountDelta[typeNumber, default: 0] += 1
        if options.dictionaryTraining.isEnabled && !proposed.payload.isEmpty {
            pending.samples.append((typeNumber, proposed.payload))
        }
    }

    /// A causation id as a reference to the recent event with that id, or inline.
    private func causationField(_ id: EventID?, at position: UInt64, pending: Pending) -> Envelope.IDField {
        guard let id else { return .none }
        if let source = pending.ids[id] ?? recentIDs[id], source < position, position - source <= Self.referenceWindow {
            return .reference(distance: position - source)
        }
        return .inline(id)
    }

    /// A correlation id as a reference to a recent event storing it inline, or inline (and
    /// then this event is the one later events refer to).
    private func correlationField(_ id: EventID?, at position: UInt64, pending: inout Pending) -> Envelope.IDField {
        guard let id else { return .none }
        if let anchor = pending.anchors[id] ?? anchors[id], anchor < position, position - anchor <= Self.referenceWindow {
            return .reference(distance: position - anchor)
        }
        pending.anchors[id] = position
        pending.newAnchors.append((id, position))
        return .inline(id)
    }

    /// The number interned for `name`, interning it (in `txn`) when `create` is set.
    private func number(of name: String, kind: NameKind, txn: borrowing WriteTransaction, pending: inout Pending,
                        create: Bool) throws -> UInt32?
    {
        if let number = names[kind]?[name] ?? pending.newNames[kind]?[name] { return number }
        if let number = try txn.view.hashedNumber(of: name, kind: kind) {
            names[kind, default: [:]][name] = number
            if kind == .eventType { typeNames[number] = name }
            return number
        }
        guard create else { return nil }
        let number = (pending.lastNumbers[kind] ?? 0) + 1
        pending.lastNumbers[kind] = number
        // Numbers only grow, so the number → name database is filled page after page.
        try txn.put(txn.dbs.numbers(kind), Keys.bigEndian(number), Array(name.utf8), flags: MDB_APPEND)
        if pending.derivedInline { try txn.put(txn.dbs.names, kind.hashKey(name), Keys.bigEndian(number)) }
        pending.newNames[kind, default: [:]][name] = number
        return number
    }

    private func eventCount(of streamNumber: UInt32, txn: borrowing WriteTransaction, pending: Pending) throws
        -> UInt64
    {
        if let count = pending.streamCounts[streamNumber] ?? streamCounts[streamNumber] { return count }
        // Index only: a stream with unfolded events is always in `streamCounts`.
        let count = try txn.view.indexedEventCount(streamNumber: streamNumber)
        streamCounts[streamNumber] = count
        return count
    }

    static func check(_ expected: ExpectedRevision, count: UInt64, stream: StreamID) -> EventLogError? {
        if expected.holds(eventCount: count) { return nil }
        let actual = count == 0 ? nil : StreamRevision(count - 1)
        let actualText = actual.map { "its revision is \($0)" } ?? "it does not exist"
        return EventLogError(
            .wrongExpectedRevision, "stream \(stream): expected \(expected), but \(actualText)", stream: stream,
            expected: expected, actual: actual)
    }

    private func apply(_ pending: Pending, recordedAt: Int64) {
        nextPosition = pending.nextPosition
        lastRecordedAt = recordedAt
        lastNumbers = pending.lastNumbers
        for (kind, table) in pending.newNames {
            names[kind, default: [:]].merge(table) { $1 }
            if kind == .eventType { for (name, number) in table { typeNames[number] = name } }
            if !pending.derivedInline { for (name, number) in table { unfoldedNames.append((kind, name, number)) } }
        }
        streamCounts.merge(pending.streamCounts) { $1 }
        for run in pending.indexRuns {
            unfoldedStreams[run.stream, default: []].append(contentsOf: run.positions)
            unfoldedEvents += run.positions.count
        }
        if !pending.derivedInline { unfoldedTypes.formUnion(pending.typeCountDelta.keys) }
        Self.remember(pending.newIDs, in: &recentIDs, ring: &recentIDRing)
        Self.remember(pending.newAnchors, in: &anchors, ring: &anchorRing)
        for (type, delta) in pending.typeCountDelta { typeCounts[type, default: 0] += delta }
        let training = options.dictionaryTraining
        for (type, payload) in pending.samples {
            samples[type, default: SampleRing(limit: max(training.samplesKept, training.minimumSamples),
                                               byteLimit: training.sampleBytesKept)].append(payload)
        }
    }

    private static func remember(_ entries: [(EventID, UInt64)], in table: inout [EventID: UInt64], ring: inout [EventID?]) {
        for (id, position) in entries {
            let slot = Int(position % referenceWindow)
            if let old = ring[slot], let at = table[old], at + referenceWindow <= position {
                table.removeValue(forKey: old)
            }
            ring[slot] = id
            table[id] = position
        }
    }

    // MARK: the fold

    /// Reads the unfolded tail at open (recovery): the events after the fold position give
    /// each stream's count and index entries and the type counts, the names numbered after
    /// the folded numbers their numbers. Bounded by what one fold covers.
    /// - Throws: `.corrupt` naming the position of a damaged envelope of the tail.
    private func recoverTail() throws {
        let stored = try environment.read { try $0.foldState() }
        guard let stored else { return }
        fold = stored
        let last = nextPosition - 1
        var entries: [UInt32: [TailEntry]] = [:]
        var types: [UInt32: UInt64] = [:]
        var first = stored.position + 1
        while first <= last {
            let through = min(last, first + 4095)
            try environment.read { txn in
                try txn.forEachTailEnvelope(from: first, through: through) { position, envelope in
                    entries[envelope.streamNumber, default: []].append(
                        TailEntry(revision: envelope.revision, position: position))
                    types[envelope.typeNumber, default: 0] += 1
                }
            }
            first = through + 1
        }
        for (stream, list) in entries {
            guard let lastEntry = list.last else { continue }
            streamCounts[stream] = lastEntry.revision + 1
            unfoldedStreams[stream] = list.map(\.position)
            unfoldedEvents += list.count
        }
        for (type, count) in types { typeCounts[type, default: 0] += count }
        unfoldedTypes = Set(types.keys)
        for kind in NameKind.allCases {
            let base = stored.numbers(kind)
            guard let lastNumber = lastNumbers[kind], lastNumber > base else { continue }
            try environment.read { txn in
                for number in (base + 1)...lastNumber {
                    guard let name = try txn.name(of: number, kind: kind) else {
                        throw EventLogError(.corrupt, "\(kind.label) number \(number) of the unfolded tail has no name")
                    }
                    names[kind, default: [:]][name] = number
                    if kind == .eventType { typeNames[number] = name }
                    unfoldedNames.append((kind, name, number))
                }
            }
        }
        if hasUnfolded {
            logger.debug("eventlog.fold.recovered", metadata: [
                "eventlog.fold.position": "\(stored.position)", "eventlog.unfolded.events": "\(unfoldedEvents)",
            ])
        }
    }

    /// Writes the tail into the derived tables in one transaction of its own, in key order
    /// (stream index by stream number, hash entries by hash, counters by type), and moves the
    /// fold record to the last committed position. A crash before its commit leaves the fold
    /// record where it was and the next open reads the tail again.
    private func foldTail() {
        guard hasUnfolded, stopped == nil, foldFailure == nil else { return }
        preconditionOnWriterThread()
        var growths = 0
        while true {
            do {
                let state = FoldState(position: nextPosition - 1, numbers: lastNumbers)
                let txn = try WriteTransaction(environment: environment)
                do {
                    for stream in unfoldedStreams.keys.sorted() {
                        let positions = unfoldedStreams[stream]!
                        let count = (streamCounts[stream] ?? UInt64(positions.count)) - UInt64(positions.count)
                        try txn.appendToStreamIndex(stream: stream, count: count, positions: positions)
                    }
                    let hashed = unfoldedNames.map { (key: $0.kind.hashKey($0.name), number: $0.number) }
                    for entry in hashed.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
                        try txn.put(txn.dbs.names, entry.key, Keys.bigEndian(entry.number))
                    }
                    for type in unfoldedTypes.sorted() {
                        let total = typeCounts[type] ?? 0
                        try txn.put(txn.dbs.meta, MetaKey.typeCount(type), withUnsafeBytes(of: total.littleEndian) { Array($0) })
                    }
                    try txn.put(txn.dbs.meta, MetaKey.fold, state.encoded())
                    if fold == nil { try txn.put(txn.dbs.meta, MetaKey.format, MetaKey.formatValue) }
                } catch {
                    txn.abort()
                    throw error
                }
                if let injected = environment.injectedFoldError.withLock({ $0 }) {
                    txn.abort()
                    throw LMDBError(code: .init(rawValue: injected), call: "mdb_txn_commit")
                }
                try txn.commit()
                fold = state
                unfoldedStreams.removeAll(keepingCapacity: true)
                unfoldedNames.removeAll(keepingCapacity: true)
                unfoldedTypes.removeAll(keepingCapacity: true)
                unfoldedEvents = 0
                foldCount += 1
                environment.foldCount.add(1, ordering: .relaxed)
                growAheadOfNeed()
                return
            } catch let error as LMDBError where error.code == .mapFull {
                environment.mapFullCount.add(1, ordering: .relaxed)
                if let failure = growMap(afterGrowths: growths, error, context: "folding the tail") {
                    // Try again at the next fold; appends go on meanwhile.
                    logger.warning("eventlog.fold.deferred", metadata: ["eventlog.error": "\(failure)"])
                    return
                }
                growths += 1
            } catch {
                let failure = Self.eventLogError(error, "folding the tail into the derived tables")
                if Self.isFatal(error) {
                    stop(failure)
                } else {
                    foldFailure = failure
                    environment.foldFailureCount.add(1, ordering: .relaxed)
                    logger.error(
                        "eventlog.fold.stopped",
                        metadata: ["eventlog.error": "\(failure)", "eventlog.unfolded.events": "\(unfoldedEvents)"])
                }
                return
            }
        }
    }

    // MARK: dictionaries

    /// Starts training for each type that crossed its threshold, on a thread of its own:
    /// `ZDICT_trainFromBuffer` takes tens of milliseconds, which must not stall commits.
    private func trainDictionaries(touched: [UInt32]) {
        let options = options.dictionaryTraining
        guard options.isEnabled else { return }
        for type in touched where !training.contains(type) {
            let count = typeCounts[type] ?? 0
            let threshold = nextTrainingAt[type] ?? UInt64(max(1, options.minimumSamples))
            guard count >= threshold, let ring = samples[type], ring.count >= max(1, options.minimumSamples) else {
                continue
            }
            training.insert(type)
            let job = TrainingJob(
                type: type, typeName: typeNames[type] ?? "#\(type)", count: count, samples: ring.samples,
                capacity: options.dictionaryCapacityBytes)
            let outbox = trained
            let thread = Thread { outbox.run(job) }
            thread.name = "capstan.eventlog.training"
            thread.start()
        }
    }

    /// Stores the dictionaries trained since the last batch, then lets appenders use them.
    private func storeTrainedDictionaries() {
        let records = trained.take()
        let growth = UInt64(max(2, options.dictionaryTraining.retrainGrowthFactor))
        for var record in records {
            training.remove(record.typeNumber)
            let typeName = typeNames[record.typeNumber] ?? "#\(record.typeNumber)"
            guard !record.bytes.isEmpty else {
                // Training failed (too few or too alike samples): try again after more events.
                nextTrainingAt[record.typeNumber] = record.eventCountAtTraining * 2
                continue
            }
            record.id = nextDictionaryID
            do {
                let dictionary = try CompressionDictionary(id: record.id, bytes: record.bytes, level: options.compressionLevel)
                try storeDictionary(record)
                nextDictionaryID += 1
                nextTrainingAt[record.typeNumber] = record.eventCountAtTraining * growth
                environment.caches.add(dictionary)
                registry.set(dictionary, forType: typeName)
                logger.info(
                    "eventlog.dictionary.stored",
                    metadata: [
                        "eventlog.dictionary.id": "\(record.id)", "eventlog.event.type": "\(typeName)",
                        "eventlog.dictionary.bytes": "\(record.bytes.count)",
                        "eventlog.dictionary.samples": "\(record.sampleCount)",
                        "eventlog.event.count": "\(record.eventCountAtTraining)",
                    ])
            } catch {
                nextTrainingAt[record.typeNumber] = record.eventCountAtTraining * 2
                logger.info(
                    "eventlog.dictionary.storeFailed",
                    metadata: ["eventlog.event.type": "\(typeName)", "eventlog.error": "\(error)"])
            }
        }
    }

    private func storeDictionary(_ record: DictionaryRecord) throws {
        preconditionOnWriterThread()
        var growths = 0
        while true {
            do {
                let txn = try WriteTransaction(environment: environment)
                do {
                    try txn.put(txn.dbs.dictionaries, Keys.bigEndian(record.id), record.encoded(), flags: MDB_NOOVERWRITE)
                } catch {
                    txn.abort()
                    throw error
                }
                try txn.commit()
                return
            } catch let error as LMDBError where error.code == .mapFull {
                if let failure = growMap(afterGrowths: growths, error, context: "storing dictionary \(record.id)") {
                    throw failure
                }
                growths += 1
            }
        }
    }

    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}

/// Hands the writer to its thread.
struct WriterHandoff: @unchecked Sendable {
    // @unchecked Sendable: the creator passes the writer to the new thread and never touches
    // it again; from then on only the writer thread uses it.
    let writer: BatchWriter
}

/// What a training thread needs: copied out of the writer's state.
struct TrainingJob: Sendable {
    var type: UInt32
    var typeName: String
    var count: UInt64
    var samples: [[UInt8]]
    var capacity: Int
}

/// Trains dictionaries off the writer thread and hands the records back (empty bytes when
/// training failed), waking the writer to store them.
final class TrainingOutbox: Sendable {
    private let records = Mutex<[DictionaryRecord]>([])
    private let inbox: Inbox
    private let logger: Logger

    init(inbox: Inbox, logger: Logger) {
        self.inbox = inbox
        self.logger = logger
    }

    func run(_ job: TrainingJob) {
        let started = BatchWriter.now()
        var bytes: [UInt8] = []
        do {
            bytes = try CompressionDictionary.train(samples: job.samples, capacity: job.capacity)
        } catch {
            logger.info(
                "eventlog.dictionary.trainingSkipped",
                metadata: ["eventlog.event.type": "\(job.typeName)", "eventlog.error": "\(error)"])
        }
        logger.debug(
            "eventlog.dictionary.trained",
            metadata: [
                "eventlog.event.type": "\(job.typeName)",
                "eventlog.dictionary.trainingMilliseconds": "\((BatchWriter.now() - started) / 1_000_000)",
            ])
        let record = DictionaryRecord(
            id: 0, typeNumber: job.type, eventCountAtTraining: job.count, sampleCount: UInt64(job.samples.count),
            bytes: bytes)
        records.withLock { $0.append(record) }
        inbox.wake()
    }

    func take() -> [DictionaryRecord] {
        records.withLock { records in
            defer { records.removeAll() }
            return records
        }
    }
}

/// The most recent payloads of one event type, bounded in count and bytes.
struct SampleRing {
    let limit: Int
    let byteLimit: Int
    private(set) var samples: [[UInt8]] = []
    private var next = 0
    private var bytes = 0

    init(limit: Int, byteLimit: Int) {
        self.limit = max(1, limit)
        self.byteLimit = byteLimit
    }

    var count: Int { samples.count }

    mutating func append(_ payload: [UInt8]) {
        if samples.count < limit && bytes + payload.count <= byteLimit {
            samples.append(payload)
            bytes += payload.count
            return
        }
        guard !samples.isEmpty else { return }
        next %= samples.count
        bytes += payload.count - samples[next].count
        samples[next] = payload
        next += 1
    }
}
