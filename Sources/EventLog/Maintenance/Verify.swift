import CLMDB
public import Logging

/// What `verify` found: every problem with its position, stream and kind of damage.
public struct VerifyReport: Sendable, CustomStringConvertible {
    /// One problem in the log.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The kind of damage.
        public enum Kind: String, Sendable, Hashable, CaseIterable {
            /// The stored checksum does not match the stored bytes.
            case checksumMismatch
            /// The checksum holds but the envelope cannot be decoded (or decompressed).
            case malformedEnvelope
            /// Positions are not 1, 2, 3... without gaps.
            case positionGap
            /// An event's revision is not the next one of its stream.
            case revisionGap
            /// An event is missing from its stream's index.
            case missingIndexEntry
            /// A stream index entry names a position that does not hold that stream's event.
            case danglingIndexEntry
            /// A stream index entry names the right stream's event under the wrong revision
            /// (index chunks out of order).
            case indexMismatch
            /// An envelope names a dictionary that does not exist.
            case missingDictionary
            /// A stored dictionary cannot be read.
            case damagedDictionary
            /// An envelope names an interned stream, event type or actor that does not exist.
            case missingName
            /// The data file is shorter than its own meta page says.
            case truncatedFile
            /// LMDB could not read part of the file, or it could not be opened.
            case unreadable
            /// An interned name and the hash table that finds it disagree: the name's bytes or
            /// its `names` entry are damaged (names carry no checksum of their own).
            case damagedName
            /// A B-tree page of the data file is damaged (`page` names it); LMDB cannot be
            /// trusted to read the log, so nothing after it is checked.
            case damagedPage
        }

        public var kind: Kind
        public var position: LogPosition?
        public var stream: StreamID?
        public var message: String
        /// The damaged page of the data file (`.damagedPage`).
        public var page: UInt64? = nil

        public var description: String {
            var parts = [kind.rawValue]
            if let page { parts.append("page \(page)") }
            if let position { parts.append("position \(position)") }
            if let stream { parts.append("stream \(stream)") }
            return parts.joined(separator: " ") + ": " + message
        }
    }

    public var directory: String
    public var problems: [Problem] = []
    /// Events whose envelopes were checked.
    public var eventsChecked = 0
    /// Streams whose index was checked.
    public var streamsChecked = 0
    /// Dictionaries checked.
    public var dictionariesChecked = 0
    /// The last position found.
    public var lastPosition = LogPosition.start

    /// True when nothing is wrong.
    public var isClean: Bool { problems.isEmpty }

    public var description: String {
        let head =
            "verify \(directory): \(eventsChecked) events, \(streamsChecked) streams, "
            + "\(dictionariesChecked) dictionaries, \(problems.count) problem(s)"
        return ([head] + problems.map { "  " + $0.description }).joined(separator: "\n")
    }
}

extension EventLogReader {
    /// Verifies the log in `directory`, turning a log that cannot even be opened (a truncated
    /// data file, a damaged meta page) into a report item rather than a crash.
    ///
    /// - Throws: `.notFound` when there is no log in `directory`.
    public static func verify(directory: String, logger: Logger = Logger(label: "capstan.eventlog")) throws
        -> VerifyReport
    {
        do {
            return try EventLogReader(directory: directory, logger: logger).verify()
        } catch let error as EventLogError where error.code == .corrupt {
            var report = VerifyReport(directory: directory)
            let kind: VerifyReport.Problem.Kind
            switch error.damage {
            case .truncatedFile: kind = .truncatedFile
            case .checksumMismatch: kind = .checksumMismatch
            case .malformedEnvelope: kind = .malformedEnvelope
            case .missingName: kind = .missingName
            case .damagedPage: kind = .damagedPage
            case .noValidMetaPage, nil: kind = .unreadable
            }
            report.problems.append(.init(kind: kind, position: error.position, stream: nil, message: error.message,
                                         page: error.page))
            return report
        } catch let error as EventLogError where error.code == .lmdb {
            var report = VerifyReport(directory: directory)
            report.problems.append(.init(kind: .unreadable, position: nil, stream: nil, message: error.message))
            return report
        }
    }

