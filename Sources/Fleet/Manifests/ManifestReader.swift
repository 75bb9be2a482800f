import Yams

/// One object of a manifest file, checked against its kind's field table.
public struct Manifest: Hashable, Sendable {
    public var file: String
    /// From 1, in the file.
    public var document: Int
    /// The document's first line.
    public var line: Int
    public var kind: ManifestKind
    public var namespace: String
    public var name: String
    /// What Capstan keeps of it: apiVersion, kind, metadata (name, namespace, labels,
    /// annotations) and spec. `status` and server-set metadata are dropped.
    public var object: ManifestValue
    /// Fields present that Capstan accepts but does not act on (topmost path of each).
    public var notActedOn: [String]
    /// The line of each field path present (`spec.replicas` → 14), for later errors.
    public var lines: [String: Int]

    /// `MachineDeployment/md-0`
    public var reference: String { "\(kind.kind)/\(name)" }

    /// An error about this object's `field`, with the field's line when known.
    func error(_ code: ManifestError.Code, field: String? = nil, _ reason: String) -> ManifestError {
        ManifestError(
            code, file: file, document: document, object: reference, field: field,
            line: field.flatMap { lines[$0] } ?? line, reason: reason)
    }
}

/// Reads manifest files: YAML syntax, known kinds and API versions, every field against the
/// upstream CRD's field table, names. Validation across objects is ``DesiredStatePlanner``'s.
public enum ManifestReader {
    /// The namespace of an object that names none (kubectl's default).
    public static let defaultNamespace = "default"

    /// Reads every document of `text`; errors are collected, not thrown, so a file reports
    /// all of its problems at once.
    public static func read(_ text: String, file: String) -> (manifests: [Manifest], errors: [ManifestError]) {
        var manifests: [Manifest] = []
        var errors: [ManifestError] = []
        var documents: YamlSequence<Node>
        do {
            documents = try Yams.compose_all(yaml: text)
        } catch {
            return ([], [syntaxError(error, file: file)])
        }
        var index = 0
        while let node = documents.next() {
            index += 1
            if case .scalar(let scalar) = node, yamlTag(scalar) == .null { continue }  // an empty document
            var reader = DocumentReader(file: file, document: index)
            if let manifest = reader.read(node) { manifests.append(manifest) }
            errors.append(contentsOf: reader.errors)
        }
        if let error = documents.error {
            errors.append(syntaxError(error, file: file, document: index + 1))
        }
        return (manifests, errors)
    }

    static func syntaxError(_ error: any Error, file: String, document: Int? = nil) -> ManifestError {
        if let yaml = error as? YamlError {
            switch yaml {
            case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
                .composer(let context, let problem, let mark, _):
                let where_ = context.map { " (\($0.text) at line \($0.mark.line))" } ?? ""
                return ManifestError(
                    .syntax, file: file, document: document, line: mark.line,
                    reason: "YAML syntax: \(problem)\(where_), column \(mark.column)")
            case .duplicatedKeysInMapping(let duplicates, let context):
                return ManifestError(
                    .syntax, file: file, document: document, line: context.mark.line,
                    reason: "YAML syntax: duplicate keys \(duplicates.joined(separator: ", "))")
            default:
                break
            }
        }
        return ManifestError(.syntax, file: file, document: document, reason: "YAML syntax: \(error)")
    }
}

/// DNS-1123 subdomain (object names, RFC 1123): at most 253 characters of lowercase
/// alphanumerics, `-` and `.`, starting and ending alphanumeric.
public func dns1123SubdomainProblem(_ name: String) -> String? {
    if name.isEmpty { return "must not be empty" }
    if name.utf8.count > 253 { return "must be at most 253 characters, got \(name.utf8.count)" }
    for label in name.split(separator: ".", omittingEmptySubsequences: false) {
        if let problem = dns1123LabelProblem(String(label), maxLength: 253) { return problem }
    }
    return nil
}

