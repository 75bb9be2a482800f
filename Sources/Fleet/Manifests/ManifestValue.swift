import Foundation

/// A manifest value as JSON sees it: what an object's fields hold once its YAML is read.
///
/// Objects compare and encode with sorted keys, so two manifests that differ only in key
/// order or YAML style are the same value (that is what "unchanged" means to `apply`).
public indirect enum ManifestValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([ManifestValue])
    case object([String: ManifestValue])

    /// The member `key` of an object; nil for other values or a missing key.
    public subscript(key: String) -> ManifestValue? {
        guard case .object(let members) = self else { return nil }
        return members[key]
    }

    /// The value at a dotted path of object members (`spec.template.spec.version`).
    public func value(at path: String) -> ManifestValue? {
        var current: ManifestValue? = self
        for key in path.split(separator: ".") { current = current?[String(key)] }
        return current
    }

    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    public var integerValue: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var arrayValue: [ManifestValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    public var objectValue: [String: ManifestValue]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// Canonical JSON (sorted keys, no whitespace): the bytes a digest or an equality check uses.
    public var canonicalJSON: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every case encodes (a non-finite Double cannot come from YAML's resolver).
        return Array(try! encoder.encode(self))
    }
}

extension ManifestValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([ManifestValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: ManifestValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
