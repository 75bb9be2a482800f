import CapstanSupport
import Synchronization

/// When and how long to wait before trying a failed request again.
///
/// Only requests that are safe to repeat are retried (GET, LIST, server-side apply, DELETE,
/// PUT carrying a `resourceVersion`, and creates the caller made idempotent with a key); a
/// plain POST never is, because its first attempt may have taken effect. Transient failures
/// only: 429, 5xx and transport failures other than TLS trust. The wait is the server's
/// `Retry-After` when it sent one (capped), else exponential backoff with full jitter.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in total, the first included; 1 disables retries.
    public var maxAttempts: Int
    /// The backoff ceiling before jitter for attempt 1; doubles per attempt.
    public var baseDelay: Duration
    /// No backoff grows beyond this.
    public var maxDelay: Duration
    /// A server's `Retry-After` is honoured up to this.
    public var retryAfterMax: Duration

    public init(
        maxAttempts: Int = 6, baseDelay: Duration = .milliseconds(50), maxDelay: Duration = .seconds(5),
        retryAfterMax: Duration = .seconds(30)
    ) {
        precondition(maxAttempts >= 1)
        precondition(baseDelay >= .zero && maxDelay >= baseDelay)
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.retryAfterMax = retryAfterMax
    }

    public static var `default`: RetryPolicy { RetryPolicy() }
    /// Never retry.
    public static var none: RetryPolicy { RetryPolicy(maxAttempts: 1) }

    /// Whether to try again after `error` on attempt `attempt` (1-based).
    public func shouldRetry(_ error: KubernetesError, attempt: Int, idempotent: Bool) -> Bool {
        idempotent && attempt < maxAttempts && error.isTransient
    }

    /// The wait before attempt `attempt + 1`.
    ///
    /// - Parameter jitter: a number in [0, 1) (random in production, fixed in tests).
    public func delay(afterAttempt attempt: Int, retryAfter: Duration?, jitter: Double) -> Duration {
        precondition(attempt >= 1)
        precondition(jitter >= 0 && jitter < 1)
        if let retryAfter {
            // Honour the server, plus up to 10% so clients told the same second do not return together.
            let capped = min(retryAfter, retryAfterMax)
            return capped + capped * (jitter * 0.1)
        }
        let exponent = min(attempt - 1, 30)
        let ceiling = min(maxDelay, baseDelay * (1 << exponent))
        return ceiling * jitter
    }
}

/// The random source of retry backoff jitter: numbers in [0, 1).
///
/// The system generator in production; `seeded` in simulations and tests, so a run's retry
/// timings repeat with its seed.
public struct RetryJitter: Sendable {
    private let draw: @Sendable () -> Double

    /// - Parameter draw: returns a number in [0, 1); values outside are clamped into it.
    public init(_ draw: @escaping @Sendable () -> Double) {
        self.draw = draw
    }

    /// `Double.random(in: 0..<1)` from the system generator.
    public static var system: RetryJitter { RetryJitter { Double.random(in: 0..<1) } }

    /// A deterministic sequence from `seed` (SplitMix64), shared by every request of the client.
    public static func seeded(_ seed: UInt64) -> RetryJitter {
        let state = Mutex(SplitMix64(seed: seed))
        return RetryJitter {
            state.withLock { generator in Double.random(in: 0..<1, using: &generator) }
        }
    }

    /// The next jitter value, in [0, 1).
    public func next() -> Double {
        let value = draw()
        guard value.isFinite, value > 0 else { return 0 }
        return min(value, 1.0.nextDown)
    }
}
