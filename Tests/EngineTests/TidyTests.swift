import Foundation
import Testing

/// Deciders and the engine core must be deterministic: no wall clock, no fresh UUIDs, no
/// unseeded randomness in the Engine module or the workflows (time and randomness come
/// from the runtime's clock and seeded source). Scans the sources as text.
@Suite struct TidyTests {
    static let banned = ["Date()", "UUID()", ".random(", "arc4random", "SystemRandomNumberGenerator"]

    @Test("Tidy: determinism: Engine and workflows use no Date(), UUID() or unseeded randomness")
    func noNondeterminism() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        var scanned = 0
        // Executors do I/O and draw bootstrap tokens from the system generator by design; only
        // deciders (and the engine) must be deterministic.
        for folder in ["Sources/Engine", "workflows/Deciders"] {
            let base = root.appendingPathComponent(folder)
            guard let files = FileManager.default.enumerator(atPath: base.path) else { continue }
            for case let file as String in files where file.hasSuffix(".swift") {
                let text = try String(contentsOf: base.appendingPathComponent(file), encoding: .utf8)
                scanned += 1
                for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                    let code = line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                    for word in Self.banned where code.contains(word) {
                        Issue.record("\(folder)/\(file):\(number + 1): uses \(word)")
                    }
                }
            }
        }
        #expect(scanned > 10, "scanned only \(scanned) files")
    }
}
