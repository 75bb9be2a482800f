import CLMDB
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The named LMDB databases of a log (see docs/log-format.md).
struct Databases: Sendable {
    /// position (UInt64 big-endian) → envelope.
    var events: MDB_dbi
    /// stream number + chunk (UInt32 big-endian each) → varint positions (see `StreamIndex`).
    var streamIndex: MDB_dbi
    /// kind byte + FNV-1a 64 of the name (big-endian) → numbers (UInt32 big-endian),
    /// `MDB_DUPSORT|MDB_DUPFIXED` (a hash collision is two duplicates): finds interned strings.
    var names: MDB_dbi
    /// number (UInt32 big-endian) → UTF-8 name, one database per kind, written with `MDB_APPEND`.
    var streamNames: MDB_dbi
    var eventTypeNames: MDB_dbi
    var actorNames: MDB_dbi
    /// dictionary id (UInt32 big-endian) → dictionary record.
    var dictionaries: MDB_dbi
    /// UTF-8 key → value: `StateWrite`s.
    var state: MDB_dbi
    /// Format marker and counters.
    var meta: MDB_dbi

    static let names: [(name: String, flags: Int32)] = [
        ("events", 0), ("streamIndex", 0), ("names", MDB_DUPSORT | MDB_DUPFIXED),
        ("streamNames", 0), ("eventTypeNames", 0), ("actorNames", 0), ("dictionaries", 0), ("state", 0), ("meta", 0),
    ]

    /// The flags `PageCheck` expects each database record to hold.
    static let expectedFlags: [String: UInt16] = Dictionary(
        uniqueKeysWithValues: names.map { ($0.name, UInt16(truncatingIfNeeded: $0.flags)) })

    /// The number → name database of `kind`.
    func numbers(_ kind: NameKind) -> MDB_dbi {
        switch kind {
        case .stream: streamNames
        case .eventType: eventTypeNames
        case .actor: actorNames
        }
    }
}

/// One LMDB environment (`MDB_env`), the single owner of the handle; closed in `deinit`.
///
/// A process opens an environment only once (`lmdb.h`: "Do not have open an LMDB database
/// twice in the same process at the same time"), so `shared(directory:...)` hands out the
/// instance already open for a directory. The environment is opened with `MDB_NOTLS`, so a
/// read transaction is not tied to its thread and many can be open at once.
///
/// Map size changes (`mdb_env_set_mapsize`) may only happen while this process has no
/// transaction open; `resizeLock` guards that: read transactions hold it shared, resizing
/// holds it exclusive.
final class LMDBEnvironment: @unchecked Sendable {
    // @unchecked Sendable: `handle` is used under LMDB's own rules (MDB_NOTLS read txns from any
    // thread, one write txn at a time on the writer thread), map changes under `resizeLock`,
    // and the mutable caches are behind Mutexes.
    let handle: OpaquePointer
    let directory: String
    let readOnly: Bool
    private(set) var dbs: Databases
    private let resizeLock: UnsafeMutablePointer<pthread_rwlock_t>
    /// Wakes tails when the log changes (in-process commits and, via inotify, other processes).
    let changes = ChangeNotifier()
    /// Decoding caches shared by the readers of this process.
    let caches = ReaderCaches()
    /// The unfolded tail as this process's readers have read it.
    let tail = TailCache()
    /// Times a write transaction of this process met `MDB_MAP_FULL` (tests and stats).
    let mapFullCount = Atomic<Int>(0)
    /// Tests only: an error code every commit of the writer fails with (sticky, like a panic).
    let injectedCommitError = Mutex<Int32?>(nil)
    /// Tests only: an error code every fold of the writer fails with.
    let injectedFoldError = Mutex<Int32?>(nil)
    /// Folds of the unfolded tail committed by this process's writer (tests and stats).
    let foldCount = Atomic<Int>(0)
    /// Folds that failed and stopped folding (tests and stats).
    let foldFailureCount = Atomic<Int>(0)
    /// Set while the writer waits to grow the map ahead of need: new read transactions hold
    /// back briefly so a steady stream of them cannot keep the writer out.
    private let growthPending = Atomic<Bool>(false)

    static let dataFileName = "data.mdb"
    private static let registry = Mutex<[String: WeakEnvironment]>([:])

