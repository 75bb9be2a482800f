/// An `int-or-string` value that is a count or a percentage (`3`, `"25%"`), as Cluster API
/// uses for `maxSurge`, `maxUnavailable`, `maxInFlight` and `maxUnhealthy`.
///
/// A percentage turns into a count against a total with ``scaled(against:rounding:)``,
/// rounding the way the field's owner rounds (k8s `intstr.GetScaledValueFromIntOrPercent`):
/// `maxSurge` up, `maxUnavailable` and `maxUnhealthy` down. A string without `%` is refused,
/// as CAPI refuses it. Negative values are refused: none of these fields may be negative.
///
/// Stored (Codable) as Kubernetes writes it: a JSON integer, or a string ending in `%`.
public enum IntOrPercent: Hashable, Sendable, Codable, CustomStringConvertible {
    case count(Int)
    case percent(Int)

    /// Which way a percentage of a total rounds.
    public enum Rounding: Sendable {
        case up
        case down
    }

    /// Parses `3` or `25%`.
    ///
    /// - Throws: ``DomainError`` with code `invalidIntOrPercent`.
    public init(parsing text: String) throws {
        let digits = text.hasSuffix("%") ? text.dropLast() : Substring(text)
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = Int(digits) else {
            throw DomainError(
                .invalidIntOrPercent, "value \"\(text)\" is not a non-negative integer or percentage (for example 1 or 25%)")
        }
        self = text.hasSuffix("%") ? .percent(value) : .count(value)
    }

    /// A count, checked to be non-negative.
    ///
    /// - Throws: ``DomainError`` with code `invalidIntOrPercent` when negative.
    public init(checkedCount value: Int) throws {
        guard value >= 0 else {
            throw DomainError(.invalidIntOrPercent, "value \(value) is negative")
        }
        self = .count(value)
    }

    /// The value as a count of `total`: a count as is, a percentage of `total` rounded as told.
    ///
    /// `25%` of 10 is 3 rounded up (`maxSurge`) and 2 rounded down (`maxUnavailable`).
    public func scaled(against total: Int, rounding: Rounding) -> Int {
        precondition(total >= 0, "a total is never negative")
        switch self {
        case .count(let value):
            return value
        case .percent(let value):
            let (product, overflow) = value.multipliedReportingOverflow(by: total)
            precondition(!overflow, "\(value)% of \(total) overflows")
            switch rounding {
            case .up: return product / 100 + (product % 100 == 0 ? 0 : 1)
            case .down: return product / 100
            }
        }
    }

    /// Whether the value is zero whatever the total (`0` or `0%`).
    public var isZero: Bool {
        switch self {
        case .count(let value), .percent(let value): value == 0
        }
    }

    /// `3` or `25%`.
    public var description: String {
        switch self {
        case .count(let value): "\(value)"
        case .percent(let value): "\(value)%"
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        func corrupted(_ error: DomainError) -> DecodingError {
            DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: decoder.codingPath, debugDescription: error.message, underlyingError: error))
        }
        do {
            if let value = try? container.decode(Int.self) {
                self = try IntOrPercent(checkedCount: value)
            } else {
                let text = try container.decode(String.self)
                guard text.hasSuffix("%") else {
                    throw DomainError(.invalidIntOrPercent, "value \"\(text)\" is a string but not a percentage (N%)")
                }
                self = try IntOrPercent(parsing: text)
            }
        } catch let error as DomainError {
            throw corrupted(error)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .count(let value): try container.encode(value)
        case .percent: try container.encode(description)
        }
    }
}

/// How many machines a rolling update may add above, and take below, the desired count.
///
/// CAPI's `mdutil.ResolveFenceposts`: `maxSurge` rounds up, `maxUnavailable` rounds down,
/// and when both come to 0 (only rounding can do that; validation refuses two explicit
/// zeros) `maxUnavailable` becomes 1, so the rollout can always move.
public struct RolloutFenceposts: Hashable, Sendable, Codable {
    public var surge: Int
    public var unavailable: Int

    public init(surge: Int, unavailable: Int) {
        self.surge = surge
        self.unavailable = unavailable
    }

    /// Resolves the two limits against `replicas`. CAPI's defaults are `maxSurge` 1 and `maxUnavailable` 0.
    public init(maxSurge: IntOrPercent = .count(1), maxUnavailable: IntOrPercent = .count(0), replicas: Int) {
        let surge = maxSurge.scaled(against: replicas, rounding: .up)
        let unavailable = maxUnavailable.scaled(against: replicas, rounding: .down)
        self.init(surge: surge, unavailable: surge == 0 && unavailable == 0 ? 1 : unavailable)
    }
}
