import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error returned by a liblmdb call, with the call that returned it.
///
/// Retries switch on `code` (for example `.mapFull` grows the map, `.mapResized` adopts a map
/// grown by another process), never on the message text.
public struct LMDBError: Error, Sendable, CustomStringConvertible {
    /// An LMDB return code: one of LMDB's own (negative) or an `errno` value.
    public struct Code: RawRepresentable, Hashable, Sendable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// The key was not found. C: `MDB_NOTFOUND`.
        public static var notFound: Code { Code(rawValue: MDB_NOTFOUND) }
        /// The key (or, with `MDB_APPEND`, an ordering) already exists. C: `MDB_KEYEXIST`.
        public static var keyExists: Code { Code(rawValue: MDB_KEYEXIST) }
        /// The map is full; the environment must grow. C: `MDB_MAP_FULL`.
        public static var mapFull: Code { Code(rawValue: MDB_MAP_FULL) }
        /// Another process grew the map beyond ours; adopt it with `mdb_env_set_mapsize(env, 0)`.
        /// C: `MDB_MAP_RESIZED`.
        public static var mapResized: Code { Code(rawValue: MDB_MAP_RESIZED) }
        /// A fatal error; the environment must be closed. C: `MDB_PANIC`.
        public static var panic: Code { Code(rawValue: MDB_PANIC) }
        /// The file is not an LMDB file or its pages are damaged. C: `MDB_CORRUPTED`.
        public static var corrupted: Code { Code(rawValue: MDB_CORRUPTED) }
        /// The file was written by an incompatible LMDB. C: `MDB_INVALID`.
        public static var invalid: Code { Code(rawValue: MDB_INVALID) }
        /// Every reader slot is in use. C: `MDB_READERS_FULL`.
        public static var readersFull: Code { Code(rawValue: MDB_READERS_FULL) }
        /// No space left on the device. C: `ENOSPC`.
        public static var noSpace: Code { Code(rawValue: ENOSPC) }
        /// An I/O error (also how some file systems report a full disk). C: `EIO`.
        public static var ioError: Code { Code(rawValue: EIO) }
        /// Permission denied. C: `EACCES`.
        public static var permissionDenied: Code { Code(rawValue: EACCES) }
        /// A read-only file system. C: `EROFS`.
        public static var readOnlyFileSystem: Code { Code(rawValue: EROFS) }
        /// The file does not exist. C: `ENOENT`.
        public static var noSuchFile: Code { Code(rawValue: ENOENT) }
    }

    public var code: Code
    /// The liblmdb function that returned `code`, such as `"mdb_txn_commit"`.
    public var call: StaticString

    public init(code: Code, call: StaticString) {
        self.code = code
        self.call = call
    }

    public var description: String {
        "\(call): \(String(cString: mdb_strerror(code.rawValue))) (\(code.rawValue))"
    }

    /// Throws an `LMDBError` unless `rc` is `MDB_SUCCESS`.
    @inline(__always)
    static func check(_ rc: Int32, _ call: StaticString) throws(LMDBError) {
        if rc != MDB_SUCCESS { throw LMDBError(code: Code(rawValue: rc), call: call) }
    }
}