    /// Opens (or returns the already open) environment for `directory`.
    ///
    /// - Parameters:
    ///   - create: create the directory and the databases if missing (the writer); otherwise
    ///     the log must exist.
    ///   - mapSizeBytes: the minimum map size; 0 keeps the size recorded in the file.
    /// - Throws: `EventLogError` `.notFound` when there is no log and `create` is false, `.lmdb`
    ///   when liblmdb refuses, `.corrupt` when the data file is shorter than its own meta page says.
    static func shared(directory: String, create: Bool, mapSizeBytes: Int) throws -> LMDBEnvironment {
        if create {
            try makeDirectory(directory)
        }
        let canonical = canonicalPath(directory)
        let dataPath = canonical + "/" + dataFileName
        if !create && access(dataPath, F_OK) != 0 {
            throw EventLogError(.notFound, "no event log in \(directory): \(dataFileName) is missing")
        }
        return try registry.withLock { table in
            if let existing = table[canonical]?.environment {
                if create && existing.readOnly {
                    throw EventLogError(.invalidInput, "\(directory) is open read-only in this process")
                }
                return existing
            }
            try DataFileCheck.requireIntact(dataPath)
            let isNew = access(dataPath, F_OK) != 0
            let environment = try LMDBEnvironment(directory: canonical, create: create, mapSizeBytes: mapSizeBytes)
            if create && isNew {
                // The new data file's directory entry must be durable before the first append
                // is acknowledged: fsync on the file does not cover its name (open(2), fsync(2)).
                try syncDirectory(canonical)
                if let slash = canonical.lastIndex(of: "/"), slash != canonical.startIndex {
                    try syncDirectory(String(canonical[..<slash]))
                }
            }
            table[canonical] = WeakEnvironment(environment: environment)
            return environment
        }
    }

    /// Directories fsynced by this process, newest last (tests check a new log syncs its own).
    static let syncedDirectories = Mutex<[String]>([])

    /// `fsync` on a directory, so entries created in it survive a power failure.
    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else {
            throw EventLogError(.system, "open \(path) to fsync it: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        guard fsync(fd) == 0 else {
            throw EventLogError(.system, "fsync of directory \(path): \(String(cString: strerror(errno)))")
        }
        syncedDirectories.withLock { $0.append(path) }
    }

    /// Checks every B-tree page of the snapshot `txn` reads (`PageCheck`), with `pread`: the
    /// pages of a snapshot a read transaction holds are never reused, even by a writer in
    /// another process.
    func checkPages(_ txn: OpaquePointer) throws(EventLogError) -> PageCheck.Summary {
        try PageCheck.walk(
            path: directory + "/" + Self.dataFileName, transactionID: UInt64(mdb_txn_id(txn)),
            expectedFlags: Databases.expectedFlags)
    }

    private init(directory: String, create: Bool, mapSizeBytes: Int) throws {
        var env: OpaquePointer?
        do {
            try LMDBError.check(mdb_env_create(&env), "mdb_env_create")
        } catch {
            throw EventLogError.wrap(error, "opening \(directory)")
        }
        guard let env else { preconditionFailure("mdb_env_create returned success without a handle") }
        // From here on, a failure must still close the handle: a failed mdb_env_open needs
        // mdb_env_close (lmdb.h, mdb_env_open: "If this function fails, mdb_env_close() must be
        // called to discard the MDB_env handle").
        var opened = false
        defer { if !opened { mdb_env_close(env) } }
        do {
            try LMDBError.check(mdb_env_set_maxdbs(env, 16), "mdb_env_set_maxdbs")
            try LMDBError.check(mdb_env_set_maxreaders(env, 510), "mdb_env_set_maxreaders")
            if mapSizeBytes > 0 {
                try LMDBError.check(mdb_env_set_mapsize(env, mapSizeBytes), "mdb_env_set_mapsize")
            }
        } catch {
            throw EventLogError.wrap(error, "configuring \(directory)")
        }
        var readOnly = false
        var rc = mdb_env_open(env, directory, UInt32(MDB_NOTLS), 0o644)
        if !create && (rc == EACCES || rc == EROFS) {
            // A reader without write access to the directory: read-only mode still works when
            // lock.mdb exists or the file system is read-only.
            readOnly = true
            rc = mdb_env_open(env, directory, UInt32(MDB_NOTLS | MDB_RDONLY), 0o644)
        }
        do {
            try LMDBError.check(rc, "mdb_env_open")
        } catch {
            throw EventLogError.wrap(error, "opening the event log in \(directory)")
        }
        // Free reader slots left by killed processes before they pin old pages forever.
        var dead: Int32 = 0
        _ = mdb_reader_check(env, &dead)

        self.handle = env
        self.directory = directory
        self.readOnly = readOnly
        self.resizeLock = .allocate(capacity: 1)
        pthread_rwlock_init(resizeLock, nil)
        self.dbs = Databases(
            events: 0, streamIndex: 0, names: 0, streamNames: 0, eventTypeNames: 0, actorNames: 0, dictionaries: 0,
            state: 0, meta: 0)
        opened = true
        // Before any B-tree page is read through the map (mdb_dbi_open reads the main
        // database): a damaged page must be an error here, not a signal later.
        do {
            var txn: OpaquePointer?
            try LMDBError.check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin")
            guard let txn else { preconditionFailure("mdb_txn_begin returned success without a transaction") }
            defer { mdb_txn_abort(txn) }
            _ = try checkPages(txn)
        } catch let error as LMDBError {
            throw EventLogError.wrap(error, "checking the pages of \(directory)")
        }
        do {
            self.dbs = try openDatabases(create: create && !readOnly)
        } catch {
            if error.code == .notFound {
                throw EventLogError(.notFound, "no event log in \(directory): its databases are not created yet")
            }
            throw EventLogError.wrap(error, "opening the databases in \(directory)")
        }
    }

