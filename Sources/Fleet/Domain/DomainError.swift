/// A value the domain rules refuse: a malformed version or duration, a version missing from
/// the catalog, a plan that would break the skew policy.
///
/// The message names the offending value and the reason; it never names a file or field,
/// because the domain does not know where a value came from. Callers that do (manifest
/// validation) wrap it with the file, document and field path. Switch on `code`, never on
/// the message text.
public struct DomainError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// Not `[v]MAJOR.MINOR.PATCH` with decimal numbers.
        public static var invalidVersion: Code { Code(rawValue: "InvalidVersion") }
        /// A pre-release or build suffix (`-rc.1`, `+k3s1`) where only releases are allowed.
        public static var preReleaseVersion: Code { Code(rawValue: "PreReleaseVersion") }
        /// Not a Go duration string (`5m0s`, `300s`, `1.5h`).
        public static var invalidDuration: Code { Code(rawValue: "InvalidDuration") }
        /// Not an integer or an `N%` percentage, or negative.
        public static var invalidIntOrPercent: Code { Code(rawValue: "InvalidIntOrPercent") }
        /// The catalog lists one version twice.
        public static var duplicateVersion: Code { Code(rawValue: "DuplicateVersion") }
        /// A version the catalog does not list.
        public static var versionNotInCatalog: Code { Code(rawValue: "VersionNotInCatalog") }
        /// The target is older than what runs now.
        public static var downgrade: Code { Code(rawValue: "Downgrade") }
        /// The catalog has no release of a minor the chain must pass through.
        public static var missingMinor: Code { Code(rawValue: "MissingMinor") }
        /// A kubelet/control-plane combination the version skew policy forbids.
        public static var versionSkew: Code { Code(rawValue: "VersionSkew") }
        /// A health-check range that is not `[min-max]` with min ≤ max.
        public static var invalidRange: Code { Code(rawValue: "InvalidRange") }
        /// A condition status that is not `True`, `False` or `Unknown`.
        public static var invalidConditionStatus: Code { Code(rawValue: "InvalidConditionStatus") }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
