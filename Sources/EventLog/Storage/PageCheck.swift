#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Checks the structure of every B-tree page of one snapshot with `pread`, before LMDB is
/// allowed to touch those pages through its map.
///
/// LMDB trusts its pages: a damaged node offset, key size, data size or overflow page count
/// makes it read outside the page, and outside the map (SIGSEGV, SIGBUS), and damaged key
/// order makes range seeks go backwards (loops that never end). This walk reads each page
/// reachable from the meta page of a given transaction, once, and checks what LMDB relies on:
/// the page's own number, its type and depth, `mp_lower`/`mp_upper`, that every node lies
/// inside the page, that keys within a page are in order, that child and overflow page
/// numbers lie in the file and are reached once, inline duplicate sub-pages, sub-database
/// records, and the free list's page lists (the writer reads those). Layout: liblmdb 0.9
/// `mdb.c`, 64-bit: page header 16 bytes (`mp_pgno` UInt64 at 0, `mp_pad` UInt16 at 8,
/// `mp_flags` UInt16 at 10, `mp_lower`/`mp_upper` UInt16 at 12/14, or `mp_pages` UInt32 at 12
/// for overflow pages), node header 8 bytes (`mn_lo`, `mn_hi`, `mn_flags`, `mn_ksize`), a
/// `MDB_db` record 48 bytes (`md_pad`, `md_flags`, `md_depth`, three page counts,
/// `md_entries`, `md_root`).
///
/// Safe against a writer in another process when the caller holds a read transaction on the
/// snapshot being walked: LMDB never reuses a page reachable from a snapshot a reader holds.
///
/// - Complexity: one `pread` per page in use (plus overflow headers); memory one bit per page.
struct PageCheck {
    /// Page flags (`mdb.c`).
    static let branch: UInt16 = 0x01
    static let leaf: UInt16 = 0x02
    static let overflow: UInt16 = 0x04
    static let leaf2: UInt16 = 0x20
    static let subPage: UInt16 = 0x40
    /// Node flags.
    static let bigData: UInt16 = 0x01
    static let subData: UInt16 = 0x02
    static let dupData: UInt16 = 0x04
    /// Database flags.
    static let dupSort: UInt16 = 0x04
    static let integerKey: UInt16 = 0x08
    static let dupFixed: UInt16 = 0x10
    static let invalidPage = UInt64.max
    /// LMDB's cursor stack depth (`CURSOR_STACK`): no tree may be deeper.
    static let maximumDepth = 32
    static let headerSize = 16
    static let nodeHeaderSize = 8
    static let databaseRecordSize = 48

    /// What the walk saw, for stats and the benchmark.
    struct Summary {
        var pagesRead = 0
        var overflowPages = 0
        var databases = 0
    }

    /// A B-tree to walk: its record and how its keys are ordered.
    private struct Tree {
        var name: String
        var record: Record
        var integerKeys: Bool
        var dupSort: Bool
        var dupFixed: Bool
        /// The free list: values are page lists.
        var isFreeList: Bool
        /// The main database: values are records of named databases.
        var isMain: Bool
        /// A duplicate sub-tree: keys are the duplicates, values empty.
        var isDuplicates: Bool
    }

    struct Record {
        var pad: UInt32
        var flags: UInt16
        var depth: UInt16
        var entries: UInt64
        var root: UInt64