    deinit {
        changes.stop()
        mdb_env_close(handle)
        pthread_rwlock_destroy(resizeLock)
        resizeLock.deallocate()
    }

    private func openDatabases(create: Bool) throws(LMDBError) -> Databases {
        var txn: OpaquePointer?
        try LMDBError.check(mdb_txn_begin(handle, nil, create ? 0 : UInt32(MDB_RDONLY), &txn), "mdb_txn_begin")
        guard let txn else { preconditionFailure("mdb_txn_begin returned success without a transaction") }
        var handles: [MDB_dbi] = []
        for (name, flags) in Databases.names {
            var dbi: MDB_dbi = 0
            let rc = mdb_dbi_open(txn, name, UInt32(flags | (create ? MDB_CREATE : 0)), &dbi)
            if rc != MDB_SUCCESS {
                mdb_txn_abort(txn)
                throw LMDBError(code: .init(rawValue: rc), call: "mdb_dbi_open")
            }
            handles.append(dbi)
        }
        // Committing (also a read-only txn) keeps the handles open in the environment.
        try LMDBError.check(mdb_txn_commit(txn), "mdb_txn_commit")
        return Databases(
            events: handles[0], streamIndex: handles[1], names: handles[2], streamNames: handles[3],
            eventTypeNames: handles[4], actorNames: handles[5], dictionaries: handles[6], state: handles[7],
            meta: handles[8])
    }

