import CLMDB

/// The stream index: which positions hold a stream's events, in revision order.
///
/// Key: stream number (UInt32 BE) + chunk number (UInt32 BE); value: the positions of
/// revisions chunk × 64 ..< chunk × 64 + 64 as varints, the first absolute, each next as the
/// distance from the one before. Streams often hold a handful of events, so what a stream
/// costs before its events matters more than the entries: one small record per 64 revisions,
/// instead of LMDB's duplicate sub-pages (a 16-byte header each, half-empty pages).
enum StreamIndex {
    static let chunkSize: UInt64 = 64

    static func key(_ stream: UInt32, _ chunk: UInt32) -> [UInt8] {
        Keys.bigEndian(stream) + Keys.bigEndian(chunk)
    }

    static func encode(_ positions: [UInt64]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(positions.count * 3 + 8)
        var previous: UInt64 = 0
        for position in positions {
            var value = position - previous
            previous = position
            while value >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
                value >>= 7
            }
            bytes.append(UInt8(value))
        }
        return bytes
    }

    /// - Throws: `.corrupt` naming the stream number and chunk when the bytes are not an
    ///   increasing run of at most `chunkSize` positions.
    static func decode(_ bytes: UnsafeRawBufferPointer, stream: UInt32, chunk: UInt32) throws -> [UInt64] {
        var reader = ByteReader(bytes)
        var positions: [UInt64] = []
        var previous: UInt64 = 0
        do {
            while reader.offset < bytes.count {
                // Bounded by what a chunk may hold, not by the stored length (which damage can
                // make megabytes long).
                guard positions.count < Int(chunkSize) else {
                    throw EventLogError(
                        .corrupt, "stream index of stream number \(stream), chunk \(chunk): more than \(chunkSize) entries "
                            + "in \(bytes.count) bytes")
                }
                let delta = try reader.varint("streamIndex")
                guard delta > 0 || positions.isEmpty, previous <= UInt64.max - delta else {
                    throw ByteReader.Failure.overlong(field: "streamIndex")
                }
                previous += delta
                positions.append(previous)
            }
        } catch {
            throw EventLogError(.corrupt, "stream index of stream number \(stream), chunk \(chunk): damaged (\(error))")
        }
        guard !positions.isEmpty, positions.count <= Int(chunkSize), positions[0] > 0 else {
            throw EventLogError(
                .corrupt, "stream index of stream number \(stream), chunk \(chunk): \(positions.count) entries")
        }
        return positions
    }
}

extension ReadTransaction {
    /// How many events the stream holds: the stream index's count, or after the last of its
    /// events in the unfolded tail.
    func eventCount(streamNumber: UInt32) throws -> UInt64 {
        if let last = try tailEntries(ofStream: streamNumber).last { return last.revision + 1 }
        return try indexedEventCount(streamNumber: streamNumber)
    }

    /// How many events the stream index lists for the stream: full chunks before its last
    /// one, plus the last one's entries.
    func indexedEventCount(streamNumber: UInt32) throws -> UInt64 {
        let cursor = try self.cursor(dbs.streamIndex)
        let seek = StreamIndex.key(streamNumber, .max)
        var entry = try seek.withUnsafeBytes { try cursor.get(MDB_SET_RANGE, key: $0) }
        if entry == nil {
            entry = try cursor.get(MDB_LAST)
        } else if let found = entry, !found.key.elementsEqual(seek) {
            entry = try cursor.get(MDB_PREV)
        }
        guard let last = entry, last.key.count == 8,
            Keys.readBigEndian(UnsafeRawBufferPointer(rebasing: last.key[0..<4]), UInt32.self) == streamNumber,
            let chunk = Keys.readBigEndian(UnsafeRawBufferPointer(rebasing: last.key[4..<8]), UInt32.self)
        else { return 0 }
        let entries = try StreamIndex.decode(last.value, stream: streamNumber, chunk: chunk).count
        return UInt64(chunk) * StreamIndex.chunkSize + UInt64(entries)
    }