    /// Checks every checksum, position continuity, that every stream index entry points to a
    /// matching envelope (same stream and revision) and every envelope has its index entry,
    /// that revisions are gap-free, and that every dictionary and interned name referenced exists.
    ///
    /// Checks positions up to the last one committed when it starts, in short read transactions
    /// like `scan`: the log is append-only, so what is committed up to that position never
    /// changes, and no read transaction stays open long enough to hold up the writer's map
    /// growth (which waits for this process's read transactions to end).
    ///
    /// Never stops at the first problem; lists each. LMDB errors while reading become
    /// `.unreadable` items.
    /// - Complexity: O(n) in events; memory about 40 bytes per event.
    public func verify() throws -> VerifyReport {
        var report = VerifyReport(directory: directory)
        do {
            try EventDecoder.with(environment.caches) { decoder in
                var checker = VerifyChecker(decoder: decoder)
                // Dictionaries in the same snapshot as the end: every event up to it was
                // committed after (or with) the dictionary it names.
                // First the structure of every page of this snapshot (pread, never the map): a
                // page damaged since the log was opened must not crash the walk below.
                let end = try environment.read { txn -> UInt64? in
                    do {
                        _ = try environment.checkPages(txn.txn)
                    } catch let error as EventLogError where error.damage == .damagedPage || error.damage == .noValidMetaPage {
                        report.problems.append(.init(kind: .damagedPage, position: nil, stream: nil,
                                                     message: error.message, page: error.page))
                        return nil
                    }
                    checker.checkDictionaries(txn, &report)
                    do {
                        checker.fold = try txn.foldState()
                    } catch let error as EventLogError {
                        // Without it the tail cannot be told from missing index entries:
                        // check the envelopes and names as if all were folded.
                        report.problems.append(.init(kind: .unreadable, position: nil, stream: nil,
                                                     message: error.message))
                    }
                    return try txn.lastPosition().rawValue
                }
                guard let end else { return }
                // The index covers the events up to the fold position of this snapshot (a
                // later fold may add more while verify reads; those are not checked).
                try checker.readIndex(through: min(end, checker.fold?.position ?? .max), environment, &report)
                try checker.checkEvents(through: end, environment, &report)
                checker.compareIndex(&report)
                for kind in NameKind.allCases { try checker.checkNames(kind, environment, &report) }
            }
        } catch let error as LMDBError {
            report.problems.append(.init(kind: .unreadable, position: nil, stream: nil, message: "\(error)"))
        } catch let error as EventLogError where error.code == .lmdb || error.code == .corrupt {
            report.problems.append(.init(kind: .unreadable, position: error.position, stream: error.stream,
                                         message: error.message))
        }
        logger.info(
            "eventlog.verify.done",
            metadata: ["eventlog.events": "\(report.eventsChecked)", "eventlog.problems": "\(report.problems.count)"])
        return report
    }
}

private struct VerifyChecker {
    /// Events checked per read transaction.
    static let eventsPerTransaction = 2048
    /// Stream index records (of up to 64 entries) read per read transaction, at least one stream.
    static let indexRecordsPerTransaction = 1024

    let decoder: EventDecoder
    var dictionaries: Set<UInt32> = []
    /// Positions of each stream's events, in position order, as the envelopes say.
    var streamPositions: [UInt32: [UInt64]] = [:]
    var damaged: Set<UInt64> = []
    /// Stream names by number; nil when the number has no name.
    var streamNames: [UInt32: StreamID?] = [:]
    /// Each stream's index entries (revision, position) up to the end position, in index order.
    var indexEntries: [UInt32: [(revision: UInt64, position: UInt64)]] = [:]
    /// What the index says each position holds: (stream number, revision).
    var indexOwner: [UInt64: (stream: UInt32, revision: UInt64)] = [:]
    /// Where the event walk goes on in the next read transaction.
    var nextExpected: UInt64 = 1
    var nextRevision: [UInt32: UInt64] = [:]
    var lastEventKey: [UInt8]?
    /// The fold record when verify began; nil: the log is wholly folded (format 1). Events
    /// after its position and names numbered after its numbers have no derived entries yet.
    var fold: FoldState?

    init(decoder: EventDecoder) {
        self.decoder = decoder
    }

