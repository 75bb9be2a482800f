import CLMDB
import CSQLite
import Foundation

/// The floor: liblmdb with no codec at all. A record is the event's raw JSON keyed by its
/// big-endian position, appended with `MDB_APPEND`; commits are LMDB's default (durable).
final class RawLMDB {
    private var env: OpaquePointer?
    private var dbi: MDB_dbi = 0
    private var nextPosition: UInt64 = 1
    let directory: String

    init(directory: String, mapSizeBytes: Int = 8 << 30) throws {
        self.directory = directory
        try check(mdb_env_create(&env), "mdb_env_create")
        do {
            try check(mdb_env_set_mapsize(env, mapSizeBytes), "mdb_env_set_mapsize")
            try check(mdb_env_open(env, directory, UInt32(MDB_NOTLS), 0o644), "mdb_env_open")
            try write { txn in try check(mdb_dbi_open(txn, nil, 0, &dbi), "mdb_dbi_open") }
        } catch {
            mdb_env_close(env)
            env = nil
            throw error
        }
    }

    deinit { if env != nil { mdb_env_close(env) } }

    /// Appends the events' raw JSON payloads in one durable transaction.
    func append(_ events: ArraySlice<BenchEvent>) throws {
        try write { txn in
            for event in events {
                var key = nextPosition.bigEndian
                try withUnsafeMutableBytes(of: &key) { keyBytes in
                    try event.event.payload.withUnsafeBytes { valueBytes in
                        var k = MDB_val(mv_size: 8, mv_data: keyBytes.baseAddress)
                        var v = MDB_val(mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
                        try check(mdb_put(txn, dbi, &k, &v, UInt32(MDB_APPEND)), "mdb_put")
                    }
                }
                nextPosition += 1
            }
        }
    }

    /// Reads every record in one read transaction; returns how many and a checksum so the
    /// reads cannot be optimised away.
    func scan() throws -> (count: Int, sum: UInt64) {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin")
        defer { mdb_txn_abort(txn) }
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val()
        var value = MDB_val()
        var count = 0
        var sum: UInt64 = 0
        var rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST)
        while rc == 0 {
            let bytes = UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
            sum &+= UInt64(bytes[bytes.count - 1]) &+ UInt64(bytes.count)
            count += 1
            rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
        }
        guard rc == MDB_NOTFOUND else { throw BenchError("mdb_cursor_get: \(String(cString: mdb_strerror(rc)))") }
        return (count, sum)
    }

    private func write(_ body: (OpaquePointer?) throws -> Void) throws {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
        do {
            try body(txn)
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
    }

    private func check(_ rc: Int32, _ call: String) throws {
        guard rc == 0 else { throw BenchError("\(call) in \(directory): \(String(cString: mdb_strerror(rc)))") }
    }
}

/// SQLite as the peer: WAL, `synchronous=FULL`, one table with the event's position,
/// stream, revision, type and payload (raw JSON), and a unique (stream, revision) index
/// playing the role of Capstan's stream index.
final class SQLiteLog {
    private var db: OpaquePointer?
    private var insert: OpaquePointer?
    private var nextPosition: Int64 = 1
    let path: String

    init(path: String, readOnly: Bool = false) throws {
        self.path = path
        guard sqlite3_open(path, &db) == SQLITE_OK else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            throw BenchError("sqlite3_open \(path): \(message)")
        }
        try exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        if readOnly { return }
        try exec(
            """
            CREATE TABLE events(position INTEGER PRIMARY KEY, stream TEXT NOT NULL,
              revision INTEGER NOT NULL, type TEXT NOT NULL, payload BLOB NOT NULL,
              UNIQUE(stream, revision));
            """)
        guard sqlite3_prepare_v2(db, "INSERT INTO events VALUES(?,?,?,?,?)", -1, &insert, nil) == SQLITE_OK else {
            throw BenchError("sqlite3_prepare_v2: \(String(cString: sqlite3_errmsg(db)))")
        }
    }

    deinit {
        sqlite3_finalize(insert)
        sqlite3_close(db)
    }

    /// Appends `events` in one transaction (durable at COMMIT).
    func append(_ events: ArraySlice<BenchEvent>) throws {
        try exec("BEGIN")
        for event in events {
            sqlite3_bind_int64(insert, 1, nextPosition)
            sqlite3_bind_text(insert, 2, event.stream, -1, capstan_sqlite_transient())
            sqlite3_bind_int64(insert, 3, Int64(event.revision))
            sqlite3_bind_text(insert, 4, event.type, -1, capstan_sqlite_transient())
            _ = event.payload.withUnsafeBytes { bytes in
                sqlite3_bind_blob(insert, 5, bytes.baseAddress, Int32(bytes.count), capstan_sqlite_transient())
            }
            guard sqlite3_step(insert) == SQLITE_DONE else {
                throw BenchError("sqlite3_step: \(String(cString: sqlite3_errmsg(db)))")
            }
            sqlite3_reset(insert)
            nextPosition += 1
        }
        try exec("COMMIT")
    }

    func checkpoint() throws { try exec("PRAGMA wal_checkpoint(TRUNCATE)") }

    func scan() throws -> (count: Int, sum: UInt64) {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, "SELECT position, stream, revision, type, payload FROM events", -1, &statement, nil)
            == SQLITE_OK
        else { throw BenchError("sqlite3_prepare_v2: \(String(cString: sqlite3_errmsg(db)))") }
        defer { sqlite3_finalize(statement) }
        var count = 0
        var sum: UInt64 = 0
        while sqlite3_step(statement) == SQLITE_ROW {
            let length = Int(sqlite3_column_bytes(statement, 4))
            if let blob = sqlite3_column_blob(statement, 4), length > 0 {
                sum &+= UInt64(blob.load(fromByteOffset: length - 1, as: UInt8.self))
            }
            sum &+= UInt64(sqlite3_column_int64(statement, 0)) &+ UInt64(sqlite3_column_bytes(statement, 1))
            count += 1
        }
        return (count, sum)
    }

    private func exec(_ sql: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(db, sql, nil, nil, &error) == SQLITE_OK else {
            let message = error.map { String(cString: $0) } ?? "unknown"
            sqlite3_free(error)
            throw BenchError("sqlite3_exec \(sql.prefix(40)) on \(path): \(message)")
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
