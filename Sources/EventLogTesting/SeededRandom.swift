import CapstanSupport

/// A small, fast, seeded random number generator (xoshiro256**, seeded through SplitMix64).
///
/// The same seed gives the same sequence on every machine and every run, so a failing
/// demo, benchmark or crash round can be replayed from the seed it printed.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var mixer = SplitMix64(seed: seed)
        state = (mixer.next(), mixer.next(), mixer.next(), mixer.next())
    }

    public mutating func next() -> UInt64 {
        let result = rotate(state.1 &* 5, 7) &* 9
        let shifted = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= shifted
        state.3 = rotate(state.3, 45)
        return result
    }

    /// A value in `0..<bound` (bound > 0).
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "bound must be positive")
        return Int(next() % UInt64(bound))
    }

    /// True with probability `1 / n`.
    public mutating func oneIn(_ n: Int) -> Bool { below(n) == 0 }

    public mutating func pick<T>(_ choices: [T]) -> T { choices[below(choices.count)] }

    /// Lowercase letters and digits, as Kubernetes generated names use.
    public mutating func alphanumeric(_ count: Int) -> String {
        var bytes = [UInt8](repeating: 0, count: count)
        for index in 0..<count { bytes[index] = Self.nameAlphabet[below(Self.nameAlphabet.count)] }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A Kubernetes-style uid (UUID version 4 text, RFC 9562 variant).
    public mutating func uid() -> String {
        let high = next()
        let low = next()
        var bytes = [UInt8](repeating: UInt8(ascii: "-"), count: 36)
        var nibbles = [UInt8](repeating: 0, count: 32)
        for index in 0..<16 {
            nibbles[index] = UInt8((high >> (60 - 4 * UInt64(index))) & 0xF)
            nibbles[16 + index] = UInt8((low >> (60 - 4 * UInt64(index))) & 0xF)
        }
        nibbles[12] = 4  // version 4
        nibbles[16] = 8 | (nibbles[16] & 3)  // variant bits 10xx
        var target = 0
        for (index, nibble) in nibbles.enumerated() {
            if index == 8 || index == 12 || index == 16 || index == 20 { target += 1 }
            bytes[target] = Self.hexDigits[Int(nibble)]
            target += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static let nameAlphabet = Array("bcdfghjklmnpqrstvwxz2456789".utf8)
    private static let hexDigits = Array("0123456789abcdef".utf8)

    private func rotate(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}
