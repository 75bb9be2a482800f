/// A Kubernetes release version, `MAJOR.MINOR.PATCH`, written `v1.33.2` or `1.33.2`.
///
/// Only releases are versions here: a pre-release or build suffix (`v1.34.0-rc.1`,
/// `v1.33.2+k3s1`) is refused by ``init(parsing:)`` with ``DomainError/Code/preReleaseVersion``,
/// because the skew rules and the catalog speak of releases only. A version a Node reports
/// (`status.nodeInfo.kubeletVersion` may read `v1.29.3-eks-ae9a62a`) goes through
/// ``init(reported:)``, which drops the suffix on purpose.
///
/// Stored (Codable) as the string with the leading `v`, as Cluster API writes it.
public struct KubernetesVersion: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var patch: Int

    public init(major: Int, minor: Int, patch: Int) {
        precondition(major >= 0 && minor >= 0 && patch >= 0, "version numbers are never negative")
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// Parses `v1.33.2` or `1.33.2`.
    ///
    /// - Throws: ``DomainError`` with code `invalidVersion` (not three decimal numbers, a
    ///   leading zero, an empty part) or `preReleaseVersion` (a `-…` or `+…` suffix).
    public init(parsing text: String) throws {
        let body = text.hasPrefix("v") ? text.dropFirst() : Substring(text)
        if let suffixIndex = body.firstIndex(where: { $0 == "-" || $0 == "+" }) {
            if (try? Self.numbers(body[..<suffixIndex], original: text)) != nil {
                throw DomainError(
                    .preReleaseVersion,
                    "version \"\(text)\" has a pre-release or build suffix \"\(body[suffixIndex...])\"; "
                        + "only releases (v1.33.2) are supported")
            }
        }
        let parts = try Self.numbers(body, original: text)
        self.init(major: parts[0], minor: parts[1], patch: parts[2])
    }

    /// Parses a version a component reports about itself, dropping any pre-release or build
    /// suffix (`v1.29.3-eks-ae9a62a` reads as `v1.29.3`).
    ///
    /// - Throws: ``DomainError`` with code `invalidVersion` when no release version precedes the suffix.
    public init(reported text: String) throws {
        let body = text.hasPrefix("v") ? text.dropFirst() : Substring(text)
        let release = body.prefix { $0 != "-" && $0 != "+" }
        let parts = try Self.numbers(release, original: text)
        self.init(major: parts[0], minor: parts[1], patch: parts[2])
    }

    private static func numbers(_ body: Substring, original: String) throws -> [Int] {
        let fields = body.split(separator: ".", omittingEmptySubsequences: false)
        guard fields.count == 3 else {
            throw DomainError(.invalidVersion, "version \"\(original)\" is not MAJOR.MINOR.PATCH (for example v1.33.2)")
        }
        return try fields.map { field in
            guard !field.isEmpty, field.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                field.count <= 9
            else {
                throw DomainError(.invalidVersion, "version \"\(original)\" has a part \"\(field)\" that is not a number")
            }
            guard field.count == 1 || field.first != "0" else {
                throw DomainError(.invalidVersion, "version \"\(original)\" has a part \"\(field)\" with a leading zero")
            }
            return Int(field)!
        }
    }

    /// The release's minor line (`1.33` for `v1.33.2`).
    public var minorLine: KubernetesMinor { KubernetesMinor(major: major, minor: minor) }

    /// `v1.33.2`.
    public var description: String { "v\(major).\(minor).\(patch)" }

    /// Whether `other` is a different patch of the same minor line.
    public func isPatchChange(to other: KubernetesVersion) -> Bool {
        minorLine == other.minorLine && patch != other.patch
    }

    public static func < (lhs: KubernetesVersion, rhs: KubernetesVersion) -> Bool {
        (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            try self.init(parsing: text)
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

/// A minor release line, `MAJOR.MINOR` (`1.33`): the unit of the skew rules.
public struct KubernetesMinor: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) {
        precondition(major >= 0 && minor >= 0, "version numbers are never negative")
        self.major = major
        self.minor = minor
    }

    /// How many minors `self` is ahead of `other` (negative when behind).
    ///
    /// Kubernetes has had one major since 2015; a different major has no defined distance,
    /// so it traps rather than guess.
    public func minors(since other: KubernetesMinor) -> Int {
        precondition(major == other.major, "minor distance across majors (\(other) → \(self)) is undefined")
        return minor - other.minor
    }

    /// The next minor line (`1.34` after `1.33`).
    public var next: KubernetesMinor { KubernetesMinor(major: major, minor: minor + 1) }

    /// `v1.33`.
    public var description: String { "v\(major).\(minor)" }

    public static func < (lhs: KubernetesMinor, rhs: KubernetesMinor) -> Bool {
        (lhs.major, lhs.minor) < (rhs.major, rhs.minor)
    }
}
