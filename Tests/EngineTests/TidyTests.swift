import Foundation
import Testing

/// Deciders and what they call must be deterministic: a fold of the log must give the same
/// state every time. A scan of the decider files (the deciders, their support, Fleet's domain
/// rules they call, the engine's model and core) for what would break that: a clock, fresh
/// UUIDs, randomness, I/O, the environment, sleeping. Time and randomness come from the
/// runtime (events carry their time; the core's seeded source). Excluded by design, named:
/// the runtime actor and the clock and seed homes.
@Suite struct TidyTests {
    /// What a decider file may not use, with why.
    static let banned: [(pattern: String, why: String)] = [
        (#"\bDate\s*\("#, "Foundation clock"),
        (#"\bDate\.now\b"#, "Foundation clock"),
        (#"\b(Continuous|Suspending)Clock\b"#, "clock"),
        (#"\b(clock_gettime|gettimeofday|DispatchTime|DispatchWallTime|CFAbsoluteTimeGetCurrent)\b"#, "clock"),
        (#"\bUUID\s*\(\s*\)"#, "fresh UUID"),
        (#"\.random\s*\("#, "unseeded randomness"),
        (#"\b(arc4random\w*|drand48|rand)\s*\("#, "unseeded randomness"),
        (#"\bSystemRandomNumberGenerator\b"#, "unseeded randomness"),
        (#"\b(FileManager|FileHandle|URLSession|InputStream|OutputStream)\b"#, "I/O"),
        (#"\b(fopen|fread|fwrite|readLine)\s*\("#, "I/O"),
        (#"\bString\s*\(\s*contentsOf"#, "I/O"),
        (#"\bData\s*\(\s*contentsOf"#, "I/O"),
        (#"\b(ProcessInfo|getenv)\b"#, "the environment"),
        (#"\bTask\.sleep\b"#, "sleeping"),
    ]

    static let folders = ["workflows/Deciders", "Sources/Fleet/Domain", "Sources/Engine/Model", "Sources/Engine/Runtime"]
    /// The runtime's own homes of time, tasks and entropy: not decider code.
    static let excluded: Set<String> = [
        "Sources/Engine/Model/Clock.swift", "Sources/Engine/Runtime/WorkflowEngine.swift",
        "Sources/Engine/Runtime/SystemSeed.swift",
    ]

    /// The violations in one file's text (comments are skipped).
    static func scan(_ text: String, file: String) -> [String] {
        var found: [String] = []
        // Simple word boundaries: under Unicode ones `FileManager.default` is one word.
        let expressions = banned.map { (try! Regex($0.pattern).wordBoundaryKind(.simple), $0.why) }
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let code = line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            for (expression, why) in expressions where code.contains(expression) {
                found.append("\(file):\(number + 1): \(why): \(code.trimmingCharacters(in: .whitespaces))")
            }
        }
        return found
    }

    @Test("Tidy: determinism: decider files use no clock, UUID, randomness, I/O, environment or sleep")
    func noNondeterminism() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        var scanned = 0
        for folder in Self.folders {
            let base = root.appendingPathComponent(folder)
            let files = try #require(FileManager.default.enumerator(atPath: base.path), "\(folder) is missing")
            for case let file as String in files where file.hasSuffix(".swift") {
                let relative = "\(folder)/\(file)"
                guard !Self.excluded.contains(relative) else { continue }
                scanned += 1
                let text = try String(contentsOf: base.appendingPathComponent(file), encoding: .utf8)
                for violation in Self.scan(text, file: relative) { Issue.record("\(violation)") }
            }
        }
        #expect(scanned > 20, "scanned only \(scanned) files")
    }

    /// The scan can fail: planted violations of every kind are each caught, and the same
    /// words in comments, or as parts of other names, are not.
    @Test("Tidy: determinism: a planted violation is caught")
    func plantedViolation() {
        let planted = """
            static func evolve(_ state: State, _ event: WorkflowEvent, at: Timestamp) -> State {
                let now = Date()
                let t = ContinuousClock.now
                let id = UUID()
                let n = Int.random(in: 0..<3)
                let f = FileManager.default
                let e = ProcessInfo.processInfo.environment
                let s = try? String(contentsOfFile: "/etc/hosts")
                try await Task.sleep(for: .seconds(1))
                var g = SystemRandomNumberGenerator()
                return state // Date() in a comment is fine
            }
            let updatedAt = state.lastUpdate  // names like randomize or dated are fine
            """
        let found = Self.scan(planted, file: "Planted.swift")
        #expect(found.count == 9, "\(found)")
        for line in 2...10 { #expect(found.contains { $0.hasPrefix("Planted.swift:\(line):") }, "line \(line) missed: \(found)") }
        #expect(!found.contains { $0.hasPrefix("Planted.swift:11:") || $0.hasPrefix("Planted.swift:13:") })
    }
}
