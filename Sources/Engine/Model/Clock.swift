#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Where the runtime reads time and waits for it: the real wall clock in production, a
/// ``VirtualClock`` in tests and simulations.
public protocol EngineClock: Sendable {
    /// The current time.
    func now() -> Timestamp
    /// Suspends until `deadline` (or later).
    ///
    /// - Throws: `CancellationError` when the task is cancelled.
    func sleep(until deadline: Timestamp) async throws
}

/// The system's real-time clock (`CLOCK_REALTIME`), so timer deadlines stored in the log
/// keep their meaning across restarts of the process.
public struct WallClock: EngineClock {
    public init() {}

    public func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(nanoseconds: Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec))
    }

    public func sleep(until deadline: Timestamp) async throws {
        let remaining = deadline.duration(since: now())
        if remaining > .zero { try await Task.sleep(for: remaining) }
    }
}

/// A clock that moves only when told to: tests advance it and every sleeper whose deadline
/// has passed wakes up.
public final class VirtualClock: EngineClock {
    private struct Sleeper {
        var deadline: Timestamp
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct Guarded {
        var now: Timestamp
        var sleepers: [Int: Sleeper] = [:]
        var nextSleeperID = 0
    }

    private let guarded: Mutex<Guarded>

    public init(start: Timestamp = Timestamp(nanoseconds: 1_700_000_000_000_000_000)) {
        guarded = Mutex(Guarded(now: start))
    }

    public func now() -> Timestamp { guarded.withLock { $0.now } }

    /// Moves time forward by `duration` and wakes every sleeper that is due.
    public func advance(by duration: Duration) {
        let due: [CheckedContinuation<Void, any Error>] = guarded.withLock { state in
            state.now = state.now + duration
            let now = state.now
            let dueIDs = state.sleepers.filter { $0.value.deadline <= now }.map(\.key)
            return dueIDs.compactMap { state.sleepers.removeValue(forKey: $0)?.continuation }
        }
        for continuation in due { continuation.resume() }
    }

    public func sleep(until deadline: Timestamp) async throws {
        let id = guarded.withLock { state -> Int in
            state.nextSleeperID += 1
            return state.nextSleeperID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow = guarded.withLock { state -> Bool in
                    if Task.isCancelled || deadline <= state.now { return true }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let sleeper = guarded.withLock { $0.sleepers.removeValue(forKey: id) }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
        try Task.checkCancellation()
    }
}