    mutating func checkDictionaries(_ txn: ReadTransaction, _ report: inout VerifyReport) {
        do {
            let cursor = try txn.cursor(txn.dbs.dictionaries)
            var entry = try cursor.get(MDB_FIRST)
            while let current = entry {
                report.dictionariesChecked += 1
                if let id = Keys.readBigEndian(current.key, UInt32.self) {
                    do {
                        let record = try DictionaryRecord.decode(id: id, current.value)
                        _ = try CompressionDictionary(id: id, bytes: record.bytes, level: 3)
                        dictionaries.insert(id)
                    } catch {
                        report.problems.append(.init(kind: .damagedDictionary, position: nil, stream: nil,
                                                     message: "dictionary \(id): \(error)"))
                    }
                } else {
                    report.problems.append(.init(kind: .damagedDictionary, position: nil, stream: nil,
                                                 message: "a dictionary key of \(current.key.count) bytes"))
                }
                entry = try cursor.get(MDB_NEXT)
            }
        } catch {
            report.problems.append(.init(kind: .unreadable, position: nil, stream: nil,
                                         message: "dictionaries: \(error)"))
        }
    }

    /// The stream's name, looked up once; names never change once committed.
    mutating func stream(_ number: UInt32, _ txn: ReadTransaction) -> StreamID? {
        if let known = streamNames[number] { return known }
        let name = (try? txn.name(of: number, kind: .stream)).map { StreamID($0) }
        streamNames[number] = .some(name)
        return name
    }

    /// A name already looked up while reading the index or the events.
    func knownStream(_ number: UInt32) -> StreamID? {
        streamNames[number] ?? nil
    }

    mutating func checkEvents(through end: UInt64, _ environment: LMDBEnvironment, _ report: inout VerifyReport)
        throws
    {
        var finished = false
        while !finished {
            finished = try environment.read { txn in try checkEventChunk(through: end, txn, &report) }
        }
    }

    /// Checks up to `eventsPerTransaction` events after the last key seen; true once past `end`.
    private mutating func checkEventChunk(through end: UInt64, _ txn: ReadTransaction, _ report: inout VerifyReport)
        throws -> Bool
    {
        let cursor = try txn.cursor(txn.dbs.events)
        var entry: (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)?
        if let resume = lastEventKey {
            // Resume after the last key seen, whatever its shape (a damaged key too).
            entry = try resume.withUnsafeBytes { try cursor.get(MDB_SET_RANGE, key: $0) }
            if let found = entry, found.key.elementsEqual(resume) { entry = try cursor.get(MDB_NEXT) }
        } else {
            entry = try cursor.get(MDB_FIRST)
        }
        var checked = 0
        while let current = entry {
            if checked == Self.eventsPerTransaction { return false }
            // Keys must increase: a resume seek that lands before the last key seen (keys out
            // of order across pages) would check the same events again and again.
            if let last = lastEventKey, !Self.ascending(last, current.key) {
                report.problems.append(.init(
                    kind: .malformedEnvelope, position: nil, stream: nil,
                    message: "events: keys out of order after \(last.count)-byte key \(last.map { String($0, radix: 16) }.joined()); "
                        + "the rest of the events are not checked"))
                return true
            }
            lastEventKey = Array(current.key)
            checked += 1
            guard let raw = Keys.readBigEndian(current.key, UInt64.self) else {
                report.eventsChecked += 1
                report.problems.append(.init(kind: .malformedEnvelope, position: nil, stream: nil,
                                             message: "events: a key of \(current.key.count) bytes is not a position"))
                entry = try cursor.get(MDB_NEXT)
                continue
            }
            // Appended after verify began: not part of what it checks.
            if raw > end { return true }
            report.eventsChecked += 1
            let position = LogPosition(raw)
            if raw != nextExpected {
                report.problems.append(.init(
                    kind: .positionGap, position: LogPosition(nextExpected), stream: nil,
                    message: raw > nextExpected
                        ? "positions \(nextExpected)...\(raw - 1) are missing"
                        : "position \(raw) follows \(nextExpected - 1)"))
            }
            nextExpected = raw + 1
            report.lastPosition = position
            check(position, current.value, txn, &report)
            entry = try cursor.get(MDB_NEXT)
        }
        return true
    }

    /// LMDB's default key order: bytes, then length.
    static func ascending(_ previous: [UInt8], _ key: UnsafeRawBufferPointer) -> Bool {
        for (a, b) in zip(previous, key) where a != b { return a < b }
        return previous.count < key.count
    }

