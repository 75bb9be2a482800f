/// Why a manifest was refused: the file, the document, the object, the field and the reason.
///
/// `apply` collects every error of every file before it writes anything, and writes nothing
/// when there is one.
public struct ManifestError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The YAML does not parse.
        public static var syntax: Code { Code(rawValue: "Syntax") }
        public static var unknownKind: Code { Code(rawValue: "UnknownKind") }
        public static var unknownAPIVersion: Code { Code(rawValue: "UnknownAPIVersion") }
        public static var unknownField: Code { Code(rawValue: "UnknownField") }
        /// A value of the wrong type, a missing required field, a value out of range.
        public static var invalidValue: Code { Code(rawValue: "InvalidValue") }
        public static var invalidName: Code { Code(rawValue: "InvalidName") }
        public static var duplicate: Code { Code(rawValue: "Duplicate") }
        public static var unresolvedReference: Code { Code(rawValue: "UnresolvedReference") }
        public static var versionNotInCatalog: Code { Code(rawValue: "VersionNotInCatalog") }
        public static var downgrade: Code { Code(rawValue: "Downgrade") }
        public static var versionSkew: Code { Code(rawValue: "VersionSkew") }
        public static var notFound: Code { Code(rawValue: "NotFound") }
    }

    public var code: Code
    /// The file as given (`-` for standard input).
    public var file: String
    /// The document's index in its file, from 1 (nil: the whole file).
    public var document: Int?
    /// `Kind/name` when known.
    public var object: String?
    /// The field path (`spec.template.spec.version`), nil for the whole document.
    public var field: String?
    /// The line in the file, from 1, when known.
    public var line: Int?
    public var reason: String

    public init(
        _ code: Code, file: String, document: Int? = nil, object: String? = nil, field: String? = nil, line: Int? = nil,
        reason: String
    ) {
        self.code = code
        self.file = file
        self.document = document
        self.object = object
        self.field = field
        self.line = line
        self.reason = reason
    }

    /// `fleet.yaml: document 2 (MachineDeployment/md-0): spec.replicas (line 14): must not be negative`
    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        if let document { text += ": document \(document)" }
        if let object { text += " (\(object))" }
        if let field { text += ": \(field)" }
        return text + ": " + reason
    }
}

/// The closest of `candidates` to `word` (Levenshtein), when close enough to be a typo.
func suggestion(for word: String, among candidates: some Sequence<String>) -> String? {
    let limit = max(2, word.count / 3)
    var best: (String, Int)?
    for candidate in candidates {
        let distance = editDistance(word.lowercased(), candidate.lowercased())
        if distance <= limit, distance < (best?.1 ?? .max) { best = (candidate, distance) }
    }
    return best?.0
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8), b = Array(b.utf8)
    if a.isEmpty { return b.count }
    var previous = Array(0...b.count)
    var current = previous
    for i in 1...a.count {
        current[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