/// DNS-1123 label (namespaces): at most 63 lowercase alphanumerics or `-`, alphanumeric at
/// both ends.
public func dns1123LabelProblem(_ name: String, maxLength: Int = 63) -> String? {
    if name.isEmpty { return "must not be empty (a DNS-1123 name)" }
    if name.utf8.count > maxLength { return "must be at most \(maxLength) characters, got \(name.utf8.count)" }
    let allowed = name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d }
    let first = name.utf8.first!, last = name.utf8.last!
    guard allowed, first != 0x2d, last != 0x2d else {
        return "\"\(name)\" is not a DNS-1123 name: lowercase letters, digits and '-', starting and ending with a letter or digit"
    }
    return nil
}

/// Reads one document.
private struct DocumentReader {
    let file: String
    let document: Int
    var errors: [ManifestError] = []
    var lines: [String: Int] = [:]
    var notActedOn: [String] = []
    var object = "document"

    init(file: String, document: Int) {
        self.file = file
        self.document = document
    }

    mutating func fail(_ code: ManifestError.Code, field: String?, line: Int?, _ reason: String) {
        let objectName = object == "document" ? nil : object
        errors.append(ManifestError(code, file: file, document: document, object: objectName, field: field, line: line, reason: reason))
    }

    mutating func read(_ node: Node) -> Manifest? {
        let line = node.mark?.line ?? 1
        guard case .mapping(let mapping) = node else {
            fail(.invalidValue, field: nil, line: line, "a manifest must be an object with apiVersion, kind and metadata")
            return nil
        }
        var top: [String: Node] = [:]
        for (key, value) in mapping {
            guard let name = key.string else { continue }
            top[name] = value
            lines[name] = key.mark?.line
        }
        guard let apiVersion = top["apiVersion"]?.string, !apiVersion.isEmpty else {
            fail(.invalidValue, field: "apiVersion", line: line, "is required")
            return nil
        }
        guard let kind = top["kind"]?.string, !kind.isEmpty else {
            fail(.invalidValue, field: "kind", line: line, "is required")
            return nil
        }
        let metadataNode = top["metadata"]
        let name = metadataNode.flatMap { Self.member("name", of: $0)?.string } ?? ""
        object = "\(kind)/\(name)"
        guard let entry = KindRegistry.entry(apiVersion: apiVersion, kind: kind) else {
            let versions = KindRegistry.apiVersions(of: kind)
            if versions.isEmpty {
                let hint = suggestion(for: kind, among: KindRegistry.kinds).map { " (did you mean \($0)?)" } ?? ""
                fail(.unknownKind, field: "kind", line: lines["kind"],
                     "unknown kind \(kind)\(hint); Capstan reads \(KindRegistry.kinds.joined(separator: ", "))")
            } else {
                fail(.unknownAPIVersion, field: "apiVersion", line: lines["apiVersion"],
                     "\(kind) is not served at \(apiVersion); use \(versions.joined(separator: " or "))")
            }
            return nil
        }
        var kept: [String: ManifestValue] = [
            "apiVersion": .string(apiVersion), "kind": .string(kind),
        ]
        for (key, value) in top.sorted(by: { $0.key < $1.key }) where key != "apiVersion" && key != "kind" {
            switch key {
            case "metadata":
                let metadata = check(value, KindRegistry.metadata, path: "metadata", acted: KindRegistry.metadataActed, actedRoot: "metadata")
                var members = metadata.objectValue ?? [:]
                members = members.filter { KindRegistry.metadataActed.contains($0.key) }
                kept["metadata"] = .object(members)
            case "spec", "status":
                guard let schema = entry.schema.children[key] else {
                    fail(.unknownField, field: key, line: lines[key], "unknown field \"\(key)\" in \(kind)")
                    continue
                }
                let checked = check(value, schema, path: key, acted: entry.actedOn, actedRoot: "")
                if key == "spec" { kept["spec"] = checked }
            default:
                let known = ["apiVersion", "kind", "metadata", "spec", "status"]
                let hint = suggestion(for: key, among: known).map { " (did you mean \($0)?)" } ?? ""
                fail(.unknownField, field: key, line: lines[key], "unknown field \"\(key)\"\(hint)")
            }
        }
        guard let metadata = kept["metadata"] else {
            fail(.invalidValue, field: "metadata.name", line: line, "is required")
            return nil
        }
        if let problem = dns1123SubdomainProblem(name) {
            fail(.invalidName, field: "metadata.name", line: lines["metadata.name"] ?? line, problem)
        }
        var namespace = ManifestReader.defaultNamespace
        if let given = metadata["namespace"]?.stringValue {
            namespace = given
            if let problem = dns1123LabelProblem(given) {
                fail(.invalidName, field: "metadata.namespace", line: lines["metadata.namespace"], problem)
            }
        }
        if case .object(var members) = metadata {
            members["namespace"] = .string(namespace)
            kept["metadata"] = .object(members)
        }
        guard errors.isEmpty else { return nil }
        return Manifest(
            file: file, document: document, line: line, kind: entry.kind, namespace: namespace, name: name,
            object: .object(kept), notActedOn: notActedOn, lines: lines)
    }

