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
        }

        public var kind: Kind
        public var position: LogPosition?
        public var stream: StreamID?
        public var message: String

        public var description: String {
            var parts = [kind.rawValue]
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
            let kind: VerifyReport.Problem.Kind = error.message.contains("truncated") ? .truncatedFile : .unreadable
            report.problems.append(.init(kind: kind, position: nil, stream: nil, message: error.message))
            return report
        } catch let error as EventLogError where error.code == .lmdb {
            var report = VerifyReport(directory: directory)
            report.problems.append(.init(kind: .unreadable, position: nil, stream: nil, message: error.message))
            return report
        }
    }

    /// Checks every checksum, position continuity, that every stream index entry points to a
    /// matching envelope and every envelope has its index entry, that revisions are gap-free,
    /// and that every dictionary and interned name referenced exists. One read transaction: a
    /// consistent snapshot even while a writer appends.
    ///
    /// Never stops at the first problem; lists each. LMDB errors while reading become
    /// `.unreadable` items.
    /// - Complexity: O(n) in events; memory 8 bytes per event.
    public func verify() throws -> VerifyReport {
        var report = VerifyReport(directory: directory)
        do {
            try environment.read { txn in
                try EventDecoder.with(environment.caches) { decoder in
                    var checker = VerifyChecker(txn: txn, decoder: decoder)
                    checker.checkDictionaries(&report)
                    try checker.readIndex(&report)
                    try checker.checkEvents(&report)
                    checker.compareIndex(&report)
                }
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
    let txn: ReadTransaction
    let decoder: EventDecoder
    var dictionaries: Set<UInt32> = []
    /// Positions of each stream's events, in position order, as the envelopes say.
    var streamPositions: [UInt32: [UInt64]] = [:]
    var damaged: Set<UInt64> = []
    var streamNames: [UInt32: StreamID] = [:]
    /// Positions of each stream as its index lists them.
    var indexPositions: [UInt32: [UInt64]] = [:]
    /// What the index says each position holds: (stream number, revision).
    var indexOwner: [UInt64: (stream: UInt32, revision: UInt64)] = [:]

    init(txn: ReadTransaction, decoder: EventDecoder) {
        self.txn = txn
        self.decoder = decoder
    }

    mutating func checkDictionaries(_ report: inout VerifyReport) {
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

    mutating func stream(_ number: UInt32) -> StreamID? {
        if let known = streamNames[number] { return known }
        guard let name = try? txn.name(of: number, kind: .stream) else { return nil }
        streamNames[number] = StreamID(name)
        return StreamID(name)
    }

    mutating func checkEvents(_ report: inout VerifyReport) throws {
        let cursor = try txn.cursor(txn.dbs.events)
        var expected: UInt64 = 1
        var nextRevision: [UInt32: UInt64] = [:]
        var entry = try cursor.get(MDB_FIRST)
        while let current = entry {
            defer { report.eventsChecked += 1 }
            guard let raw = Keys.readBigEndian(current.key, UInt64.self) else {
                report.problems.append(.init(kind: .malformedEnvelope, position: nil, stream: nil,
                                             message: "events: a key of \(current.key.count) bytes is not a position"))
                entry = try cursor.get(MDB_NEXT)
                continue
            }
            let position = LogPosition(raw)
            if raw != expected {
                report.problems.append(.init(
                    kind: .positionGap, position: LogPosition(expected), stream: nil,
                    message: raw > expected
                        ? "positions \(expected)...\(raw - 1) are missing" : "position \(raw) follows \(expected - 1)"))
            }
            expected = raw + 1
            report.lastPosition = position
            check(position, current.value, &nextRevision, &report)
            entry = try cursor.get(MDB_NEXT)
        }
    }

    private mutating func check(
        _ position: LogPosition, _ bytes: UnsafeRawBufferPointer, _ nextRevision: inout [UInt32: UInt64],
        _ report: inout VerifyReport
    ) {
        let envelope: Envelope
        do {
            envelope = try Envelope.decode(position: position, bytes).envelope
        } catch {
            damaged.insert(position.rawValue)
            let kind: VerifyReport.Problem.Kind = error.message.contains("checksum") ? .checksumMismatch : .malformedEnvelope
            // The index still says whose event this was: name the stream, keep its revisions in step.
            let owner = indexOwner[position.rawValue]
            if let owner { nextRevision[owner.stream] = owner.revision + 1 }
            report.problems.append(.init(kind: kind, position: position, stream: owner.flatMap { stream($0.stream) },
                                         message: error.message))
            return
        }
        let streamID = stream(envelope.streamNumber)
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
                let kind: VerifyReport.Problem.Kind = error.message.contains("names table") ? .missingName : .malformedEnvelope
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
        nextRevision[envelope.streamNumber] = envelope.revision + 1
        streamPositions[envelope.streamNumber, default: []].append(position.rawValue)
    }

    mutating func readIndex(_ report: inout VerifyReport) throws {
        let cursor = try txn.cursor(txn.dbs.streamIndex)
        var entry = try cursor.get(MDB_FIRST)
        while let current = entry {
            guard current.key.count == 8,
                let number = Keys.readBigEndian(UnsafeRawBufferPointer(rebasing: current.key[0..<4]), UInt32.self)
            else {
                report.problems.append(.init(kind: .danglingIndexEntry, position: nil, stream: nil,
                                             message: "stream index: a key of \(current.key.count) bytes"))
                entry = try cursor.get(MDB_NEXT)
                continue
            }
            report.streamsChecked += 1
            var positions: [UInt64] = []
            do {
                try txn.forEachPosition(ofStream: number, from: 0) { revision, position in
                    positions.append(position.rawValue)
                    indexOwner[position.rawValue] = (number, revision)
                    return true
                }
            } catch let error as EventLogError {
                report.problems.append(.init(kind: .danglingIndexEntry, position: nil, stream: stream(number),
                                             message: error.message))
            }
            indexPositions[number] = positions
            // On to the next stream's first chunk.
            let next = StreamIndex.key(number &+ 1, 0)
            entry = number == .max ? nil : try next.withUnsafeBytes { try cursor.get(MDB_SET_RANGE, key: $0) }
        }
    }

    mutating func compareIndex(_ report: inout VerifyReport) {
        for (number, positions) in indexPositions.sorted(by: { $0.key < $1.key }) {
            compare(number, index: positions, envelopes: streamPositions[number] ?? [], &report)
        }
        for (number, positions) in streamPositions.sorted(by: { $0.key < $1.key }) where indexPositions[number] == nil {
            report.problems.append(.init(
                kind: .missingIndexEntry, position: positions.first.map { LogPosition($0) }, stream: stream(number),
                message: "\(positions.count) event(s) of stream number \(number) have no index entries"))
        }
    }

    private mutating func compare(_ number: UInt32, index: [UInt64], envelopes: [UInt64], _ report: inout VerifyReport) {
        let name = stream(number)
        if name == nil {
            report.problems.append(.init(kind: .missingName, position: nil, stream: nil,
                                         message: "indexed stream number \(number) has no name"))
        }
        // Damaged envelopes cannot say their stream; their index entries are not dangling.
        let indexSet = Set(index)
        let envelopeSet = Set(envelopes)
        for (revision, position) in index.enumerated() where !envelopeSet.contains(position) && !damaged.contains(position) {
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
