/// The field tables of the kinds `capstan apply` reads, derived from the upstream CRD
/// schemas by `tools/fleet-schema/generate.py` (one `path type` line per field; `[]` marks
/// an array's items, `*` a map's values). The tables live in `Manifests/Schemas/`.
enum FieldTables {}

/// What a field holds, as its CRD schema says.
enum FieldType: String, Sendable {
    case object, array, map, string, integer, number, boolean, intOrString
    /// Kept whole, never looked into (x-kubernetes-preserve-unknown-fields, the VM template).
    case any

    /// How an error names it: "a string", "an object".
    var phrase: String {
        switch self {
        case .object, .map: "an object"
        case .array: "a list"
        case .string: "a string"
        case .integer: "an integer"
        case .number: "a number"
        case .boolean: "a boolean (true or false)"
        case .intOrString: "an integer or a string"
        case .any: "any value"
        }
    }
}

/// One field of a schema and, for objects, arrays and maps, what is inside it.
struct FieldSchema: Sendable {
    var type: FieldType
    /// Members of an object; `[]` for an array's items; `*` for a map's values.
    var children: [String: FieldSchema] = [:]

    /// Builds a schema from table lines (`spec.replicas integer`), under an object root.
    static func parse(_ table: String) -> FieldSchema {
        var root = FieldSchema(type: .object)
        for line in table.split(separator: "\n") {
            let parts = line.split(separator: " ")
            precondition(parts.count == 2, "field table line without a type: \(line)")
            guard let type = FieldType(rawValue: String(parts[1])) else {
                preconditionFailure("field table line with an unknown type: \(line)")
            }
            root.insert(segments(of: String(parts[0]))[...], type: type)
        }
        return root
    }

    /// `spec.files[].content` → `spec`, `files`, `[]`, `content`.
    static func segments(of path: String) -> [String] {
        var result: [String] = []
        for part in path.split(separator: ".") {
            var name = Substring(part)
            var arrays = 0
            while name.hasSuffix("[]") {
                name = name.dropLast(2)
                arrays += 1
            }
            result.append(String(name))
            result.append(contentsOf: repeatElement("[]", count: arrays))
        }
        return result
    }

    private mutating func insert(_ path: ArraySlice<String>, type: FieldType) {
        guard let first = path.first else {
            self.type = type
            return
        }
        var child = children[first] ?? FieldSchema(type: .object)
        child.insert(path.dropFirst(), type: type)
        children[first] = child
    }
}