    static func member(_ key: String, of node: Node) -> Node? {
        guard case .mapping(let mapping) = node else { return nil }
        return mapping.first { $0.key.string == key }?.value
    }

    /// Checks `node` against `schema`, recording the line of each path, and returns its value.
    /// `schemaPath` is the generic path (`spec.files[].content`) used for the acted-on set.
    mutating func check(
        _ node: Node, _ schema: FieldSchema, path: String, schemaPath: String? = nil, acted: Set<String>,
        actedRoot: String
    ) -> ManifestValue {
        let schemaPath = schemaPath ?? path
        let line = node.mark?.line
        if lines[path] == nil { lines[path] = line }
        let actedPath = actedRoot.isEmpty ? schemaPath : String(schemaPath.dropFirst(actedRoot.count + 1))
        if !actedPath.isEmpty, !Self.isActed(actedPath, acted) {
            notActedOn.append(schemaPath)
            acted_ = false
        }
        defer { acted_ = true }
        return value(node, schema, path: path, schemaPath: schemaPath, acted: acted, actedRoot: actedRoot, line: line)
    }

    /// Set while walking a subtree already reported as not acted on (report only its top).
    private var acted_ = true

    static func isActed(_ path: String, _ acted: Set<String>) -> Bool {
        if acted.contains(path) { return true }
        for actedPath in acted {
            if actedPath.hasPrefix(path + ".") || actedPath.hasPrefix(path + "[]") { return true }  // an ancestor
            if path.hasPrefix(actedPath + ".") || path.hasPrefix(actedPath + "[]") { return true }  // beneath
        }
        return false
    }

