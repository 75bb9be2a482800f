#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Checks, before LMDB maps a data file, that the file holds every page its meta page claims.
///
/// LMDB trusts the file: reading a page past the end of a truncated file raises SIGBUS inside
/// the map. Reading the two meta pages with `pread` first turns that into a clear error.
/// Layout (liblmdb 0.9, 64-bit, `mdb.c`): each meta page starts with a 16-byte page header,
/// then `MDB_meta`: magic (UInt32 0xBEEFC0DE) at 16, version at 20, address at 24, map size at
/// 32, two `MDB_db` of 48 bytes at 40 (the first's `md_pad` holds the page size), last page
/// number at 136, transaction id at 144.
enum DataFileCheck {
    struct Meta {
        var pageSize: Int
        var lastPage: UInt64
        var transactionID: UInt64
        var mapSize: UInt64
        /// `mm_dbs[FREE_DBI]` and `mm_dbs[MAIN_DBI]`.
        var freeDatabase: PageCheck.Record
        var mainDatabase: PageCheck.Record
    }

    static let magic: UInt32 = 0xBEEF_C0DE

    /// Reads the newest valid meta page; nil when the file is empty or missing.
    /// - Throws: `.corrupt` when no meta page is valid or the file is shorter than the newest
    ///   meta page's last page.
    static func requireIntact(_ path: String) throws {
        _ = try inspect(path)
    }

    @discardableResult
    static func inspect(_ path: String) throws -> (meta: Meta, fileSize: Int)? {
        let fd = open(path, O_RDONLY)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw EventLogError(.system, "open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw EventLogError(.system, "fstat \(path): \(String(cString: strerror(errno)))")
        }
        let fileSize = Int(info.st_size)
        if fileSize == 0 { return nil }
        let candidates = [0, 1].compactMap { readMeta(fd: fd, page: $0) }
        guard let newest = candidates.max(by: { $0.transactionID < $1.transactionID }) else {
            throw EventLogError.corrupt(
                "\(path): no valid LMDB meta page (file of \(fileSize) bytes)", damage: .noValidMetaPage)
        }
        let needed = (newest.lastPage + 1) * UInt64(newest.pageSize)
        if UInt64(fileSize) < needed {
            throw EventLogError.corrupt(
                "\(path): truncated data file: its meta page needs \(needed) bytes "
                    + "(\(newest.lastPage + 1) pages of \(newest.pageSize)), the file has \(fileSize)",
                damage: .truncatedFile)
        }
        return (newest, fileSize)
    }

    /// Meta page 0 or 1 (page 1 lies one page size, as page 0 says, from the start); nil when invalid.
    static func readMeta(fd: Int32, page: Int) -> Meta? {
        let offset = page == 0 ? 0 : (readMeta(fd: fd, offset: 0)?.pageSize ?? 4096)
        return readMeta(fd: fd, offset: offset)
    }

    private static func readMeta(fd: Int32, offset: Int) -> Meta? {
        var page = [UInt8](repeating: 0, count: 152)
        let got = page.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 152, off_t(offset)) }
        guard got == 152 else { return nil }
        func load<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            page.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: T.self)) }
        }
        guard load(16, UInt32.self) == magic else { return nil }
        let pageSize = Int(load(40, UInt32.self))
        guard pageSize >= 512, pageSize <= 65536, pageSize & (pageSize - 1) == 0 else { return nil }
        return Meta(
            pageSize: pageSize, lastPage: load(136, UInt64.self), transactionID: load(144, UInt64.self),
            mapSize: load(32, UInt64.self),
            freeDatabase: page.withUnsafeBytes { PageCheck.Record(UnsafeRawBufferPointer(rebasing: $0[40..<88])) },
            mainDatabase: page.withUnsafeBytes { PageCheck.Record(UnsafeRawBufferPointer(rebasing: $0[88..<136])) })
    }
}