    private mutating func check(
        _ position: LogPosition, _ bytes: UnsafeRawBufferPointer, _ txn: ReadTransaction, _ report: inout VerifyReport
    ) {
        let envelope: Envelope
        do {
            envelope = try Envelope.decode(position: position, bytes).envelope
        } catch {
            damaged.insert(position.rawValue)
            let kind: VerifyReport.Problem.Kind = error.damage == .checksumMismatch ? .checksumMismatch : .malformedEnvelope
            // The index still says whose event this was: name the stream, keep its revisions in step.
            let owner = indexOwner[position.rawValue]
            if let owner { nextRevision[owner.stream] = owner.revision + 1 }
            report.problems.append(.init(kind: kind, position: position,
                                         stream: owner.flatMap { stream($0.stream, txn) }, message: error.message))
            return
        }
        let streamID = stream(envelope.streamNumber, txn)
        if streamID == nil {
            report.problems.append(.init(kind: .missingName, position: position, stream: nil,
                                         message: "stream number \(envelope.streamNumber) has no name"))
        }
        if envelope.dictionaryID != 0 && !dictionaries.contains(envelope.dictionaryID) {
            report.problems.append(.init(kind: .missingDictionary, position: position, stream: streamID,
                                         message: "dictionary \(envelope.dictionaryID) does not exist"))
            damaged.insert(position.rawValue)
        } else {
            do {
                _ = try decoder.decode(position: position, bytes, in: txn)
            } catch let error as EventLogError {
                let kind: VerifyReport.Problem.Kind
                switch error.damage {
                case .missingName: kind = .missingName
                case .checksumMismatch: kind = .checksumMismatch
                case .truncatedFile: kind = .truncatedFile
                case .damagedPage: kind = .damagedPage
                case .malformedEnvelope, .noValidMetaPage, nil: kind = .malformedEnvelope
                }
                report.problems.append(.init(kind: kind, position: position, stream: streamID, message: error.message))
            } catch {
                report.problems.append(.init(kind: .malformedEnvelope, position: position, stream: streamID,
                                             message: "\(error)"))
            }
        }
        let revision = nextRevision[envelope.streamNumber] ?? 0
        if envelope.revision != revision {
            report.problems.append(.init(
                kind: .revisionGap, position: position, stream: streamID,
                message: "revision \(envelope.revision) where the stream's next revision is \(revision)"))
        }
        // The same stream listing this position under another revision: index chunks out of
        // order hold the same positions as the envelopes but answer reads by revision wrongly.
        // (An index entry of another stream is reported as dangling by `compareIndex`.)
        if let owner = indexOwner[position.rawValue], owner.stream == envelope.streamNumber,
            owner.revision != envelope.revision
        {
            report.problems.append(.init(
                kind: .indexMismatch, position: position, stream: streamID,
                message: "the stream index lists position \(position) as revision \(owner.revision); "
                    + "its envelope says revision \(envelope.revision)"))
        }
        nextRevision[envelope.streamNumber] = envelope.revision + 1
        // Only folded events must be in the stream index.
        if position.rawValue <= fold?.position ?? .max {
            streamPositions[envelope.streamNumber, default: []].append(position.rawValue)
        }
    }

    /// Reads each stream's index entries naming positions up to `end`, a few streams per read
    /// transaction (one whole stream at least).
    mutating func readIndex(through end: UInt64, _ environment: LMDBEnvironment, _ report: inout VerifyReport)
        throws
    {
        // Every loop over stored data has a bound: each record is read at most twice (once by
        // its stream's walk, once when seeking to the next stream), whatever the keys say.
        let records = try environment.read { try $0.entryCount($0.dbs.streamIndex) }
        indexStepLimit = 2 * records + 16
        var nextStream: UInt32? = 0
        while let first = nextStream {
            nextStream = try environment.read { txn in try readIndexChunk(from: first, through: end, txn, &report) }
        }
    }

    /// Where the index walk stopped: the last stream number read, and records stepped over.
    var lastIndexedStream: UInt32?
    var indexSteps = 0
    var indexStepLimit = 0

