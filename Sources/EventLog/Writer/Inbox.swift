import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An event ready for the writer: validated, and compressed by the appender's task.
struct PreparedEvent: Sendable {
    var proposed: ProposedEvent
    /// The compressed payload; nil stores `proposed.payload` raw.
    var compressed: [UInt8]?
    /// The dictionary `compressed` used (0: none).
    var dictionaryID: UInt32
}

struct PreparedStream: Sendable {
    var streamID: StreamID
    var expectedRevision: ExpectedRevision
    var events: [PreparedEvent]
}

/// One append as the writer sees it; `waiter` is resumed after the commit (or failure).
struct AppendRequest: Sendable {
    var streams: [PreparedStream]
    var stateWrites: [StateWrite]
    var waiter: CheckedContinuation<AppendResult, any Error>
    var eventCount: Int { streams.reduce(0) { $0 + $1.events.count } }
}

/// The bounded inbox between appenders (any task) and the writer thread.
///
/// Appenders first reserve a slot (`reserve()`, suspending while the inbox is full: that is
/// the backpressure), then enqueue. The writer thread blocks on a condition variable until
/// requests arrive and takes them in batches.
final class Inbox: @unchecked Sendable {
    // @unchecked Sendable: every field is read and written with `mutex` held.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue: [AppendRequest] = []
    private var head = 0
    private var reserved = 0
    private var spaceWaiters: [CheckedContinuation<Bool, Never>] = []
    private var closed = false
    /// Why intake stopped, when it was not a plain close (the writer stopped after a fatal error).
    private var failure: EventLogError?
    private var wakeups = 0
    /// The writer waits on `condition` for a first request (idle): enqueue signals only then.
    private var parked = false
    /// While the writer lingers: the queue length that ends the linger (enqueue signals when
    /// it is reached; the linger's own timed waits see other arrivals).
    private var lingerUntil = Int.max
    /// Requests the writer expects back: queued when it last released waiters, plus those it
    /// released (appenders that await their commit come back with the next request).
    private var expected = 0
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity > 0, "inbox capacity must be positive")
        self.capacity = capacity
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    private func locked<R>(_ body: () -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// Reserves room for one request, waiting while the inbox is full.
    /// - Throws: `.closed` once the log is closing.
    func reserve() async throws {
        while true {
            let outcome: Bool? = locked {
                if closed { return false }
                if queue.count - head + reserved < capacity {
                    reserved += 1
                    return true
                }
                return nil
            }
            switch outcome {
            case true?: return
            case false?: throw closedError()
            case nil:
                let open = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                    let resumeNow: Bool? = locked {
                        if closed { return false }
                        if queue.count - head + reserved < capacity { return true }
                        spaceWaiters.append(continuation)
                        return nil
                    }
                    if let resumeNow { continuation.resume(returning: resumeNow) }
                }
                if !open { throw closedError() }
            }
        }
    }

    private func closedError() -> EventLogError {
        locked { failure } ?? EventLogError(.closed, "the event log is closed")
    }

    /// Why intake stopped, when the writer stopped after a fatal error.
    var stopError: EventLogError? { locked { failure } }

    /// Stops intake because the writer failed: waiting and future reservations fail with
    /// `error`; queued and reserved requests are still taken by the writer (which fails them).
    func fail(_ error: EventLogError) {
        let waiters: [CheckedContinuation<Bool, Never>] = locked {
            if failure == nil { failure = error }
            closed = true
            pthread_cond_broadcast(condition)
            defer { spaceWaiters.removeAll() }
            return spaceWaiters
        }
        for waiter in waiters { waiter.resume(returning: false) }
    }

    /// Gives back a reservation that will not be used.
    func release() {
        let waiters: [CheckedContinuation<Bool, Never>] = locked {
            reserved -= 1
            pthread_cond_signal(condition)
            defer { spaceWaiters.removeAll() }
            return spaceWaiters
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// Enqueues a request on a reservation and wakes the writer.
    func enqueue(_ request: AppendRequest) {
        locked {
            precondition(reserved > 0, "enqueue without a reservation")
            reserved -= 1
            queue.append(request)
            // A futex wake per request cost the appenders and the writer alike; the writer
            // needs one only when it sleeps for a first request or for the linger target.
            if parked || queue.count - head >= lingerUntil { pthread_cond_signal(condition) }
        }
    }

    /// Called by the writer just before it resumes `released` waiters: the next linger waits
    /// for them and for what is queued now (a target the closed loop of appenders meets, where
    /// the two previous batches' sum could never be reached once they had merged).
    func willRelease(_ released: Int) {
        locked { expected = min(queue.count - head + released, capacity) }
    }

    /// How long the writer may linger for more requests before taking a batch.
    struct Linger {
        /// Stop lingering once this many requests are queued (0: take the batch at once;
        /// `Int.max`: the requests expected back, see `willRelease`).
        var requests: Int
        /// The most the whole linger may last.
        var maxNanoseconds: Int
        /// Stop lingering once no request arrived for this long.
        var idleNanoseconds: Int

        static let none = Linger(requests: 0, maxNanoseconds: 0, idleNanoseconds: 0)
    }

    /// Blocks the writer thread until requests arrive or `wake()` is called; takes whole
    /// requests up to `maxEvents` events. Returns an empty batch after a bare wake-up, nil once
    /// closed and drained.
    ///
    /// With a `linger`, once a request is queued the writer waits a little longer (bounded)
    /// for the appenders of the previous commit, which re-enqueue just after it released them:
    /// without it, batches alternate between two halves of the appenders.
    ///
    /// With `idleNanoseconds`, an inbox that stays empty that long returns an empty batch
    /// (the writer then folds its tail).
    func takeBatch(maxEvents: Int, linger: Linger = .none, idleNanoseconds: Int? = nil) -> [AppendRequest]? {
        var batch: [AppendRequest] = []
        var woken = false
        let waiters: [CheckedContinuation<Bool, Never>] = locked {
            parked = true
            let idleDeadline = idleNanoseconds.map { Self.realtimeNanoseconds() + $0 }
            var idle = false
            while head == queue.count && !(closed && reserved == 0) && wakeups == 0 && !idle {
                if let idleDeadline {
                    var until = timespec(tv_sec: idleDeadline / 1_000_000_000, tv_nsec: idleDeadline % 1_000_000_000)
                    _ = pthread_cond_timedwait(condition, mutex, &until)
                    idle = Self.realtimeNanoseconds() >= idleDeadline
                } else {
                    pthread_cond_wait(condition, mutex)
                }
            }
            parked = false
            if idle && head == queue.count { woken = true }
            var linger = linger
            if linger.requests == .max { linger.requests = expected }
            if linger.requests > 1 && head < queue.count && queue.count - head < linger.requests && !closed {
                lingerUntil = linger.requests
                lingerLocked(linger)
                lingerUntil = .max
            }
            woken = woken || wakeups > 0
            wakeups = 0
            var events = 0
            while head < queue.count {
                let next = queue[head].eventCount
                if !batch.isEmpty && events + next > maxEvents { break }
                batch.append(queue[head])
                events += next
                head += 1
            }
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 1024 {
                queue.removeFirst(head)
                head = 0
            }
            defer { spaceWaiters.removeAll() }
            return spaceWaiters
        }
        for waiter in waiters { waiter.resume(returning: true) }
        return batch.isEmpty && !woken ? nil : batch
    }

    /// Waits (with `mutex` held) until `linger.requests` are queued, no request arrived for
    /// `linger.idleNanoseconds`, `linger.maxNanoseconds` passed, or the inbox closes.
    private func lingerLocked(_ linger: Linger) {
        let start = Self.realtimeNanoseconds()
        let end = start + linger.maxNanoseconds
        var lastArrival = start
        var queued = queue.count - head
        while queue.count - head < linger.requests && !closed && wakeups == 0 {
            let deadline = min(end, lastArrival + linger.idleNanoseconds)
            if Self.realtimeNanoseconds() >= deadline { return }
            var until = timespec(tv_sec: deadline / 1_000_000_000, tv_nsec: deadline % 1_000_000_000)
            _ = pthread_cond_timedwait(condition, mutex, &until)
            if queue.count - head > queued {
                queued = queue.count - head
                lastArrival = Self.realtimeNanoseconds()
            }
        }
    }

    /// CLOCK_REALTIME (the clock `pthread_cond_timedwait` uses by default) in nanoseconds.
    private static func realtimeNanoseconds() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int(now.tv_sec) * 1_000_000_000 + Int(now.tv_nsec)
    }

    /// Wakes the writer without a request (a trained dictionary is ready to store).
    func wake() {
        locked {
            wakeups += 1
            pthread_cond_signal(condition)
        }
    }

    /// Stops intake: waiting and future reservations fail; queued and reserved requests are
    /// still taken by the writer.
    func close() {
        let waiters: [CheckedContinuation<Bool, Never>] = locked {
            closed = true
            pthread_cond_broadcast(condition)
            defer { spaceWaiters.removeAll() }
            return spaceWaiters
        }
        for waiter in waiters { waiter.resume(returning: false) }
    }

    var isClosed: Bool { locked { closed } }
}
