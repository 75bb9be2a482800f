import CapstanSupport
import Foundation

/// Kubernetes timestamps, formatted by the project's one RFC 3339 formatter.
enum Timestamp {
    /// RFC 3339 at second precision in UTC, as `metav1.Time` serializes.
    static func rfc3339(_ date: Date) -> String {
        CapstanSupport.rfc3339(nanoseconds: nanoseconds(date), fractionDigits: 0)
    }

    /// RFC 3339 with microseconds, as `metav1.MicroTime` (leases) and the ledger use.
    static func rfc3339Micro(_ date: Date) -> String {
        CapstanSupport.rfc3339(nanoseconds: nanoseconds(date), fractionDigits: 6)
    }

    /// Whole microseconds since the epoch, rounded down, as nanoseconds.
    private static func nanoseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded(.down)) * 1_000
    }
}