    private mutating func value(
        _ node: Node, _ schema: FieldSchema, path: String, schemaPath: String, acted: Set<String>, actedRoot: String,
        line: Int?
    ) -> ManifestValue {
        if case .scalar(let scalar) = node, yamlTag(scalar) == .null { return .null }
        switch schema.type {
        case .any:
            return Self.plain(node)
        case .object, .map:
            guard case .mapping(let mapping) = node else {
                fail(.invalidValue, field: path, line: line, "must be \(schema.type.phrase), got \(Self.describe(node))")
                return .null
            }
            var members: [String: ManifestValue] = [:]
            for (keyNode, valueNode) in mapping {
                guard let key = keyNode.string else { continue }
                let childPath = path + "." + key
                if schema.type == .map || (schema.children.isEmpty && schema.type == .object) {
                    let itemSchema = schema.children["*"] ?? FieldSchema(type: .any)
                    lines[childPath] = keyNode.mark?.line
                    members[key] = value(valueNode, itemSchema, path: childPath, schemaPath: schemaPath + ".*",
                                         acted: acted, actedRoot: actedRoot, line: valueNode.mark?.line)
                    continue
                }
                guard let child = schema.children[key] else {
                    let hint = suggestion(for: key, among: schema.children.keys).map { " (did you mean \"\($0)\"?)" }
                        ?? "; known fields: \(schema.children.keys.sorted().joined(separator: ", "))"
                    fail(.unknownField, field: childPath, line: keyNode.mark?.line, "unknown field \"\(key)\"\(hint)")
                    continue
                }
                lines[childPath] = keyNode.mark?.line
                let value: ManifestValue
                if acted_ {
                    value = check(valueNode, child, path: childPath, schemaPath: schemaPath + "." + key, acted: acted,
                                  actedRoot: actedRoot)
                } else {
                    value = self.value(valueNode, child, path: childPath, schemaPath: schemaPath + "." + key,
                                       acted: acted, actedRoot: actedRoot, line: valueNode.mark?.line)
                }
                if value != .null { members[key] = value }
            }
            return .object(members)
        case .array:
            guard case .sequence(let sequence) = node else {
                fail(.invalidValue, field: path, line: line, "must be \(schema.type.phrase), got \(Self.describe(node))")
                return .null
            }
            let itemSchema = schema.children["[]"] ?? FieldSchema(type: .any)
            var items: [ManifestValue] = []
            for (index, item) in sequence.enumerated() {
                items.append(value(item, itemSchema, path: "\(path)[\(index)]", schemaPath: schemaPath + "[]",
                                   acted: acted, actedRoot: actedRoot, line: item.mark?.line))
            }
            return .array(items)
        case .string, .integer, .number, .boolean, .intOrString:
            guard case .scalar(let scalar) = node else {
                fail(.invalidValue, field: path, line: line, "must be \(schema.type.phrase), got \(Self.describe(node))")
                return .null
            }
            let plain = Self.plain(node)
            switch (schema.type, plain) {
            case (.string, .string), (.integer, .integer), (.number, .integer), (.number, .number), (.boolean, .bool),
                (.intOrString, .integer), (.intOrString, .string):
                return plain
            case (.string, _):
                fail(.invalidValue, field: path, line: line,
                     "must be a string, got \(Self.describe(node)) (quote it: \"\(scalar.string)\")")
            default:
                fail(.invalidValue, field: path, line: line, "must be \(schema.type.phrase), got \(Self.describe(node))")
            }
            return .null
        }
    }

    /// The value of a YAML node as JSON sees it (tags resolved as Kubernetes' YAML reader does).
    static func plain(_ node: Node) -> ManifestValue {
        switch node {
        case .scalar(let scalar):
            switch yamlTag(scalar) {
            case .null: return .null
            case .bool: return node.bool.map(ManifestValue.bool) ?? .string(scalar.string)
            case .int: return node.int.map { .integer(Int64($0)) } ?? .string(scalar.string)
            case .float: return node.float.map(ManifestValue.number) ?? .string(scalar.string)
            default: return .string(scalar.string)
            }
        case .mapping(let mapping):
            var members: [String: ManifestValue] = [:]
            for (key, value) in mapping {
                if let key = key.string { members[key] = plain(value) }
            }
            return .object(members)
        case .sequence(let sequence):
            return .array(sequence.map(plain))
        case .alias:
            return .null
        }
    }

    static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar):
            switch yamlTag(scalar) {
            case .int, .float: return "the number \(scalar.string)"
            case .bool: return "the boolean \(scalar.string)"
            default: return "the string \"\(scalar.string)\""
            }
        case .mapping: return "an object"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }
}

/// The resolved tag of a scalar (`Tag.name` is internal to Yams; its raw value is not).
/// A plain scalar's tag is implicit until resolved (YAML 1.1 core rules, as Yams resolves
/// them); a quoted one is non-specific, which means a string.
func yamlTag(_ scalar: Node.Scalar) -> Tag.Name {
    let name = Tag.Name(rawValue: scalar.tag.rawValue)
    if name == .implicit { return Resolver.default.resolveTag(of: Node.scalar(scalar)) }
    if name == .nonSpecific { return .str }
    return name
}
