import CapstanSupport
import Foundation
import Synchronization

/// The simulator's one source of randomness: every uid, token, delay jitter and fault
/// draw comes from here, so a run is repeatable from its seed (as far as concurrent
/// requests arrive in the same order).
///
/// The project's one ``SplitMix64``, behind a lock so concurrent handlers can share it.
final class SimRandom: Sendable {
    private let state: Mutex<SplitMix64>
    let seed: UInt64

    init(seed: UInt64) {
        self.seed = seed
        self.state = Mutex(SplitMix64(seed: seed))
    }

    /// A seed from the operating system's generator, for runs that give none.
    static func systemSeed() -> UInt64 {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }

    func next() -> UInt64 {
        state.withLock { $0.next() }
    }

    /// A uniform draw in [0, 1).
    func unit() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// True with probability `rate` (clamped to [0, 1]).
    func chance(_ rate: Double) -> Bool {
        rate > 0 && unit() < rate
    }

    /// A version-4-shaped UUID string.
    func uuid() -> String {
        let high = next()
        let low = next()
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in 0..<8 {
            bytes[index] = UInt8(truncatingIfNeeded: high >> (8 * index))
            bytes[8 + index] = UInt8(truncatingIfNeeded: low >> (8 * index))
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex = bytes.map { String(format: "%02x", $0) }
        return [hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }.joined(
            separator: "-")
    }

    /// `count` lowercase alphanumeric characters, as bearer tokens and generateName suffixes use.
    func alphanumeric(_ count: Int) -> String {
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        return String((0..<count).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] })
    }
}
