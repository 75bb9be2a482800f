import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Wakes tails when the log may have changed, without a busy loop.
///
/// The writer of this process calls `publish()` after each commit. For writers in other
/// processes a watcher thread (started by the first tail) waits on inotify `IN_MODIFY` /
/// `IN_CLOSE_WRITE` of the data file, and publishes at least once a second as a slow fallback.
final class ChangeNotifier: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var cancelled: Set<UInt64> = []
        var nextWaiter: UInt64 = 0
        var watching = false
        var stopped = false
    }

    private let state = Mutex(State())

    /// Increases with every change; a tail reads it before looking for new events.
    var generation: UInt64 { state.withLock { $0.generation } }

    func publish() {
        let waiters = state.withLock { state in
            state.generation &+= 1
            let waiters = state.waiters.values
            state.waiters.removeAll()
            return Array(waiters)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once `generation` has moved past `seen`, or the task is cancelled.
    func wait(beyond seen: UInt64) async {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.generation != seen || state.cancelled.remove(id) != nil || state.stopped {
                        return true
                    }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                if let waiter = state.waiters.removeValue(forKey: id) { return waiter }
                state.cancelled.insert(id)
                return nil
            }
            waiter?.resume()
        }
    }

    /// Starts the cross-process watcher on `dataFile` once; it runs until `stop()`.
    func startWatching(dataFile: String) {
        let start = state.withLock { state in
            defer { state.watching = true }
            return !state.watching && !state.stopped
        }
        guard start else { return }
        let thread = Thread { [self] in watch(dataFile: dataFile) }
        thread.name = "capstan.eventlog.watcher"
        thread.start()
    }

    /// Ends the watcher (within its one-second poll) and wakes every waiter.
    func stop() {
        state.withLock { $0.stopped = true }
        publish()
    }

    private var isStopped: Bool { state.withLock { $0.stopped } }

    private func watch(dataFile: String) {
        #if os(Linux)
        let fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        if fd >= 0 {
            _ = inotify_add_watch(fd, dataFile, UInt32(IN_MODIFY | IN_CLOSE_WRITE))
        }
        defer { if fd >= 0 { close(fd) } }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !isStopped {
            if fd >= 0 {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&poller, 1, 1000)
                // Drain every queued inotify event: one wake-up is enough for any number.
                while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
            } else {
                usleep(1_000_000)
            }
            publish()
        }
        #else
        while !isStopped {
            usleep(1_000_000)
            publish()
        }
        #endif
    }
}
