import CZstd
import Synchronization

/// zstd errors are `size_t` results tested with `ZSTD_isError`; this names them.
enum Zstd {
    static func check(_ result: Int, _ call: StaticString) throws(EventLogError) -> Int {
        if ZSTD_isError(result) != 0 {
            throw EventLogError(.zstd, "\(call): \(String(cString: ZSTD_getErrorName(result)))")
        }
        return result
    }

    /// `ZSTD_c_format` / `ZSTD_d_format` (experimental parameters, stable values in zstd.h)
    /// set to `ZSTD_f_zstd1_magicless`: the 4-byte magic number is left out of every frame.
    static let compressionFormatParameter = ZSTD_cParameter(rawValue: 10)  // ZSTD_c_experimentalParam2
    static let decompressionFormatParameter = ZSTD_dParameter(rawValue: 1000)  // ZSTD_d_experimentalParam1
    static let magicless: Int32 = 1
}

/// A compression context (`ZSTD_CCtx`), owned by one thread at a time, freed in `deinit`.
///
/// Frames are as small as zstd allows, since events are small: no magic number, no content
/// size (the envelope stores the raw length), no checksum (the envelope has one), no
/// dictionary id (the envelope names it).
final class ZstdCompressor {
    private let context: OpaquePointer
    /// The dictionary referenced now (held, so its CDict outlives the reference):
    /// re-referencing per call reset the context's dictionary state for every payload.
    private var referenced: CompressionDictionary?
    private var hasReferenced = false

    init(level: Int32) {
        guard let context = ZSTD_createCCtx() else { fatalError("ZSTD_createCCtx: out of memory") }
        self.context = context
        // Our own parameters: an error here is a programmer error.
        precondition(ZSTD_isError(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level)) == 0)
        precondition(ZSTD_isError(ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 0)) == 0)
        precondition(ZSTD_isError(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 0)) == 0)
        precondition(ZSTD_isError(ZSTD_CCtx_setParameter(context, ZSTD_c_dictIDFlag, 0)) == 0)
        precondition(
            ZSTD_isError(ZSTD_CCtx_setParameter(context, Zstd.compressionFormatParameter, Zstd.magicless)) == 0)
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `source` (with `dictionary` when given); nil when the result would not be
    /// smaller than the source (the envelope then stores the payload raw).
    func compress(_ source: [UInt8], dictionary: CompressionDictionary?) throws(EventLogError) -> [UInt8]? {
        guard !source.isEmpty else { return nil }
        if !hasReferenced || dictionary !== referenced {
            _ = try Zstd.check(ZSTD_CCtx_refCDict(context, dictionary?.compressionHandle), "ZSTD_CCtx_refCDict")
            referenced = dictionary
            hasReferenced = true
        }
        let capacity = ZSTD_compressBound(source.count)
        var failure: EventLogError?
        let output = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            let result = source.withUnsafeBytes { src in
                ZSTD_compress2(context, buffer.baseAddress, capacity, src.baseAddress, src.count)
            }
            if ZSTD_isError(result) != 0 {
                failure = EventLogError(.zstd, "ZSTD_compress2: \(String(cString: ZSTD_getErrorName(result)))")
                count = 0
            } else {
                count = result
            }
        }
        if let failure { throw failure }
        return output.count < source.count ? output : nil
    }
}

@available(*, unavailable)
extension ZstdCompressor: Sendable {}

/// A decompression context (`ZSTD_DCtx`), owned by one thread at a time, freed in `deinit`.
final class ZstdDecompressor {
    private let context: OpaquePointer
    private var referenced: OpaquePointer?

