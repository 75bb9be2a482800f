import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one-writer-per-directory lock: an exclusive `flock` on `writer.lock` holding the pid.
///
/// `flock` locks belong to an open file description, so a second writer in the same process
/// is refused just like one in another process, and the kernel drops the lock when the holder
/// dies (also on SIGKILL): no stale lock to clean up.
final class WriterLock: Sendable {
    static let fileName = "writer.lock"
    /// The locked file; -1 once released.
    private let descriptor: Mutex<Int32>

    /// - Throws: `.writerLocked` naming the holder's pid, at once (`LOCK_NB`), or `.system`.
    init(directory: String) throws {
        let path = directory + "/" + WriterLock.fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw EventLogError(.system, "open \(path): \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let failure = errno
            let holder = WriterLock.readPID(fd)
            close(fd)
            if failure == EWOULDBLOCK {
                let who = holder.map { "process \($0)" } ?? "another process"
                throw EventLogError(
                    .writerLocked, "the event log in \(directory) is already open for writing by \(who) (\(path))",
                    holderPID: holder)
            }
            throw EventLogError(.system, "flock \(path): \(String(cString: strerror(failure)))")
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        descriptor = Mutex(fd)
    }

    deinit { release() }

    /// Gives up the lock (idempotent): the writer calls it as its thread ends, so a writer
    /// opened right after `close()` returns finds the directory free.
    func release() {
        descriptor.withLock { fd in
            guard fd >= 0 else { return }
            // Emptying the file first tells a reader of it that nobody holds the lock.
            _ = ftruncate(fd, 0)
            close(fd)
            fd = -1
        }
    }

    private static func readPID(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[0..<count], as: UTF8.self).trimmingWhitespace()
        return Int32(text)
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        String(self.filter { !$0.isWhitespace })
    }
}
