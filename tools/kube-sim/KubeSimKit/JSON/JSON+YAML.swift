import Yams

extension JSON {
    /// Parses a YAML document (JSON is YAML too), as server-side apply bodies arrive.
    ///
    /// - Throws: the YAML parser's error, or `JSONSyntaxError` for a value JSON cannot hold.
    public static func parseYAML(_ text: String) throws -> JSON {
        guard let node = try Yams.compose(yaml: text) else { return .null }
        return try JSON(yaml: node)
    }

    init(yaml node: Yams.Node) throws {
        switch node {
        case .scalar(let scalar):
            self = JSON.fromScalar(scalar, tag: node.tag)
        case .sequence(let sequence):
            self = .array(try sequence.map { try JSON(yaml: $0) })
        case .mapping(let mapping):
            var members: [String: JSON] = [:]
            for (key, value) in mapping {
                guard let keyText = key.scalar?.string else {
                    throw JSONSyntaxError(message: "YAML mapping key is not a scalar", offset: 0)
                }
                members[keyText] = try JSON(yaml: value)
            }
            self = .object(members)
        case .alias:
            throw JSONSyntaxError(message: "YAML aliases are not supported", offset: 0)
        }
    }

    private static func fromScalar(_ scalar: Yams.Node.Scalar, tag: Tag) -> JSON {
        let text = scalar.string
        // Quoted scalars are strings whatever they look like ("1.33", "true").
        if scalar.style == .singleQuoted || scalar.style == .doubleQuoted || scalar.style == .literal
            || scalar.style == .folded
        {
            return .string(text)
        }
        switch tag.rawValue {
        case Tag.Name.null.rawValue: return .null
        case Tag.Name.bool.rawValue: return .bool(Bool.construct(from: scalar) ?? false)
        case Tag.Name.int.rawValue:
            if let value = Int64(text) { return .int(value) }
            if let value = Int.construct(from: scalar) { return .int(Int64(value)) }
            return .string(text)
        case Tag.Name.float.rawValue:
            if let value = Double.construct(from: scalar) { return .double(value) }
            return .string(text)
        default:
            return .string(text)
        }
    }
}
