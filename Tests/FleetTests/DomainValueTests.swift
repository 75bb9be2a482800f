import Foundation
import Testing
@testable import Fleet

// Parsing and arithmetic of the domain's small values. Where upstream has a table, the cases
// are its cases: Go's time_test.go (ParseDuration, Duration.String), k8s intstr_test.go
// (GetScaledValueFromIntOrPercent) and CAPI mdutil_test.go (ResolveFenceposts).
// Checked by breaking on purpose: making `%` round up in `.down` fails the 90%-of-95 case;
// dropping the leading-zero check fails "v1.033.0".

@Suite struct DomainKubernetesVersionTests {
    @Test("KubernetesVersion: parse: with and without leading v", arguments: ["v1.33.2", "1.33.2"])
    func parsesBothSpellings(text: String) throws {
        // Goal: both spellings users write give one value, printed with the v.
        let version = try KubernetesVersion(parsing: text)
        #expect(version == KubernetesVersion(major: 1, minor: 33, patch: 2))
        #expect(version.description == "v1.33.2")
        #expect(version.minorLine == KubernetesMinor(major: 1, minor: 33))
    }

    @Test(
        "KubernetesVersion: parse: malformed refused as InvalidVersion",
        arguments: ["", "v", "1.33", "v1.33.", "1.33.2.1", "V1.33.2", "vv1.33.2", "1.x.2", "v1.033.0", " 1.33.2", "1.-3.2"])
    func rejectsMalformed(text: String) {
        #expect(throws: DomainError.self) { try KubernetesVersion(parsing: text) }
        do {
            _ = try KubernetesVersion(parsing: text)
        } catch let error as DomainError {
            #expect(error.code == .invalidVersion)
            #expect(error.message.contains("\"\(text)\""))
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test("KubernetesVersion: parse: pre-release refused explicitly", arguments: ["v1.34.0-rc.1", "1.33.2+k3s1", "v1.30.0-alpha.0"])
    func rejectsPreRelease(text: String) {
        do {
            _ = try KubernetesVersion(parsing: text)
            Issue.record("\(text) parsed")
        } catch let error as DomainError {
            #expect(error.code == .preReleaseVersion)
            #expect(error.message.contains("only releases"))
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test("KubernetesVersion: reported: suffix dropped (kubeletVersion)")
    func reportedDropsSuffix() throws {
        #expect(try KubernetesVersion(reported: "v1.29.3-eks-ae9a62a") == KubernetesVersion(major: 1, minor: 29, patch: 3))
        #expect(try KubernetesVersion(reported: "v1.33.2+k3s1") == KubernetesVersion(major: 1, minor: 33, patch: 2))
        #expect(throws: DomainError.self) { try KubernetesVersion(reported: "garbage-1") }
    }

    @Test("KubernetesVersion: compare: numeric not lexical")
    func comparesNumerically() throws {
        let ordered = try ["v1.9.9", "v1.10.0", "v1.10.10", "v1.33.1", "v1.33.10", "v2.0.0"].map(KubernetesVersion.init(parsing:))
        #expect(ordered.shuffled().sorted() == ordered)
        #expect(try KubernetesVersion(parsing: "1.33.1").isPatchChange(to: KubernetesVersion(parsing: "v1.33.4")))
        #expect(try !KubernetesVersion(parsing: "1.33.1").isPatchChange(to: KubernetesVersion(parsing: "v1.34.1")))
        #expect(try !KubernetesVersion(parsing: "1.33.1").isPatchChange(to: KubernetesVersion(parsing: "v1.33.1")))
        #expect(KubernetesMinor(major: 1, minor: 36).minors(since: KubernetesMinor(major: 1, minor: 33)) == 3)
        #expect(KubernetesMinor(major: 1, minor: 33).next == KubernetesMinor(major: 1, minor: 34))
    }

    @Test("KubernetesVersion: codable: string with v, bad string refused")
    func codable() throws {
        let data = try JSONEncoder().encode([KubernetesVersion(major: 1, minor: 36, patch: 0)])
        #expect(String(decoding: data, as: UTF8.self) == "[\"v1.36.0\"]")
        #expect(try JSONDecoder().decode([KubernetesVersion].self, from: Data("[\"1.36.0\"]".utf8)) == [KubernetesVersion(major: 1, minor: 36, patch: 0)])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([KubernetesVersion].self, from: Data("[\"1.36\"]".utf8)) }
    }
}

@Suite struct DomainGoDurationTests {
    static let second: Int64 = 1_000_000_000
    static let minute = 60 * second
    static let hour = 60 * minute

    // Go's parseDurationTests (src/time/time_test.go), the ones expressible as Swift strings.
    static let valid: [(String, Int64)] = [
        ("0", 0), ("5s", 5 * second), ("30s", 30 * second), ("1478s", 1478 * second),
        ("+5s", 5 * second), ("-0", 0), ("+0", 0),
        ("5.0s", 5 * second), ("5.6s", 5 * second + 600_000_000), ("5.s", 5 * second), (".5s", 500_000_000),
        ("1.0s", second), ("1.00s", second), ("1.004s", second + 4_000_000), ("1.0040s", second + 4_000_000),
        ("100.00100s", 100 * second + 1_000_000),
        ("10ns", 10), ("11us", 11_000), ("12µs", 12_000), ("12μs", 12_000), ("13ms", 13_000_000),
        ("14s", 14 * second), ("15m", 15 * minute), ("16h", 16 * hour),
        ("3h30m", 3 * hour + 30 * minute), ("10.5s4m", 4 * minute + 10 * second + 500_000_000),
        ("1h2m3s4ms5us6ns", hour + 2 * minute + 3 * second + 4_000_000 + 5_000 + 6),
        ("39h9m14.425s", 39 * hour + 9 * minute + 14 * second + 425_000_000),
        ("52763797000ns", 52_763_797_000),
        ("0.3333333333333333333h", 20 * minute),
        ("9007199254740993ns", (1 << 53) + 1),
        ("9223372036854775807ns", Int64.max), ("9223372036854775.807us", Int64.max),
        ("9223372036s854ms775us807ns", Int64.max),
        ("0.100000000000000000000h", 6 * minute),
        ("0.830103483285477580700h", 49 * minute + 48 * second + 372_539_827),
        // The CAPI spellings the issue names.
        ("5m0s", 5 * minute), ("300s", 5 * minute), ("20m", 20 * minute), ("1h30m", 90 * minute), ("1.5h", 90 * minute),
    ]

    @Test("GoDuration: parse: Go's table", arguments: valid)
    func parsesGoTable(text: String, nanoseconds: Int64) throws {
        #expect(try GoDuration(parsing: text).nanoseconds == nanoseconds)
    }

    @Test("GoDuration: parse: negatives only when allowed")
    func negatives() throws {
        #expect(try GoDuration(parsing: "-5s", allowsNegative: true).nanoseconds == -5 * Self.second)
        #expect(try GoDuration(parsing: "-2m3.4s", allowsNegative: true).nanoseconds == -(2 * Self.minute + 3_400_000_000))
        #expect(try GoDuration(parsing: "-9223372036854775808ns", allowsNegative: true).nanoseconds == Int64.min)
        #expect(try GoDuration(parsing: "-9223372036s854ms775us808ns", allowsNegative: true).nanoseconds == Int64.min)
        do {
            _ = try GoDuration(parsing: "-5s")
            Issue.record("negative accepted")
        } catch let error as DomainError {
            #expect(error.code == .invalidDuration)
            #expect(error.message.contains("negative"))
        }
    }

    // Go's invalid cases, plus overflow cases; each message names what broke.
    static let invalid: [(String, String)] = [
        ("", "empty"), ("3", "missing a unit"), ("-", "empty"), ("s", "not a number"), (".", "no digits"),
        ("-.", "no digits"), (".s", "no digits"), ("+.s", "no digits"), ("1d", "unknown unit \"d\""),
        ("5 m", "unknown unit \" m\""), ("10 minutes", "unknown unit"),
        ("9223372036854775808ns", "overflows"), ("9223372036854775.808us", "overflows"),
        ("9223372036854ms775us808ns", "overflows"), ("-9223372036854775809ns", "overflows"),
        ("100000000000000000000h", "overflows"),
    ]

    @Test("GoDuration: parse: invalid refused with the reason", arguments: invalid)
    func rejectsInvalid(text: String, reason: String) {
        do {
            let parsed = try GoDuration(parsing: text, allowsNegative: true)
            Issue.record("\"\(text)\" parsed as \(parsed.nanoseconds)ns")
        } catch let error as DomainError {
            #expect(error.code == .invalidDuration)
            #expect(error.message.contains(reason), "\(error.message)")
            #expect(error.message.contains("\"\(text)\""))
        } catch { Issue.record("unexpected \(error)") }
    }

    // Go's durationTests (String()).
    static let printed: [(String, Int64)] = [
        ("0s", 0), ("1ns", 1), ("1.1µs", 1_100), ("2.2ms", 2_200_000), ("3.3s", 3_300_000_000),
        ("4m5s", 4 * minute + 5 * second), ("4m5.001s", 4 * minute + 5_001_000_000),
        ("5h6m7.001s", 5 * hour + 6 * minute + 7_001_000_000), ("8m0.000000001s", 8 * minute + 1),
        ("2562047h47m16.854775807s", Int64.max), ("-2562047h47m16.854775808s", Int64.min),
        ("5m0s", 5 * minute), ("1h30m0s", 90 * minute), ("1h0m0s", hour),
    ]

    @Test("GoDuration: print: Go's canonical form", arguments: printed)
    func printsLikeGo(text: String, nanoseconds: Int64) throws {
        let duration = GoDuration(nanoseconds: nanoseconds)
        #expect(duration.description == text)
        #expect(try GoDuration(parsing: text, allowsNegative: true) == duration)
    }

    @Test("GoDuration: codable: canonical string round trip")
    func codable() throws {
        let decoded = try JSONDecoder().decode([GoDuration].self, from: Data("[\"300s\"]".utf8))
        #expect(decoded == [GoDuration(seconds: 300)])
        #expect(decoded[0].duration == .seconds(300))
        #expect(String(decoding: try JSONEncoder().encode(decoded), as: UTF8.self) == "[\"5m0s\"]")
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([GoDuration].self, from: Data("[\"5 minutes\"]".utf8)) }
    }
}

@Suite struct DomainIntOrPercentTests {
    @Test("IntOrPercent: scale: k8s intstr table")
    func intstrTable() throws {
        #expect(IntOrPercent.count(123).scaled(against: 100, rounding: .up) == 123)
        #expect(try IntOrPercent(parsing: "90%").scaled(against: 100, rounding: .up) == 90)
        #expect(try IntOrPercent(parsing: "90%").scaled(against: 95, rounding: .up) == 86)
        #expect(try IntOrPercent(parsing: "90%").scaled(against: 95, rounding: .down) == 85)
        #expect(try IntOrPercent(parsing: "25%").scaled(against: 10, rounding: .up) == 3)
        #expect(try IntOrPercent(parsing: "25%").scaled(against: 10, rounding: .down) == 2)
        #expect(try IntOrPercent(parsing: "0%").scaled(against: 10, rounding: .up) == 0)
        #expect(try IntOrPercent(parsing: "100%").scaled(against: 7, rounding: .down) == 7)
        #expect(try IntOrPercent(parsing: "1%").scaled(against: 0, rounding: .up) == 0)
    }

    @Test("IntOrPercent: parse: malformed refused", arguments: ["%", "90#", "#%", "-10%", "-1", "", "1.5%", "ten", "10%%"])
    func rejectsMalformed(text: String) {
        do {
            _ = try IntOrPercent(parsing: text)
            Issue.record("\(text) parsed")
        } catch let error as DomainError {
            #expect(error.code == .invalidIntOrPercent)
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test("IntOrPercent: codable: int or N% string, plain string refused")
    func codable() throws {
        let decoded = try JSONDecoder().decode([IntOrPercent].self, from: Data("[1, \"25%\", 0]".utf8))
        #expect(decoded == [.count(1), .percent(25), .count(0)])
        #expect(decoded[2].isZero && !decoded[0].isZero)
        #expect(String(decoding: try JSONEncoder().encode(decoded), as: UTF8.self) == "[1,\"25%\",0]")
        // CAPI/intstr refuse a string that is not a percentage, even if it holds digits.
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([IntOrPercent].self, from: Data("[\"90\"]".utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([IntOrPercent].self, from: Data("[-1]".utf8)) }
    }

    // CAPI internal/controllers/machinedeployment/mdutil TestResolveFenceposts.
    static let fencepostCases: [(IntOrPercent, IntOrPercent, Int, Int, Int)] = [
        (.percent(0), .percent(0), 0, 0, 1),
        (.percent(39), .percent(39), 10, 4, 3),
        (.count(1), .count(0), 3, 1, 0),
        (.count(0), .count(1), 3, 0, 1),
        (.percent(10), .percent(10), 3, 1, 0),
        (.percent(0), .percent(10), 3, 0, 1),  // both round to 0: unavailable becomes 1
        (.percent(100), .percent(100), 5, 5, 5),
    ]

    @Test("IntOrPercent: fenceposts: CAPI ResolveFenceposts", arguments: fencepostCases)
    func fenceposts(surge: IntOrPercent, unavailable: IntOrPercent, replicas: Int, expectSurge: Int, expectUnavailable: Int) {
        let resolved = RolloutFenceposts(maxSurge: surge, maxUnavailable: unavailable, replicas: replicas)
        #expect(resolved == RolloutFenceposts(surge: expectSurge, unavailable: expectUnavailable))
    }
}

@Suite struct DomainVersionCatalogTests {
    static func version(_ text: String) -> KubernetesVersion { try! KubernetesVersion(parsing: text) }

    @Test("VersionCatalog: lookup: sorted, images, newest patch of a minor")
    func lookup() throws {
        let catalog = try VersionCatalog(entries: [
            .init(version: Self.version("v1.34.1"), machineImage: "quay.io/capk/ubuntu-2404-container-disk:v1.34.1"),
            .init(version: Self.version("v1.33.0")),
            .init(version: Self.version("v1.34.3")),
            .init(version: Self.version("v1.33.5"), machineImage: "img:1.33.5"),
            .init(version: Self.version("v1.36.0")),
        ])
        #expect(catalog.versions.map(\.description) == ["v1.33.0", "v1.33.5", "v1.34.1", "v1.34.3", "v1.36.0"])
        #expect(catalog.contains(Self.version("1.34.1")))
        #expect(!catalog.contains(Self.version("1.34.2")))
        #expect(catalog.machineImage(for: Self.version("v1.34.1")) == "quay.io/capk/ubuntu-2404-container-disk:v1.34.1")
        #expect(catalog.machineImage(for: Self.version("v1.34.3")) == nil)
        #expect(catalog.newestPatch(of: KubernetesMinor(major: 1, minor: 34)) == Self.version("v1.34.3"))
        #expect(catalog.newestPatch(of: KubernetesMinor(major: 1, minor: 35)) == nil)
        #expect(catalog.minors == [KubernetesMinor(major: 1, minor: 33), KubernetesMinor(major: 1, minor: 34), KubernetesMinor(major: 1, minor: 36)])
        #expect(catalog.versions(of: KubernetesMinor(major: 1, minor: 33)).count == 2)
    }

    @Test("VersionCatalog: validation: duplicate version refused")
    func duplicate() {
        do {
            _ = try VersionCatalog(versions: [Self.version("1.33.0"), Self.version("v1.34.0"), Self.version("v1.33.0")])
            Issue.record("duplicate accepted")
        } catch let error as DomainError {
            #expect(error.code == .duplicateVersion)
            #expect(error.message.contains("v1.33.0"))
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test("VersionCatalog: codable: round trip, duplicate refused on decode")
    func codable() throws {
        let catalog = try VersionCatalog(entries: [.init(version: Self.version("v1.33.0"), machineImage: "a"), .init(version: Self.version("v1.34.0"))])
        let decoded = try JSONDecoder().decode(VersionCatalog.self, from: JSONEncoder().encode(catalog))
        #expect(decoded == catalog)
        let duplicated = Data(#"{"entries":[{"version":"v1.33.0"},{"version":"1.33.0"}]}"#.utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(VersionCatalog.self, from: duplicated) }
    }
}
