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

/// Parses an RFC 3339 time (`2026-11-23T08:00:00Z`, `2026-11-23T08:00:00.5+01:00`; `t`, `z` and
/// a space for `T` accepted) as nanoseconds since the Unix epoch; nil when it is not one, or
/// when it lies outside what Int64 nanoseconds hold (years 1678 to 2261).
public func parseRFC3339(_ text: String) -> Int64? {
    let bytes = Array(text.utf8)
    var index = 0
    func number(_ width: Int) -> Int64? {
        guard index + width <= bytes.count else { return nil }
        var value: Int64 = 0
        for byte in bytes[index..<(index + width)] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        index += width
        return value
    }
    func expect(_ characters: String) -> Bool {
        guard index < bytes.count, characters.utf8.contains(bytes[index]) else { return false }
        index += 1
        return true
    }
    guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
        expect("Tt "), let hour = number(2), expect(":"), let minute = number(2), expect(":"), let second = number(2),
        (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
    else { return nil }
    var fraction: Int64 = 0
    if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
        index += 1
        var digits = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            if digits < 9 { fraction = fraction * 10 + Int64(bytes[index] - UInt8(ascii: "0")) }
            digits += 1
            index += 1
        }
        guard digits > 0 else { return nil }
        for _ in digits..<max(digits, 9) { fraction *= 10 }
    }
    var offsetSeconds: Int64 = 0
    if expect("Zz") {
    } else if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
        let sign: Int64 = bytes[index] == UInt8(ascii: "-") ? -1 : 1
        index += 1
        guard let hours = number(2), expect(":"), let minutes = number(2), hours < 24, minutes < 60 else { return nil }
        offsetSeconds = sign * (hours * 3600 + minutes * 60)
    } else {
        return nil
    }
    guard index == bytes.count else { return nil }
    let days = daysFromCivil(year: year, month: month, day: day)
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
    // Int64 nanoseconds reach from 1677 to 2262; a time outside is not representable (nil, not a trap).
    let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    guard !overflow else { return nil }
    let (total, carry) = scaled.addingReportingOverflow(fraction)
    return carry ? nil : total
}

/// Howard Hinnant's days-from-civil algorithm (the inverse of `civilDate`).
private func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146_097 + dayOfEra - 719_468
}