    /// Runs `body` in a short read-only transaction (`MDB_RDONLY`), ended when it returns.
    ///
    /// Adopts a map grown by another process (`MDB_MAP_RESIZED` → `mdb_env_set_mapsize(env, 0)`)
    /// and retries. Bytes handed to `body` are valid only inside it.
    func read<R>(_ body: (ReadTransaction) throws -> R) throws -> R {
        // Bounded (2 ms): a reader nested in another of this thread must not wait for a
        // growth that waits for the outer one.
        var spins = 0
        while growthPending.load(ordering: .acquiring) && spins < 40 {
            usleep(50)
            spins += 1
        }
        for _ in 0..<8 {
            pthread_rwlock_rdlock(resizeLock)
            var txn: OpaquePointer?
            let rc = mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn)
            if rc == MDB_MAP_RESIZED {
                pthread_rwlock_unlock(resizeLock)
                try adoptGrownMap()
                continue
            }
            defer {
                if let txn { mdb_txn_abort(txn) }
                pthread_rwlock_unlock(resizeLock)
            }
            do {
                try LMDBError.check(rc, "mdb_txn_begin")
            } catch {
                throw EventLogError.wrap(error, "reading \(directory)")
            }
            guard let txn else { preconditionFailure("mdb_txn_begin returned success without a transaction") }
            return try body(ReadTransaction(txn: txn, dbs: dbs, tail: tail))
        }
        throw EventLogError(.lmdb, "reading \(directory): the map kept growing under the reader")
    }

    private func adoptGrownMap() throws {
        pthread_rwlock_wrlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        do {
            try LMDBError.check(mdb_env_set_mapsize(handle, 0), "mdb_env_set_mapsize")
        } catch {
            throw EventLogError.wrap(error, "adopting the grown map of \(directory)")
        }
    }

    /// Sets the map size, waiting until no read transaction of this process is open.
    /// Called by the writer thread between write transactions only.
    func setMapSize(_ bytes: Int) throws(LMDBError) {
        pthread_rwlock_wrlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        try LMDBError.check(mdb_env_set_mapsize(handle, bytes), "mdb_env_set_mapsize")
    }

    /// Sets the map size if no read transaction of this process is open within
    /// `nanoseconds`; false when it did not get the chance (nothing changed).
    func setMapSize(_ bytes: Int, waitingAtMostNanoseconds nanoseconds: Int) throws(LMDBError) -> Bool {
        growthPending.store(true, ordering: .releasing)
        defer { growthPending.store(false, ordering: .releasing) }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let deadline = Int(now.tv_sec) * 1_000_000_000 + Int(now.tv_nsec) + nanoseconds
        var until = timespec(tv_sec: deadline / 1_000_000_000, tv_nsec: deadline % 1_000_000_000)
        guard pthread_rwlock_timedwrlock(resizeLock, &until) == 0 else { return false }
        defer { pthread_rwlock_unlock(resizeLock) }
        try LMDBError.check(mdb_env_set_mapsize(handle, bytes), "mdb_env_set_mapsize")
        return true
    }

    /// Bytes of the map in use (pages up to the last one written) and the map size.
    var usedAndMapSize: (used: Int, size: Int) {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        var stat = MDB_stat()
        mdb_env_stat(handle, &stat)
        return ((info.me_last_pgno + 1) * Int(stat.ms_psize), info.me_mapsize)
    }

    /// The current map size in bytes (`mdb_env_info`).
    var mapSizeBytes: Int {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        return info.me_mapsize
    }

    /// Copies the environment to `target` (an empty directory) with `MDB_CP_COMPACT`: a
    /// consistent snapshot (one read transaction), free pages left out. Runs while a writer writes.
    func copy(to target: String) throws {
        // mdb_env_copy2 opens its own read transaction for the whole copy, and
        // mdb_env_set_mapsize must not run while any transaction of this process is open (it
        // remaps the file under it). So the copy holds the resize lock shared throughout: a
        // writer in this process that needs a bigger map waits for the backup to finish.
        // Unlike verify, a copy cannot be split into short transactions and stay one snapshot.
        for _ in 0..<8 {
            pthread_rwlock_rdlock(resizeLock)
            let rc = mdb_env_copy2(handle, target, UInt32(MDB_CP_COMPACT))
            pthread_rwlock_unlock(resizeLock)
            // A writer in another process grew the map since this process opened it: the
            // copy's read transaction refuses to begin. mdb_env_copy2 has already created the
            // (still empty) target file with O_EXCL, so remove it before adopting and retrying.
            if rc == MDB_MAP_RESIZED {
                unlink(target + "/" + Self.dataFileName)
                try adoptGrownMap()
                continue
            }
            try LMDBError.check(rc, "mdb_env_copy2")
            return
        }
        throw EventLogError(.lmdb, "the map kept growing under the copy")
    }

    static func canonicalPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func makeDirectory(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw EventLogError(.system, "mkdir \(prefix): \(String(cString: strerror(errno)))")
            }
        }
    }
}

private struct WeakEnvironment {
    weak var environment: LMDBEnvironment?
}

/// A read-only view of a transaction; valid only inside the closure that received it.
struct ReadTransaction {
    let txn: OpaquePointer
    let dbs: Databases
    /// Readers' cache of the unfolded tail; nil in the writer's view of its own transaction,
    /// which must not see the tail through it (it knows its tail, and what it has not
    /// committed must not reach readers' caches).
    var tail: TailCache? = nil

    /// The value under `key`, or nil; the bytes live in the map until the transaction ends.
    func get(_ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer) throws(LMDBError) -> UnsafeRawBufferPointer? {
        var keyVal = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var value = MDB_val()
        let rc = mdb_get(txn, dbi, &keyVal, &value)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc, "mdb_get")
        return UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
    }

    func get(_ dbi: MDB_dbi, _ key: [UInt8]) throws(LMDBError) -> UnsafeRawBufferPointer? {
        let result = key.withUnsafeBytes { bytes in
            Result { () throws(LMDBError) in try get(dbi, bytes) }
        }
        return try result.get()
    }

    func cursor(_ dbi: MDB_dbi) throws(LMDBError) -> Cursor {
        var cursor: OpaquePointer?
        try LMDBError.check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open")
        guard let cursor else { preconditionFailure("mdb_cursor_open returned success without a cursor") }
        return Cursor(handle: cursor)
    }

    /// Number of entries in `dbi` (`mdb_stat`).
    func entryCount(_ dbi: MDB_dbi) throws(LMDBError) -> Int {
        var stat = MDB_stat()
        try LMDBError.check(mdb_stat(txn, dbi, &stat), "mdb_stat")
        return stat.ms_entries
    }
}

