/// A duration written as Go writes it (`time.ParseDuration` / `Duration.String`): `5m0s`,
/// `300s`, `20m`, `1h30m`, `1.5h`, `250ms`.
///
/// Cluster API's v1beta1 fields (`nodeStartupTimeout`, `unhealthyConditions[].timeout`,
/// `nodeDrainTimeout`) are `metav1.Duration`, which is exactly this. Parsing follows Go's
/// `time.ParseDuration` rule for rule — units `ns us µs μs ms s m h`, fractions, several
/// terms, a lone `0`, overflow past `Int64` nanoseconds refused — except that a negative
/// duration is refused unless asked for, since no timeout in these APIs can be negative.
/// ``description`` prints Go's canonical form (`300s` reads back as `5m0s`).
///
/// Stored (Codable) as Go's canonical string.
public struct GoDuration: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The length, in whole nanoseconds as Go keeps it.
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public init(seconds: Int64) {
        let (value, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        precondition(!overflow, "\(seconds)s does not fit a Go duration")
        self.nanoseconds = value
    }

    /// The same length as a Swift `Duration`.
    public var duration: Duration { .nanoseconds(nanoseconds) }

    private static let units: [(name: [UInt8], nanoseconds: UInt64)] = [
        (Array("ns".utf8), 1),
        (Array("us".utf8), 1_000),
        (Array("µs".utf8), 1_000),  // U+00B5 micro sign
        (Array("μs".utf8), 1_000),  // U+03BC Greek mu
        (Array("ms".utf8), 1_000_000),
        (Array("s".utf8), 1_000_000_000),
        (Array("m".utf8), 60_000_000_000),
        (Array("h".utf8), 3_600_000_000_000),
    ]

    /// Parses a Go duration string.
    ///
    /// - Parameters:
    ///   - text: the string, for example `5m0s`.
    ///   - allowsNegative: accept a leading `-` (Go does; timeouts never should).
    /// - Throws: ``DomainError`` with code `invalidDuration`, its message saying which rule
    ///   broke (Go's wording: invalid duration, missing unit, unknown unit) or that it is negative.
    public init(parsing text: String, allowsNegative: Bool = false) throws {
        let quoted = "\"\(text)\""
        func invalid(_ reason: String) -> DomainError {
            DomainError(.invalidDuration, "duration \(quoted) \(reason) (Go duration syntax, for example 5m0s, 300s, 1h30m)")
        }
        var rest = ArraySlice(Array(text.utf8))
        var negative = false
        if let sign = rest.first, sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") {
            negative = sign == UInt8(ascii: "-")
            rest = rest.dropFirst()
        }
        if rest.elementsEqual("0".utf8) {
            self.init(nanoseconds: 0)
            return
        }
        if rest.isEmpty { throw invalid("is empty") }
        let limit: UInt64 = 1 << 63
        var total: UInt64 = 0
        while let first = rest.first {
            guard first == UInt8(ascii: ".") || Self.isDigit(first) else { throw invalid("is not a number followed by a unit") }
            // [0-9]*
            var whole: UInt64 = 0
            var sawWhole = false
            while let c = rest.first, Self.isDigit(c) {
                guard whole <= limit / 10 else { throw invalid("overflows") }
                whole = whole * 10 + UInt64(c - UInt8(ascii: "0"))
                guard whole <= limit else { throw invalid("overflows") }
                sawWhole = true
                rest = rest.dropFirst()
            }
            // (\.[0-9]*)?  Like Go, extra fraction digits stop adding precision instead of failing.
            var fraction: UInt64 = 0
            var scale: Double = 1
            var sawFraction = false
            if rest.first == UInt8(ascii: ".") {
                rest = rest.dropFirst()
                var overflowed = false
                while let c = rest.first, Self.isDigit(c) {
                    sawFraction = true
                    rest = rest.dropFirst()
                    if overflowed { continue }
                    if fraction > (limit - 1) / 10 { overflowed = true; continue }
                    let next = fraction * 10 + UInt64(c - UInt8(ascii: "0"))
                    if next > limit { overflowed = true; continue }
                    fraction = next
                    scale *= 10
                }
            }
            guard sawWhole || sawFraction else { throw invalid("has a term with no digits") }
            let unitName = rest.prefix { $0 != UInt8(ascii: ".") && !Self.isDigit($0) }
            rest = rest.dropFirst(unitName.count)
            guard !unitName.isEmpty else {
                throw DomainError(.invalidDuration, "duration \(quoted) is missing a unit (one of ns, us, ms, s, m, h)")
            }
            guard let unit = Self.units.first(where: { $0.name.elementsEqual(unitName) })?.nanoseconds else {
                let name = String(decoding: unitName, as: UTF8.self)
                throw DomainError(
                    .invalidDuration, "duration \(quoted) has an unknown unit \"\(name)\" (one of ns, us, ms, s, m, h)")
            }
            guard whole <= limit / unit else { throw invalid("overflows") }
            var term = whole * unit
            if fraction > 0 {
                // Go uses float64 here too: nanosecond-exact for fractions of an hour.
                term += UInt64(Double(fraction) * (Double(unit) / scale))
                guard term <= limit else { throw invalid("overflows") }
            }
            total += term
            guard total <= limit else { throw invalid("overflows") }
        }
        if negative {
            guard allowsNegative else { throw invalid("is negative") }
            self.init(nanoseconds: total == limit ? Int64.min : -Int64(total))
        } else {
            guard total < limit else { throw invalid("overflows") }
            self.init(nanoseconds: Int64(total))
        }
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    /// Go's `Duration.String()`: `1h30m0s`, `5m0s`, `1.5s`, `250ms`, `0s`.
    public var description: String {
        let negative = nanoseconds < 0
        let magnitude = nanoseconds.magnitude
        var text: String
        if magnitude < 1_000_000_000 {
            switch magnitude {
            case 0: return "0s"
            case ..<1_000: text = Self.fraction(magnitude, digits: 0) + "ns"
            case ..<1_000_000: text = Self.fraction(magnitude, digits: 3) + "µs"
            default: text = Self.fraction(magnitude, digits: 6) + "ms"
            }
        } else {
            let seconds = magnitude / 1_000_000_000
            let secondsText = Self.fraction(magnitude % 1_000_000_000 + (seconds % 60) * 1_000_000_000, digits: 9)
            let minutes = seconds / 60
            text = secondsText + "s"
            if minutes > 0 {
                text = "\(minutes % 60)m" + text
                if minutes / 60 > 0 { text = "\(minutes / 60)h" + text }
            }
        }
        return negative ? "-" + text : text
    }

    /// `value / 10^digits` with the fraction's trailing zeros (and a bare point) left out.
    private static func fraction(_ value: UInt64, digits: Int) -> String {
        var divisor: UInt64 = 1
        for _ in 0..<digits { divisor *= 10 }
        let whole = value / divisor
        var remainder = value % divisor
        guard remainder > 0 else { return "\(whole)" }
        var fractionDigits = digits
        while remainder % 10 == 0 {
            remainder /= 10
            fractionDigits -= 1
        }
        let text = String(remainder)
        return "\(whole)." + String(repeating: "0", count: fractionDigits - text.count) + text
    }

    public static func < (lhs: GoDuration, rhs: GoDuration) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            try self.init(parsing: text, allowsNegative: true)
        } catch let error as DomainError {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: decoder.codingPath, debugDescription: error.message, underlyingError: error))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