    /// Reads streams from number `first`; returns the number to go on from, nil when done.
    private mutating func readIndexChunk(
        from first: UInt32, through end: UInt64, _ txn: ReadTransaction, _ report: inout VerifyReport
    ) throws -> UInt32? {
        let cursor = try txn.cursor(txn.dbs.streamIndex)
        var entry = try StreamIndex.key(first, 0).withUnsafeBytes { try cursor.get(MDB_SET_RANGE, key: $0) }
        var records = 0
        while let current = entry {
            indexSteps += 1
            guard indexSteps <= indexStepLimit else {
                report.problems.append(.init(
                    kind: .danglingIndexEntry, position: nil, stream: nil,
                    message: "stream index: more than \(indexStepLimit) steps over its records (keys out of order?); "
                        + "the rest of the index is not checked"))
                return nil
            }
            guard current.key.count == 8,
                let number = Keys.readBigEndian(UnsafeRawBufferPointer(rebasing: current.key[0..<4]), UInt32.self)
            else {
                report.problems.append(.init(kind: .danglingIndexEntry, position: nil, stream: nil,
                                             message: "stream index: a key of \(current.key.count) bytes"))
                entry = try cursor.get(MDB_NEXT)
                continue
            }
            // A seek that lands on a stream already read: the keys are out of order, and
            // seeking on would go round forever.
            if let last = lastIndexedStream, number <= last {
                report.problems.append(.init(
                    kind: .danglingIndexEntry, position: nil, stream: nil,
                    message: "stream index: stream number \(number) follows stream number \(last) "
                        + "(keys out of order); the rest of the index is not checked"))
                return nil
            }
            if records >= Self.indexRecordsPerTransaction { return number }
            lastIndexedStream = number
            var entries: [(revision: UInt64, position: UInt64)] = []
            do {
                try txn.forEachPosition(ofStream: number, from: 0) { revision, position in
                    if revision % StreamIndex.chunkSize == 0 {
                        records += 1
                        indexSteps += 1
                        if indexSteps > indexStepLimit { return false }
                    }
                    // Entries of events appended after verify began are not checked.
                    guard position.rawValue <= end else { return true }
                    entries.append((revision, position.rawValue))
                    indexOwner[position.rawValue] = (number, revision)
                    return true
                }
            } catch let error as EventLogError {
                report.problems.append(.init(kind: .danglingIndexEntry, position: nil, stream: stream(number, txn),
                                             message: error.message))
            }
            if !entries.isEmpty {
                report.streamsChecked += 1
                indexEntries[number] = entries
                _ = stream(number, txn)
            }
            guard number < .max else { return nil }
            // On to the next stream's first chunk.
            entry = try StreamIndex.key(number + 1, 0).withUnsafeBytes { try cursor.get(MDB_SET_RANGE, key: $0) }
        }
        return nil
    }

    /// Names checked per read transaction.
    static let namesPerTransaction = 4096