        init(_ bytes: UnsafeRawBufferPointer) {
            pad = bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self)
            flags = bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
            depth = bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self)
            entries = bytes.loadUnaligned(fromByteOffset: 32, as: UInt64.self)
            root = bytes.loadUnaligned(fromByteOffset: 40, as: UInt64.self)
        }
    }

    let path: String
    private let fd: Int32
    private let pageSize: Int
    private let lastPage: UInt64
    /// Flags each named database must have (unknown names: any of dupSort | dupFixed).
    private let expectedFlags: [String: UInt16]
    private var visited: [UInt64]
    private var summary = Summary()

    /// Walks the snapshot of transaction `transactionID` (the newest meta page when nil).
    /// - Throws: `.corrupt` (damage `.damagedPage`, `page` set) naming the file, the page,
    ///   the database and what is wrong; `.system` when the file cannot be read.
    @discardableResult
    static func walk(path: String, transactionID: UInt64?, expectedFlags: [String: UInt16]) throws(EventLogError)
        -> Summary
    {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw EventLogError(.system, "open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let metas = [0, 1].compactMap { DataFileCheck.readMeta(fd: fd, page: $0) }
        let chosen: DataFileCheck.Meta?
        if let transactionID {
            chosen = metas.first { $0.transactionID == UInt64(transactionID) }
        } else {
            chosen = metas.max { $0.transactionID < $1.transactionID }
        }
        guard let meta = chosen else {
            throw EventLogError.corrupt(
                "\(path): no meta page holds transaction \(transactionID.map(String.init) ?? "(newest)")",
                damage: .noValidMetaPage)
        }
        var check = PageCheck(
            path: path, fd: fd, pageSize: meta.pageSize, lastPage: meta.lastPage, expectedFlags: expectedFlags)
        try check.run(meta)
        return check.summary
    }

    private init(path: String, fd: Int32, pageSize: Int, lastPage: UInt64, expectedFlags: [String: UInt16]) {
        self.path = path
        self.fd = fd
        self.pageSize = pageSize
        self.lastPage = lastPage
        self.expectedFlags = expectedFlags
        self.visited = [UInt64](repeating: 0, count: Int(lastPage / 64) + 1)
    }

    private mutating func run(_ meta: DataFileCheck.Meta) throws(EventLogError) {
        let free = Tree(
            name: "(free list)", record: meta.freeDatabase, integerKeys: true, dupSort: false, dupFixed: false,
            isFreeList: true, isMain: false, isDuplicates: false)
        let main = Tree(
            name: "(main)", record: meta.mainDatabase, integerKeys: false, dupSort: false, dupFixed: false,
            isFreeList: false, isMain: true, isDuplicates: false)
        try walk(free)
        try walk(main)
        try checkDeferred()
    }

    private func damage(_ page: UInt64, _ tree: Tree, _ reason: String) -> EventLogError {
        var error = EventLogError.corrupt(
            "\(path): page \(page) of database \(tree.name) is damaged: \(reason)", damage: .damagedPage)
        error.page = page
        return error
    }

    private mutating func walk(_ tree: Tree) throws(EventLogError) {
        summary.databases += 1
        let record = tree.record
        if record.root == Self.invalidPage { return }
        guard record.depth >= 1, Int(record.depth) <= Self.maximumDepth else {
            throw damage(record.root, tree, "the database record says depth \(record.depth)")
        }
        try visit(record.root, depth: 1, tree)
    }

    private mutating func claim(_ page: UInt64, _ tree: Tree, _ what: String) throws(EventLogError) {
        guard page >= 2, page <= lastPage else {
            throw damage(page, tree, "\(what) names page \(page), outside pages 2...\(lastPage) of the file")
        }
        let word = Int(page / 64)
        let bit = UInt64(1) << (page % 64)
        guard visited[word] & bit == 0 else {
            throw damage(page, tree, "\(what) names page \(page), which another node already names")
        }
        visited[word] |= bit
    }

    private func read(_ page: UInt64, into buffer: UnsafeMutableRawBufferPointer, _ tree: Tree) throws(EventLogError) {
        let got = pread(fd, buffer.baseAddress, buffer.count, off_t(page) * off_t(pageSize))
        guard got == buffer.count else {
            if got < 0 { throw EventLogError(.system, "pread \(path) page \(page): \(String(cString: strerror(errno)))") }
            throw damage(page, tree, "the file ends inside it")
        }
    }

    private mutating func visit(_ page: UInt64, depth: Int, _ tree: Tree) throws(EventLogError) {
        try claim(page, tree, depth == 1 ? "the database record" : "a branch node")
        if depth == Int(tree.record.depth) && !tree.isMain {
            // Leaves (almost every page) are checked later in file order, read many at a
            // time: one pread per page cost more than the checks themselves.
            if trees.last?.name != tree.name || trees.last?.record.root != tree.record.root { trees.append(tree) }
            deferred.append((page, trees.count - 1))
            return
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: pageSize, alignment: 8)
        defer { buffer.deallocate() }
        try read(page, into: buffer, tree)
        try check(UnsafeRawBufferPointer(buffer), page: page, depth: depth, tree)
    }

    /// Leaves reached but not read yet, with the index of their tree in `trees`.
    private var deferred: [(page: UInt64, tree: Int)] = []
    private var trees: [Tree] = []
    /// Pages read per `pread` when checking deferred leaves.
    static let window = 64

    /// Checks the deferred leaves in page order, `window` pages per read; their own
    /// sub-databases (duplicates) defer further leaves, checked in the next round.
    private mutating func checkDeferred() throws(EventLogError) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.window * pageSize, alignment: 8)
        defer { buffer.deallocate() }
        while !deferred.isEmpty {
            let round = deferred.sorted { $0.page < $1.page }
            let roundTrees = trees
            deferred = []
            var start: UInt64 = 0
            var pages = 0
            for (page, index) in round {
                let tree = roundTrees[index]
                if page < start || page >= start + UInt64(pages) {
                    start = page
                    let count = Int(min(UInt64(Self.window), lastPage - page + 1))
                    let got = pread(fd, buffer.baseAddress, count * pageSize, off_t(page) * off_t(pageSize))
                    if got < 0 {
                        throw EventLogError(.system, "pread \(path) page \(page): \(String(cString: strerror(errno)))")
                    }
                    pages = got / pageSize
                    guard pages > 0 else { throw damage(page, tree, "the file ends inside it") }
                }
                let offset = Int(page - start) * pageSize
                let bytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[offset..<(offset + pageSize)])
                try check(bytes, page: page, depth: Int(tree.record.depth), tree)
            }
        }
    }

    /// The checks of one page (branch or leaf) already read into `bytes`.
    private mutating func check(_ bytes: UnsafeRawBufferPointer, page: UInt64, depth: Int, _ tree: Tree)
        throws(EventLogError)
    {
        summary.pagesRead += 1
        let number = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        guard number == page else { throw damage(page, tree, "it says it is page \(number)") }
        let flags = bytes.loadUnaligned(fromByteOffset: 10, as: UInt16.self)
        let isLeafLevel = depth == Int(tree.record.depth)
        let expected: UInt16 = isLeafLevel ? (tree.isDuplicates && tree.dupFixed ? Self.leaf | Self.leaf2 : Self.leaf) : Self.branch
        guard flags == expected else {
            throw damage(page, tree, "flags 0x\(String(flags, radix: 16)) at depth \(depth) of \(tree.record.depth), "
                + "expected 0x\(String(expected, radix: 16))")
        }
        let count = try checkBounds(bytes, size: pageSize, page: page, tree)
        if flags & Self.leaf2 != 0 {
            try checkFixed(bytes, count: count, keySize: Int(tree.record.pad), page: page, tree)
            return
        }
        var previousKey: UnsafeRawBufferPointer?
        for index in 0..<count {
            let (node, key) = try node(bytes, index, size: pageSize, page: page, tree)
            if flags & Self.branch != 0 {
                // The first key of a branch page is implicit (empty or ignored).
                if index > 0 { try order(previousKey, key, page: page, tree) }
                if index > 0 { previousKey = key }
                let child = UInt64(node.lo) | UInt64(node.hi) << 16 | UInt64(node.flags) << 32
                try visit(child, depth: depth + 1, tree)
            } else {
                try order(previousKey, key, page: page, tree)
                previousKey = key
                try checkLeaf(bytes, node, key: key, size: pageSize, page: page, tree)
            }
        }
    }

    /// Checks `mp_lower`/`mp_upper` of a page (or sub-page) of `size` bytes; returns its key count.
    private func checkBounds(_ bytes: UnsafeRawBufferPointer, size: Int, page: UInt64, _ tree: Tree) throws(EventLogError)
        -> Int
    {
        let lower = Int(bytes.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
        let upper = Int(bytes.loadUnaligned(fromByteOffset: 14, as: UInt16.self))
        guard lower >= Self.headerSize, lower & 1 == 0, lower <= upper, upper <= size else {
            throw damage(page, tree, "mp_lower \(lower), mp_upper \(upper) do not fit a page of \(size) bytes")
        }
        return (lower - Self.headerSize) >> 1
    }

    private struct Node {
        var offset: Int
        var lo: UInt16
        var hi: UInt16
        var flags: UInt16
        var keySize: Int
        var dataSize: Int { Int(lo) | Int(hi) << 16 }
    }

    private func node(_ bytes: UnsafeRawBufferPointer, _ index: Int, size: Int, page: UInt64, _ tree: Tree)
        throws(EventLogError) -> (Node, UnsafeRawBufferPointer)
    {
        let upper = Int(bytes.loadUnaligned(fromByteOffset: 14, as: UInt16.self))
        let offset = Int(bytes.loadUnaligned(fromByteOffset: Self.headerSize + 2 * index, as: UInt16.self))
        guard offset >= upper, offset & 1 == 0, offset + Self.nodeHeaderSize <= size else {
            throw damage(page, tree, "node \(index) at offset \(offset) lies outside the page's node area")
        }
        let node = Node(
            offset: offset, lo: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self),
            hi: bytes.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self),
            flags: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self),
            keySize: Int(bytes.loadUnaligned(fromByteOffset: offset + 6, as: UInt16.self)))
        let keyStart = offset + Self.nodeHeaderSize
        guard keyStart + node.keySize <= size else {
            throw damage(page, tree, "node \(index): a key of \(node.keySize) bytes runs past the page end")
        }
        guard node.keySize <= 511 else {
            throw damage(page, tree, "node \(index): a key of \(node.keySize) bytes exceeds LMDB's 511")
        }
        return (node, UnsafeRawBufferPointer(rebasing: bytes[keyStart..<(keyStart + node.keySize)]))
    }

    /// Keys strictly increasing: LMDB's default order (bytes, then length), or native
    /// integers for the free list.
    private func order(_ previous: UnsafeRawBufferPointer?, _ key: UnsafeRawBufferPointer, page: UInt64, _ tree: Tree)
        throws(EventLogError)
    {
        if tree.integerKeys {
            guard key.count == 8 else { throw damage(page, tree, "an integer key of \(key.count) bytes") }
        }
        guard let previous else { return }
        let ascending: Bool
        if tree.integerKeys {
            ascending = previous.loadUnaligned(as: UInt64.self) < key.loadUnaligned(as: UInt64.self)
        } else {
            let common = min(previous.count, key.count)
            let compared = common == 0 ? 0 : memcmp(previous.baseAddress!, key.baseAddress!, common)
            ascending = compared < 0 || (compared == 0 && previous.count < key.count)
        }
        guard ascending else { throw damage(page, tree, "keys are out of order") }
    }

    /// Fixed-size keys (`P_LEAF2`): packed after the header.
    private func checkFixed(_ bytes: UnsafeRawBufferPointer, count: Int, keySize: Int, page: UInt64, _ tree: Tree)
        throws(EventLogError)
    {
        guard keySize > 0, keySize <= 511, Self.headerSize + count * keySize <= bytes.count else {
            throw damage(page, tree, "\(count) fixed-size keys of \(keySize) bytes do not fit \(bytes.count) bytes")
        }
        var previous: UnsafeRawBufferPointer?
        for index in 0..<count {
            let start = Self.headerSize + index * keySize
            let key = UnsafeRawBufferPointer(rebasing: bytes[start..<(start + keySize)])
            try order(previous, key, page: page, tree)
            previous = key
        }
    }

    private mutating func checkLeaf(
        _ bytes: UnsafeRawBufferPointer, _ node: Node, key: UnsafeRawBufferPointer, size: Int, page: UInt64,
        _ tree: Tree
    ) throws(EventLogError) {
        let dataStart = node.offset + Self.nodeHeaderSize + node.keySize
        let allowed: UInt16 = tree.isMain ? Self.subData : (tree.dupSort ? Self.subData | Self.dupData : Self.bigData)
        guard node.flags & ~allowed == 0 else {
            throw damage(page, tree, "a node has flags 0x\(String(node.flags, radix: 16))")
        }
        if node.flags & Self.bigData != 0 {
            guard dataStart + 8 <= size else { throw damage(page, tree, "an overflow node runs past the page end") }
            let first = bytes.loadUnaligned(fromByteOffset: dataStart, as: UInt64.self)
            try checkOverflow(first, dataSize: node.dataSize, page: page, tree)
            return
        }
        guard dataStart + node.dataSize <= size else {
            throw damage(page, tree, "a value of \(node.dataSize) bytes runs past the page end")
        }
        let data = UnsafeRawBufferPointer(rebasing: bytes[dataStart..<(dataStart + node.dataSize)])
        if tree.isFreeList {
            try checkPageList(data, page: page, tree)
        } else if tree.isMain && node.flags & Self.subData != 0 {
            try walkNamed(key, data, page: page, tree)
        } else if tree.isDuplicates {
            guard data.isEmpty else { throw damage(page, tree, "a duplicate holds a value of \(data.count) bytes") }
        } else if node.flags & Self.dupData != 0 {
            try checkDuplicates(node, data, page: page, tree)
        } else if node.flags & Self.subData != 0 {
            throw damage(page, tree, "a sub-database flag without the duplicates flag")
        } else if tree.dupSort && tree.dupFixed && tree.record.pad != 0 {
            guard data.count == Int(tree.record.pad) else {
                throw damage(page, tree, "a fixed-size duplicate of \(data.count) bytes, the database says \(tree.record.pad)")
            }
        }
    }

    private mutating func checkOverflow(_ first: UInt64, dataSize: Int, page: UInt64, _ tree: Tree) throws(EventLogError) {
        guard !tree.dupSort, !tree.isMain else { throw damage(page, tree, "an overflow value in a sorted-duplicates database") }
        guard first >= 2, first <= lastPage else {
            throw damage(page, tree, "an overflow value names page \(first), outside pages 2...\(lastPage)")
        }
        let header = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.headerSize, alignment: 8)
        defer { header.deallocate() }
        let got = pread(fd, header.baseAddress, Self.headerSize, off_t(first) * off_t(pageSize))
        guard got == Self.headerSize else { throw damage(first, tree, "the file ends inside it") }
        summary.pagesRead += 1
        let number = header.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        let flags = header.loadUnaligned(fromByteOffset: 10, as: UInt16.self)
        let pages = UInt64(header.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        guard number == first else { throw damage(first, tree, "an overflow page says it is page \(number)") }
        guard flags == Self.overflow else {
            throw damage(first, tree, "an overflow value's page has flags 0x\(String(flags, radix: 16))")
        }
        guard pages >= 1, first + pages - 1 <= lastPage,
            UInt64(dataSize) + UInt64(Self.headerSize) <= pages * UInt64(pageSize),
            UInt64(dataSize) + UInt64(Self.headerSize) > (pages - 1) * UInt64(pageSize)
        else {
            throw damage(first, tree, "an overflow run of \(pages) pages for a value of \(dataSize) bytes")
        }
        for index in 0..<pages { try claim(first + index, tree, "an overflow value") }
        summary.overflowPages += Int(pages)
        if tree.isFreeList {
            let data = UnsafeMutableRawBufferPointer.allocate(byteCount: dataSize, alignment: 8)
            defer { data.deallocate() }
            let got = pread(fd, data.baseAddress, dataSize, off_t(first) * off_t(pageSize) + off_t(Self.headerSize))
            guard got == dataSize else { throw damage(first, tree, "the file ends inside an overflow value") }
            try checkPageList(UnsafeRawBufferPointer(data), page: first, tree)
        }
    }

    /// A free-list value: a count, then that many page numbers in the file.
    private func checkPageList(_ data: UnsafeRawBufferPointer, page: UInt64, _ tree: Tree) throws(EventLogError) {
        guard data.count >= 8, data.count % 8 == 0 else {
            throw damage(page, tree, "a page list of \(data.count) bytes")
        }
        let count = data.loadUnaligned(as: UInt64.self)
        guard count == UInt64(data.count / 8 - 1) else {
            throw damage(page, tree, "a page list says \(count) pages in \(data.count) bytes")
        }
        for index in 0..<Int(count) {
            let free = data.loadUnaligned(fromByteOffset: 8 + index * 8, as: UInt64.self)
            guard free >= 2, free <= lastPage else {
                throw damage(page, tree, "the free list names page \(free), outside pages 2...\(lastPage)")
            }
        }
    }

    private mutating func walkNamed(_ key: UnsafeRawBufferPointer, _ data: UnsafeRawBufferPointer, page: UInt64,
                                    _ tree: Tree) throws(EventLogError)
    {
        let name = String(decoding: key, as: UTF8.self)
        guard data.count == Self.databaseRecordSize else {
            throw damage(page, tree, "the record of database \(name) has \(data.count) bytes")
        }
        let record = Record(data)
        if let expected = expectedFlags[name] {
            guard record.flags == expected else {
                throw damage(page, tree, "database \(name) has flags 0x\(String(record.flags, radix: 16)), "
                    + "expected 0x\(String(expected, radix: 16))")
            }
        } else {
            guard record.flags & ~(Self.dupSort | Self.dupFixed) == 0 else {
                throw damage(page, tree, "database \(name) has flags 0x\(String(record.flags, radix: 16))")
            }
        }
        // md_pad of a fixed-size duplicates database is set once a key's duplicates first
        // move to a sub-database; 0 before that.
        if record.flags & Self.dupFixed != 0 {
            guard record.pad <= 511 else {
                throw damage(page, tree, "database \(name) has fixed-size duplicates of \(record.pad) bytes")
            }
        }
        try walk(Tree(
            name: name, record: record, integerKeys: false, dupSort: record.flags & Self.dupSort != 0,
            dupFixed: record.flags & Self.dupFixed != 0, isFreeList: false, isMain: false, isDuplicates: false))
    }

    /// The duplicates of one key: a sub-database, or an inline sub-page.
    private mutating func checkDuplicates(_ node: Node, _ data: UnsafeRawBufferPointer, page: UInt64, _ tree: Tree)
        throws(EventLogError)
    {
        if node.flags & Self.subData != 0 {
            guard data.count == Self.databaseRecordSize else {
                throw damage(page, tree, "a duplicates record of \(data.count) bytes")
            }
            let record = Record(data)
            if tree.dupFixed {
                guard record.pad > 0, record.pad <= 511, tree.record.pad == 0 || record.pad == tree.record.pad else {
                    throw damage(page, tree, "duplicates of \(record.pad) bytes, the database says \(tree.record.pad)")
                }
            }
            try walk(Tree(
                name: tree.name + " (duplicates)", record: record, integerKeys: false, dupSort: false,
                dupFixed: tree.dupFixed, isFreeList: false, isMain: false, isDuplicates: true))
            return
        }
        guard data.count >= Self.headerSize else { throw damage(page, tree, "a duplicates sub-page of \(data.count) bytes") }
        let flags = data.loadUnaligned(fromByteOffset: 10, as: UInt16.self)
        let expected = tree.dupFixed ? Self.leaf | Self.subPage | Self.leaf2 : Self.leaf | Self.subPage
        guard flags == expected else {
            throw damage(page, tree, "a duplicates sub-page has flags 0x\(String(flags, radix: 16))")
        }
        let count = try checkBounds(data, size: data.count, page: page, tree)
        let sub = Tree(
            name: tree.name + " (duplicates)", record: tree.record, integerKeys: false, dupSort: false,
            dupFixed: tree.dupFixed, isFreeList: false, isMain: false, isDuplicates: true)
        if tree.dupFixed {
            let keySize = Int(data.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
            guard keySize > 0, tree.record.pad == 0 || keySize == Int(tree.record.pad) else {
                throw damage(page, tree, "a duplicates sub-page of \(keySize)-byte keys, the database says \(tree.record.pad)")
            }
            try checkFixed(data, count: count, keySize: keySize, page: page, sub)
            return
        }
        var previous: UnsafeRawBufferPointer?
        for index in 0..<count {
            let (inner, key) = try self.node(data, index, size: data.count, page: page, sub)
            try order(previous, key, page: page, sub)
            previous = key
            guard inner.flags == 0, inner.dataSize == 0 else {
                throw damage(page, tree, "a duplicate node with flags 0x\(String(inner.flags, radix: 16))")
            }
        }
    }
}