/// An LMDB cursor, closed in `deinit`; lives inside one transaction.
final class Cursor {
    let handle: OpaquePointer
    init(handle: OpaquePointer) { self.handle = handle }
    deinit { mdb_cursor_close(handle) }

    /// Moves the cursor (`mdb_cursor_get`); nil when there is no such entry.
    func get(
        _ op: MDB_cursor_op, key: UnsafeRawBufferPointer? = nil, value: UnsafeRawBufferPointer? = nil
    ) throws(LMDBError) -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? {
        var keyVal = MDB_val(mv_size: key?.count ?? 0, mv_data: UnsafeMutableRawPointer(mutating: key?.baseAddress))
        var dataVal = MDB_val(
            mv_size: value?.count ?? 0, mv_data: UnsafeMutableRawPointer(mutating: value?.baseAddress))
        let rc = mdb_cursor_get(handle, &keyVal, &dataVal, op)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc, "mdb_cursor_get")
        return (
            UnsafeRawBufferPointer(start: keyVal.mv_data, count: keyVal.mv_size),
            UnsafeRawBufferPointer(start: dataVal.mv_data, count: dataVal.mv_size)
        )
    }

    /// Number of duplicates under the current key (`mdb_cursor_count`).
    func duplicateCount() throws(LMDBError) -> Int {
        var count = 0
        try LMDBError.check(mdb_cursor_count(handle, &count), "mdb_cursor_count")
        return count
    }
}

@available(*, unavailable)
extension Cursor: Sendable {}

/// A write transaction, owned by the writer thread; aborted in `deinit` unless committed.
///
/// LMDB binds a write transaction to the thread that began it (`lmdb.h`: "A transaction and
/// its cursors must only be used by a single thread"), so this type is neither copyable nor
/// usable from async code.
struct WriteTransaction: ~Copyable {
    let txn: OpaquePointer
    let dbs: Databases

    @available(*, noasync)
    init(environment: LMDBEnvironment) throws(LMDBError) {
        var txn: OpaquePointer?
        try LMDBError.check(mdb_txn_begin(environment.handle, nil, 0, &txn), "mdb_txn_begin")
        guard let txn else { preconditionFailure("mdb_txn_begin returned success without a transaction") }
        self.txn = txn
        self.dbs = environment.dbs
    }

    deinit { mdb_txn_abort(txn) }

    var view: ReadTransaction { ReadTransaction(txn: txn, dbs: dbs) }

    @available(*, noasync)
    consuming func commit() throws(LMDBError) {
        let txn = self.txn
        discard self
        // mdb_txn_commit frees the transaction whether or not it succeeds.
        try LMDBError.check(mdb_txn_commit(txn), "mdb_txn_commit")
    }

    @available(*, noasync)
    consuming func abort() {
        let txn = self.txn
        discard self
        mdb_txn_abort(txn)
    }

    func put(_ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, flags: Int32 = 0)
        throws(LMDBError)
    {
        var keyVal = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var dataVal = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try LMDBError.check(mdb_put(txn, dbi, &keyVal, &dataVal, UInt32(flags)), "mdb_put")
    }

    func put(_ dbi: MDB_dbi, _ key: [UInt8], _ value: [UInt8], flags: Int32 = 0) throws(LMDBError) {
        let result = key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                Result { () throws(LMDBError) in try put(dbi, k, v, flags: flags) }
            }
        }
        try result.get()
    }

    /// Reserves `size` bytes for `key` (`MDB_RESERVE`) and returns them to be filled in place
    /// before the next write in this transaction.
    func reserve(_ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer, size: Int, flags: Int32 = 0)
        throws(LMDBError) -> UnsafeMutableRawBufferPointer
    {
        var keyVal = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var dataVal = MDB_val(mv_size: size, mv_data: nil)
        try LMDBError.check(mdb_put(txn, dbi, &keyVal, &dataVal, UInt32(flags | MDB_RESERVE)), "mdb_put")
        return UnsafeMutableRawBufferPointer(start: dataVal.mv_data, count: size)
    }

    /// Deletes `key`; returns false when it was not there.
    @discardableResult
    func delete(_ dbi: MDB_dbi, _ key: [UInt8]) throws(LMDBError) -> Bool {
        var rc: Int32 = 0
        key.withUnsafeBytes { k in
            var keyVal = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            rc = mdb_del(txn, dbi, &keyVal, nil)
        }
        if rc == MDB_NOTFOUND { return false }
        try LMDBError.check(rc, "mdb_del")
        return true
    }
}
