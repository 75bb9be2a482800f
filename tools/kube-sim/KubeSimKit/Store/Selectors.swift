/// A parsed label selector (`app=web,tier!=db,env in (a,b),!legacy`), as
/// `k8s.io/apimachinery/pkg/labels` reads it.
struct LabelSelector: Sendable {
    enum Requirement: Sendable {
        case equals(String, String)
        case notEquals(String, String)
        case isIn(String, Set<String>)
        case notIn(String, Set<String>)
        case exists(String)
        case notExists(String)
    }

    var requirements: [Requirement]

    /// - Throws: `APIError` (400 BadRequest) naming the bad requirement.
    init(parsing text: String) throws {
        requirements = []
        for part in LabelSelector.splitTopLevel(text) {
            let term = part.trimmingSpaces()
            if term.isEmpty { continue }
            requirements.append(try LabelSelector.parseRequirement(term))
        }
    }

    init(matchLabels: [String: String]) {
        requirements = matchLabels.sorted { $0.key < $1.key }.map { .equals($0.key, $0.value) }
    }

    /// A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`), as a PDB holds it.
    init(object: JSON?) {
        requirements = []
        for (key, value) in (object?["matchLabels"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
            requirements.append(.equals(key, value.scalarText ?? ""))
        }
        for expression in object?["matchExpressions"]?.arrayValue ?? [] {
            let key = expression["key"]?.stringValue ?? ""
            let values = Set((expression["values"]?.arrayValue ?? []).compactMap(\.scalarText))
            switch expression["operator"]?.stringValue {
            case "In": requirements.append(.isIn(key, values))
            case "NotIn": requirements.append(.notIn(key, values))
            case "Exists": requirements.append(.exists(key))
            case "DoesNotExist": requirements.append(.notExists(key))
            default: requirements.append(.isIn(key, []))  // an unknown operator matches nothing
            }
        }
    }

    var isEmpty: Bool { requirements.isEmpty }

    func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { requirement in
            switch requirement {
            case .equals(let key, let value): return labels[key] == value
            case .notEquals(let key, let value): return labels[key] != value
            case .isIn(let key, let values): return labels[key].map(values.contains) ?? false
            case .notIn(let key, let values): return !(labels[key].map(values.contains) ?? false)
            case .exists(let key): return labels[key] != nil
            case .notExists(let key): return labels[key] == nil
            }
        }
    }

    private static func splitTopLevel(_ text: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var depth = 0
        for character in text {
            switch character {
            case "(": depth += 1; current.append(character)
            case ")": depth -= 1; current.append(character)
            case "," where depth == 0: parts.append(current); current = ""
            default: current.append(character)
            }
        }
        parts.append(current)
        return parts
    }

    private static func parseRequirement(_ term: String) throws -> Requirement {
        if term.hasPrefix("!") {
            return .notExists(try validKey(String(term.dropFirst()).trimmingSpaces(), in: term))
        }
        for (op, make) in [("!=", Requirement.notEquals), ("==", Requirement.equals), ("=", Requirement.equals)] {
            if let range = term.range(of: op) {
                let key = try validKey(String(term[..<range.lowerBound]).trimmingSpaces(), in: term)
                return make(key, String(term[range.upperBound...]).trimmingSpaces())
            }
        }
        for (word, isIn) in [(" notin ", false), (" in ", true)] {
            if let range = term.range(of: word) {
                let key = try validKey(String(term[..<range.lowerBound]).trimmingSpaces(), in: term)
                var list = String(term[range.upperBound...]).trimmingSpaces()
                guard list.hasPrefix("("), list.hasSuffix(")") else {
                    throw APIError.badRequest("unable to parse requirement: \(term): expected a parenthesized list")
                }
                list = String(list.dropFirst().dropLast())
                let values = Set(list.split(separator: ",").map { String($0).trimmingSpaces() })
                return isIn ? .isIn(key, values) : .notIn(key, values)
            }
        }
        return .exists(try validKey(term, in: term))
    }

    private static func validKey(_ key: String, in term: String) throws -> String {
        guard !key.isEmpty, !key.contains(" ") else {
            throw APIError.badRequest("unable to parse requirement: \(term): invalid label key \"\(key)\"")
        }
        return key
    }
}

/// A parsed field selector (`spec.nodeName=n1,metadata.name!=x`). Any dotted path into the
/// object is allowed, which is more than the real server permits per kind but never less.
struct FieldSelector: Sendable {
    struct Requirement: Sendable {
        var path: [String]
        var value: String
        var equal: Bool
    }

    var requirements: [Requirement]

    init(parsing text: String) throws {
        requirements = []
        for part in text.split(separator: ",") {
            let term = String(part).trimmingSpaces()
            if term.isEmpty { continue }
            var parsed: Requirement?
            for (op, equal) in [("!=", false), ("==", true), ("=", true)] {
                if let range = term.range(of: op) {
                    let field = String(term[..<range.lowerBound]).trimmingSpaces()
                    parsed = Requirement(
                        path: field.split(separator: ".").map(String.init),
                        value: String(term[range.upperBound...]).trimmingSpaces(), equal: equal)
                    break
                }
            }
            guard let parsed, !parsed.path.isEmpty else {
                throw APIError.badRequest("invalid field selector: \(term)")
            }
            requirements.append(parsed)
        }
    }

    func matches(_ object: JSON) -> Bool {
        requirements.allSatisfy { requirement in
            let actual = object[path: requirement.path]?.scalarText ?? ""
            return (actual == requirement.value) == requirement.equal
        }
    }
}

extension String {
    func trimmingSpaces() -> String {
        var slice = Substring(self)
        while slice.first == " " { slice = slice.dropFirst() }
        while slice.last == " " { slice = slice.dropLast() }
        return String(slice)
    }
}
