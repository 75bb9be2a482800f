/// A kubeconfig that cannot be used: unreadable, malformed, or naming what it does not hold.
///
/// The message names the file, the field path (`contexts[0].context.cluster`) and the reason.
/// It never quotes a credential: token, key and certificate values are not repeated.
public struct KubeconfigError: Error, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The file (or a file it refers to) could not be read.
        public static var unreadable: Code { Code(rawValue: "unreadable") }
        /// Not YAML, or a field of the wrong shape.
        public static var malformed: Code { Code(rawValue: "malformed") }
        /// A required field is absent.
        public static var missingField: Code { Code(rawValue: "missingField") }
        /// A field holds a value that cannot be used (bad base64, bad URL, conflicting fields).
        public static var invalidValue: Code { Code(rawValue: "invalidValue") }
        /// A context names a cluster or user that is not in the file, or no such context.
        public static var danglingReference: Code { Code(rawValue: "danglingReference") }
    }

    public var code: Code
    /// The kubeconfig's path, or a description such as `Secret default/c1-admin-kubeconfig key admin.conf`.
    public var file: String
    /// The field path inside the file, as `users[1].user.client-key-data`; empty for the whole file.
    public var fieldPath: String
    /// Why, in words that never include a credential's value.
    public var reason: String

    public init(code: Code, file: String, fieldPath: String, reason: String) {
        self.code = code
        self.file = file
        self.fieldPath = fieldPath
        self.reason = reason
    }

    public var description: String {
        fieldPath.isEmpty ? "kubeconfig \(file): \(reason)" : "kubeconfig \(file): \(fieldPath): \(reason)"
    }
}