    init() {
        guard let context = ZSTD_createDCtx() else { fatalError("ZSTD_createDCtx: out of memory") }
        self.context = context
        precondition(
            ZSTD_isError(ZSTD_DCtx_setParameter(context, Zstd.decompressionFormatParameter, Zstd.magicless)) == 0)
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses into a new array of exactly `rawLength` bytes.
    /// - Throws: `.corrupt` when zstd rejects the frame or the size differs (the caller adds
    ///   the position).
    func decompress(_ source: UnsafeRawBufferPointer, rawLength: Int, dictionary: CompressionDictionary?)
        throws(EventLogError) -> [UInt8]
    {
        let handle = dictionary?.decompressionHandle
        if handle != referenced {
            _ = try Zstd.check(ZSTD_DCtx_refDDict(context, handle), "ZSTD_DCtx_refDDict")
            referenced = handle
        }
        // The closure captures only a plain Int: capturing an optional error here cost a
        // generic metadata lookup per event in a replay.
        var result = 0
        let output = [UInt8](unsafeUninitializedCapacity: rawLength) { buffer, count in
            result = ZSTD_decompressDCtx(context, buffer.baseAddress, rawLength, source.baseAddress, source.count)
            count = ZSTD_isError(result) == 0 && result == rawLength ? result : 0
        }
        if ZSTD_isError(result) != 0 {
            throw EventLogError(
                .corrupt, "zstd cannot decompress the payload: \(String(cString: ZSTD_getErrorName(result)))")
        }
        if result != rawLength {
            throw EventLogError(.corrupt, "payload decompresses to \(result) bytes, its length field says \(rawLength)")
        }
        return output
    }
}

@available(*, unavailable)
extension ZstdDecompressor: Sendable {}

/// A pool of contexts: each user takes one for its exclusive use and gives it back, so a
/// context is never used by two threads at once and is reused across tasks.
final class ContextPool<Context>: Sendable {
    // The contexts are not Sendable; the pool hands each to one user at a time, which is what
    // makes moving them between threads safe (zstd: "a context can be used by one thread at a time").
    private struct Slots: @unchecked Sendable { var free: [Context] }
    private let slots = Mutex(Slots(free: []))
    private let make: @Sendable () -> Context
    private let keep: Int

    init(keep: Int = 8, make: @escaping @Sendable () -> Context) {
        self.make = make
        self.keep = keep
    }

    func with<R, E: Error>(_ body: (Context) throws(E) -> R) throws(E) -> R {
        let context = slots.withLock { $0.free.popLast() } ?? make()
        defer {
            let unused = context
            slots.withLock { slots in
                if slots.free.count < keep { slots.free.append(unused) }
            }
        }
        return try body(context)
    }
}

/// A trained zstd dictionary with its prepared compression and decompression handles.
///
/// `ZSTD_CDict`/`ZSTD_DDict` are read-only once created and may be shared by many contexts on
/// many threads (zstd.h: "CDict can be created once and shared by multiple threads
/// concurrently"), hence Sendable.
final class CompressionDictionary: @unchecked Sendable {
    let id: UInt32
    let bytes: [UInt8]
    let compressionHandle: OpaquePointer
    let decompressionHandle: OpaquePointer

    init(id: UInt32, bytes: [UInt8], level: Int32) throws(EventLogError) {
        let (cdict, ddict) = bytes.withUnsafeBytes { raw in
            (ZSTD_createCDict(raw.baseAddress, raw.count, level), ZSTD_createDDict(raw.baseAddress, raw.count))
        }
        guard let cdict, let ddict else {
            if let cdict { ZSTD_freeCDict(cdict) }
            if let ddict { ZSTD_freeDDict(ddict) }
            throw EventLogError(.zstd, "dictionary \(id) of \(bytes.count) bytes cannot be loaded")
        }
        self.id = id
        self.bytes = bytes
        self.compressionHandle = cdict
        self.decompressionHandle = ddict
    }

    deinit {
        ZSTD_freeCDict(compressionHandle)
        ZSTD_freeDDict(decompressionHandle)
    }

    /// Trains a dictionary from sample payloads (`ZDICT_trainFromBuffer`).
    /// - Throws: `.zstd` when zstd cannot train from these samples (too few, too alike...).
    static func train(samples: [[UInt8]], capacity: Int) throws(EventLogError) -> [UInt8] {
        var joined: [UInt8] = []
        joined.reserveCapacity(samples.reduce(0) { $0 + $1.count })
        var sizes: [Int] = []
        sizes.reserveCapacity(samples.count)
        for sample in samples {
            joined.append(contentsOf: sample)
            sizes.append(sample.count)
        }
        var result = 0
        let dictionary = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            result = joined.withUnsafeBytes { src in
                sizes.withUnsafeBufferPointer { sizes in
                    ZDICT_trainFromBuffer(
                        buffer.baseAddress, capacity, src.baseAddress, sizes.baseAddress, UInt32(sizes.count))
                }
            }
            count = ZDICT_isError(result) != 0 ? 0 : result
        }
        if ZDICT_isError(result) != 0 {
            throw EventLogError(.zstd, "ZDICT_trainFromBuffer: \(String(cString: ZDICT_getErrorName(result)))")
        }
        return dictionary
    }
}
