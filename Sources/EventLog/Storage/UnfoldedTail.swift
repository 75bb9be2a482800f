import CLMDB
import Synchronization

/// One event of the unfolded tail as the stream index would list it.
struct TailEntry: Sendable, Equatable {
    var revision: UInt64
    var position: UInt64
}

/// What this process's readers know of the unfolded tail (see `FoldState`): the stream
/// entries of the events after the fold position, and the names numbered after the folded
/// numbers, read once and extended as the log grows.
///
/// Events and names never change once committed, so what is cached stays true; each cache is
/// built for one fold record (`base`) and replaced once a snapshot shows a newer fold. A
/// snapshot older than the cache (an earlier fold) reads its tail without the cache; every
/// answer is cut at the snapshot's own last position or number.
final class TailCache: Sendable {
    struct Streams: Sendable {
        var base: UInt64
        var through: UInt64
        var entries: [UInt32: [TailEntry]] = [:]
    }

    struct Names: Sendable {
        var base: UInt32
        var through: UInt32
        var numbers: [String: UInt32] = [:]
    }

    let streams = Mutex<Streams?>(nil)
    let names = Mutex<[NameKind: Names]>([:])
}

extension ReadTransaction {
    /// Reads the stream entries of positions `first...last` (the tail): each envelope is
    /// checked (checksum, structure) and says its stream and revision.
    /// - Throws: `.corrupt` naming the position of a damaged or missing envelope.
    func readTail(from first: UInt64, through last: UInt64, into entries: inout [UInt32: [TailEntry]]) throws {
        try forEachTailEnvelope(from: first, through: last) { position, envelope in
            entries[envelope.streamNumber, default: []].append(TailEntry(revision: envelope.revision, position: position))
        }
    }

    /// Calls `body(position, envelope)` for positions `first...last`, each envelope checked.
    /// - Throws: `.corrupt` naming the position of a damaged or missing envelope.
    func forEachTailEnvelope(from first: UInt64, through last: UInt64, _ body: (UInt64, Envelope) throws -> Void)
        throws
    {
        guard first <= last else { return }
        let cursor = try self.cursor(dbs.events)
        var key = first.bigEndian
        var entry = try withUnsafeBytes(of: &key) { try cursor.get(MDB_SET_RANGE, key: $0) }
        var expected = first
        // Bounded by the positions asked for, whatever the keys say.
        while let current = entry, expected <= last {
            guard let position = Keys.readBigEndian(current.key, UInt64.self), position == expected else { break }
            try body(position, try Envelope.decode(position: LogPosition(position), current.value).envelope)
            expected += 1
            entry = try cursor.get(MDB_NEXT)
        }
        guard expected > last else {
            throw EventLogError(
                .corrupt, "events: position \(expected) of the unfolded tail is missing", position: LogPosition(expected))
        }
    }

    /// The unfolded tail's entries of stream `number` in this snapshot (empty for the writer's
    /// own view, which knows its tail, and for a log without a tail).
    func tailEntries(ofStream number: UInt32) throws -> [TailEntry] {
        guard let tail, let fold = try foldState() else { return [] }
        let last = try lastPosition().rawValue
        guard last > fold.position else { return [] }
        let found: [TailEntry]? = try tail.streams.withLock { cache throws -> [TailEntry]? in
            if cache == nil || cache!.base < fold.position {
                cache = TailCache.Streams(base: fold.position, through: fold.position)
            }
            guard cache!.base == fold.position else { return nil }
            if cache!.through < last {
                var more: [UInt32: [TailEntry]] = [:]
                try readTail(from: cache!.through + 1, through: last, into: &more)
                for (stream, entries) in more { cache!.entries[stream, default: []].append(contentsOf: entries) }
                cache!.through = last
            }
            return cache!.entries[number] ?? []
        }
        if let found { return found.filter { $0.position <= last } }
        // A snapshot from before the fold the cache was built for.
        var entries: [UInt32: [TailEntry]] = [:]
        try readTail(from: fold.position + 1, through: last, into: &entries)
        return entries[number] ?? []
    }

    /// The number of `name` among the names of `kind` numbered after the fold (readers only).
    func tailNumber(of name: String, kind: NameKind) throws -> UInt32? {
        guard let tail, let fold = try foldState() else { return nil }
        let base = fold.numbers(kind)
        let last = try lastNumber(kind: kind)
        guard last > base else { return nil }
        let cached: UInt32?? = try tail.names.withLock { table throws -> UInt32?? in
            var names = table[kind] ?? TailCache.Names(base: base, through: base)
            if names.base < base { names = TailCache.Names(base: base, through: base) }
            guard names.base == base else { return nil }
            if names.through < last {
                try readNames(kind, after: names.through, through: last) { number, text in
                    names.numbers[text] = number
                }
                names.through = last
            }
            table[kind] = names
            return .some(names.numbers[name].flatMap { $0 <= last ? $0 : nil })
        }
        if let cached { return cached }
        var found: UInt32?
        try readNames(kind, after: base, through: last) { number, text in
            if found == nil && text == name { found = number }
        }
        return found
    }

    /// Calls `body(number, name)` for the names of `kind` numbered `after + 1 ... last`.
    private func readNames(
        _ kind: NameKind, after: UInt32, through last: UInt32, _ body: (UInt32, String) throws -> Void
    ) throws {
        let cursor = try self.cursor(dbs.numbers(kind))
        var entry = try Keys.bigEndian(after + 1).withUnsafeBytes { try cursor.get(MDB_SET_RANGE, key: $0) }
        var steps: UInt32 = 0
        // Bounded by the numbers asked for.
        while let current = entry, steps < last - after {
            steps += 1
            guard let number = Keys.readBigEndian(current.key, UInt32.self), number > after else {
                throw EventLogError(.corrupt, "\(kind.label) names: a key of \(current.key.count) bytes after \(after)")
            }
            if number > last { return }
            try body(number, String(decoding: current.value, as: UTF8.self))
            entry = try cursor.get(MDB_NEXT)
        }
    }
}
