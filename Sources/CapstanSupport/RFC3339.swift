/// Formats nanoseconds since the Unix epoch as RFC 3339 in UTC, without Foundation.
///
/// `2026-11-23T08:00:00Z` with `fractionDigits: 0`, `2026-11-23T08:00:00.123Z` with 3.
public func rfc3339(nanoseconds: Int64, fractionDigits: Int = 0) -> String {
    precondition((0...9).contains(fractionDigits), "fractionDigits must be 0...9")
    let (seconds, nanos) = floorDivide(nanoseconds, 1_000_000_000)
    let (days, secondOfDay) = floorDivide(seconds, 86_400)
    let (year, month, day) = civilDate(daysSinceEpoch: days)
    var bytes: [UInt8] = []
    bytes.reserveCapacity(31)
    appendDigits(&bytes, year, 4)
    bytes.append(UInt8(ascii: "-"))
    appendDigits(&bytes, month, 2)
    bytes.append(UInt8(ascii: "-"))
    appendDigits(&bytes, day, 2)
    bytes.append(UInt8(ascii: "T"))
    appendDigits(&bytes, secondOfDay / 3600, 2)
    bytes.append(UInt8(ascii: ":"))
    appendDigits(&bytes, secondOfDay / 60 % 60, 2)
    bytes.append(UInt8(ascii: ":"))
    appendDigits(&bytes, secondOfDay % 60, 2)
    if fractionDigits > 0 {
        var divisor: Int64 = 1
        for _ in 0..<(9 - fractionDigits) { divisor *= 10 }
        bytes.append(UInt8(ascii: "."))
        appendDigits(&bytes, nanos / divisor, fractionDigits)
    }
    bytes.append(UInt8(ascii: "Z"))
    return String(decoding: bytes, as: UTF8.self)
}

/// Appends `value` (non-negative) in decimal, zero-padded to `width` digits.
private func appendDigits(_ bytes: inout [UInt8], _ value: Int64, _ width: Int) {
    var digits: [UInt8] = []
    var remaining = value
    repeat {
        digits.append(UInt8(ascii: "0") + UInt8(remaining % 10))
        remaining /= 10
    } while remaining > 0
    if digits.count < width { bytes.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: width - digits.count)) }
    bytes.append(contentsOf: digits.reversed())
}

private func floorDivide(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
    let quotient = a >= 0 ? a / b : (a - b + 1) / b
    return (quotient, a - quotient * b)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
private func civilDate(daysSinceEpoch: Int64) -> (Int64, Int64, Int64) {
    let z = daysSinceEpoch + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
}