    /// Calls `body(revision, position)` for each entry of a stream from revision `from`: the
    /// stream index's, then the unfolded tail's; stops when it returns false.
    /// - Throws: `.corrupt` when a chunk is missing, damaged, or short before the last.
    func forEachPosition(ofStream number: UInt32, from: UInt64, _ body: (UInt64, LogPosition) throws -> Bool) throws {
        var next = from
        let indexed = try forEachIndexedPosition(ofStream: number, from: from) { revision, position in
            next = revision + 1
            return try body(revision, position)
        }
        guard indexed else { return }
        for entry in try tailEntries(ofStream: number) where entry.revision >= next {
            guard try body(entry.revision, LogPosition(entry.position)) else { return }
        }
    }

    /// Calls `body(revision, position)` for each stream index entry of a stream from revision
    /// `from`; false when `body` stopped it.
    /// - Throws: `.corrupt` when a chunk is missing, damaged, or short before the last.
    @discardableResult
    func forEachIndexedPosition(ofStream number: UInt32, from: UInt64, _ body: (UInt64, LogPosition) throws -> Bool)
        throws -> Bool
    {
        let cursor = try self.cursor(dbs.streamIndex)
        var chunk = UInt32(clamping: from / StreamIndex.chunkSize)
        let first = StreamIndex.key(number, chunk)
        var entry = try first.withUnsafeBytes { try cursor.get(MDB_SET_KEY, key: $0) }
        var sawShortChunk = false
        while let current = entry {
            guard current.key.count == 8,
                Keys.readBigEndian(UnsafeRawBufferPointer(rebasing: current.key[0..<4]), UInt32.self) == number
            else { return true }
            let found = Keys.readBigEndian(UnsafeRawBufferPointer(rebasing: current.key[4..<8]), UInt32.self)
            guard found == chunk, !sawShortChunk else {
                throw EventLogError(
                    .corrupt, "stream index of stream number \(number): chunk \(found ?? 0) follows chunk \(chunk - 1) "
                        + (sawShortChunk ? "which is not full" : "(a chunk is missing)"))
            }
            let positions = try StreamIndex.decode(current.value, stream: number, chunk: chunk)
            sawShortChunk = positions.count < Int(StreamIndex.chunkSize)
            for (offset, position) in positions.enumerated() {
                let revision = UInt64(chunk) * StreamIndex.chunkSize + UInt64(offset)
                if revision < from { continue }
                guard try body(revision, LogPosition(position)) else { return false }
            }
            // Chunk numbers are UInt32: a damaged index naming the last one ends here.
            guard chunk < .max else { return true }
            chunk += 1
            entry = try cursor.get(MDB_NEXT)
        }
        return true
    }
}

extension WriteTransaction {
    /// Appends `positions` (increasing) to a stream whose index listed `count` events.
    func appendToStreamIndex(stream: UInt32, count: UInt64, positions: some Sequence<UInt64>) throws {
        var chunk = UInt32(count / StreamIndex.chunkSize)
        var entries: [UInt64] = []
        if count % StreamIndex.chunkSize != 0 {
            let key = StreamIndex.key(stream, chunk)
            guard let stored = try view.get(dbs.streamIndex, key) else {
                throw EventLogError(.corrupt, "stream index of stream number \(stream): chunk \(chunk) is missing")
            }
            entries = try StreamIndex.decode(stored, stream: stream, chunk: chunk)
        }
        for position in positions {
            if entries.count == Int(StreamIndex.chunkSize) {
                try put(dbs.streamIndex, StreamIndex.key(stream, chunk), StreamIndex.encode(entries))
                chunk += 1
                entries.removeAll(keepingCapacity: true)
            }
            entries.append(position)
        }
        try put(dbs.streamIndex, StreamIndex.key(stream, chunk), StreamIndex.encode(entries))
    }
}