    /// Checks that numbers of `kind` run 1, 2, 3… and that each name's hash entry in `names`
    /// lists its number, and that every `names` entry of `kind` names a number whose name
    /// hashes to it. Decoding cannot see a damaged name (it is just other text), so this is
    /// what finds one.
    mutating func checkNames(_ kind: NameKind, _ environment: LMDBEnvironment, _ report: inout VerifyReport) throws {
        var resume: UInt32 = 0
        var finished = false
        while !finished {
            finished = try environment.read { txn in
                let cursor = try txn.cursor(txn.dbs.numbers(kind))
                let hashes = try txn.cursor(txn.dbs.names)
                var entry = try Keys.bigEndian(resume + 1).withUnsafeBytes { try cursor.get(MDB_SET_RANGE, key: $0) }
                var checked = 0
                while let current = entry {
                    if checked == Self.namesPerTransaction { return false }
                    checked += 1
                    guard let number = Keys.readBigEndian(current.key, UInt32.self), number > resume else {
                        report.problems.append(.init(
                            kind: .damagedName, position: nil, stream: nil,
                            message: "\(kind.label) names: a key of \(current.key.count) bytes after number \(resume)"))
                        return true
                    }
                    if number != resume + 1 {
                        report.problems.append(.init(
                            kind: .damagedName, position: nil, stream: nil,
                            message: "\(kind.label) numbers \(resume + 1)...\(number - 1) have no name"))
                    }
                    resume = number
                    let name = String(decoding: current.value, as: UTF8.self)
                    // A name numbered after the fold has no hash entry yet.
                    let folded = number <= fold?.numbers(kind) ?? .max
                    if folded, !(try Self.hashEntry(hashes, kind.hashKey(name), lists: number)) {
                        report.problems.append(.init(
                            kind: .damagedName, position: nil, stream: kind == .stream ? StreamID(name) : nil,
                            message: "\(kind.label) number \(number) is named \"\(name.prefix(80))\", "
                                + "but the names table does not list it under that name's hash (damaged name)"))
                    }
                    entry = try cursor.get(MDB_NEXT)
                }
                return true
            }
        }
        // The other way: every hash entry of this kind names an existing number with a
        // matching name. One pass; a few entries per stream, so also in bounded transactions.
        var resumeKey = [kind.rawValue]
        var first = true
        finished = false
        while !finished {
            finished = try environment.read { txn in
                let hashes = try txn.cursor(txn.dbs.names)
                var entry = try resumeKey.withUnsafeBytes { try hashes.get(MDB_SET_RANGE, key: $0) }
                if !first, let found = entry, found.key.elementsEqual(resumeKey) {
                    entry = try hashes.get(MDB_NEXT_NODUP)
                }
                first = false
                var checked = 0
                while let current = entry, current.key.first == kind.rawValue {
                    if checked == Self.namesPerTransaction { return false }
                    checked += 1
                    guard VerifyChecker.ascending(resumeKey, current.key) || resumeKey == [kind.rawValue] else {
                        report.problems.append(.init(kind: .damagedName, position: nil, stream: nil,
                                                     message: "names: keys out of order"))
                        return true
                    }
                    resumeKey = Array(current.key)
                    let duplicates = try hashes.duplicateCount()
                    var value: UnsafeRawBufferPointer? = current.value
                    for index in 0..<duplicates {
                        if index > 0 { value = try hashes.get(MDB_NEXT_DUP)?.value }
                        guard let value else { break }
                        let number = Keys.readBigEndian(value, UInt32.self)
                        let name = try number.flatMap { try txn.name(of: $0, kind: kind) }
                        if number == nil || name == nil || !kind.hashKey(name!).elementsEqual(current.key) {
                            report.problems.append(.init(
                                kind: .damagedName, position: nil, stream: nil,
                                message: "names: a \(kind.label) hash entry lists "
                                    + (number.map { "number \($0)" } ?? "a value of \(value.count) bytes")
                                    + (name == nil ? ", which has no name" : ", whose name hashes elsewhere")))
                        }
                    }
                    entry = try hashes.get(MDB_NEXT_NODUP)
                }
                return true
            }
        }
    }

    /// Whether the duplicates under `key` in `names` include `number`.
    static func hashEntry(_ cursor: Cursor, _ key: [UInt8], lists number: UInt32) throws -> Bool {
        var entry = try key.withUnsafeBytes { try cursor.get(MDB_SET_KEY, key: $0) }
        guard entry != nil else { return false }
        let duplicates = try cursor.duplicateCount()
        for _ in 0..<duplicates {
            guard let current = entry else { return false }
            if Keys.readBigEndian(current.value, UInt32.self) == number { return true }
            entry = try cursor.get(MDB_NEXT_DUP)
        }
        return false
    }

    mutating func compareIndex(_ report: inout VerifyReport) {
        for (number, entries) in indexEntries.sorted(by: { $0.key < $1.key }) {
            compare(number, index: entries, envelopes: streamPositions[number] ?? [], &report)
        }
        for (number, positions) in streamPositions.sorted(by: { $0.key < $1.key }) where indexEntries[number] == nil {
            report.problems.append(.init(
                kind: .missingIndexEntry, position: positions.first.map { LogPosition($0) },
                stream: knownStream(number),
                message: "\(positions.count) event(s) of stream number \(number) have no index entries"))
        }
    }

    private func compare(
        _ number: UInt32, index: [(revision: UInt64, position: UInt64)], envelopes: [UInt64],
        _ report: inout VerifyReport
    ) {
        let name = knownStream(number)
        if name == nil {
            report.problems.append(.init(kind: .missingName, position: nil, stream: nil,
                                         message: "indexed stream number \(number) has no name"))
        }
        // Damaged envelopes cannot say their stream; their index entries are not dangling.
        let indexSet = Set(index.map(\.position))
        let envelopeSet = Set(envelopes)
        for (revision, position) in index where !envelopeSet.contains(position) && !damaged.contains(position) {
            report.problems.append(.init(
                kind: .danglingIndexEntry, position: LogPosition(position), stream: name,
                message: "index entry for revision \(revision) names position \(position), which holds no event of this stream"))
        }
        for position in envelopes where !indexSet.contains(position) {
            report.problems.append(.init(
                kind: .missingIndexEntry, position: LogPosition(position), stream: name,
                message: "the event at position \(position) is missing from its stream's index"))
        }
    }
}
