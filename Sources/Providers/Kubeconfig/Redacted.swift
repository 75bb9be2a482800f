/// Bytes that must never be printed: a bearer token, a private key, a bootstrap token.
///
/// `description`, `debugDescription` and reflection (`dump`, string interpolation of an enclosing
/// struct) all show `<redacted>`, so a credential cannot leak into a log line or an error
/// message by accident. Read the bytes with `withUnsafeBytes` or `exposedString` only where they
/// go onto the wire.
public struct RedactedBytes: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    @usableFromInline let storage: [UInt8]

    /// Wraps `bytes`.
    public init(_ bytes: [UInt8]) { self.storage = bytes }
    /// Wraps the UTF-8 of `string`.
    public init(_ string: String) { self.storage = Array(string.utf8) }

    /// The number of bytes (safe to log).
    public var count: Int { storage.count }
    public var isEmpty: Bool { storage.isEmpty }

    /// The secret as a string, for the one place that puts it on the wire.
    public var exposedString: String { String(decoding: storage, as: UTF8.self) }
    /// The secret bytes, for the one place that puts them on the wire.
    public var exposedBytes: [UInt8] { storage }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}
