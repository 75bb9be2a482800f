import Foundation

extension JSON {
    /// This value with an RFC 7386 JSON merge patch applied: objects merge key by key,
    /// `null` removes a key, anything else (arrays included) replaces.
    func mergePatched(with patch: JSON) -> JSON {
        guard case .object(let patchMembers) = patch else { return patch }
        var members = objectValue ?? [:]
        for (key, value) in patchMembers {
            if value.isNull {
                members.removeValue(forKey: key)
            } else {
                members[key] = (members[key] ?? .null).mergePatched(with: value)
            }
        }
        return .object(members)
    }

    /// This value with an RFC 6902 JSON patch applied.
    ///
    /// - Throws: `APIError` (422 Invalid-ish BadRequest) naming the failed operation.
    func jsonPatched(with patch: JSON) throws -> JSON {
        guard let operations = patch.arrayValue else {
            throw APIError.badRequest("a JSON patch must be an array of operations")
        }
        var document = self
        for (index, operation) in operations.enumerated() {
            guard let op = operation["op"]?.stringValue, let path = operation["path"]?.stringValue else {
                throw APIError.badRequest("JSON patch operation \(index) needs \"op\" and \"path\"")
            }
            let pointer = try JSON.pointer(path)
            switch op {
            case "add":
                document = try document.setting(pointer, to: operation["value"] ?? .null, insert: true)
            case "replace":
                guard document.value(at: pointer) != nil else {
                    throw APIError.badRequest("JSON patch replace: path \(path) does not exist")
                }
                document = try document.setting(pointer, to: operation["value"] ?? .null, insert: false)
            case "remove":
                document = try document.removing(pointer)
            case "test":
                guard document.value(at: pointer) == (operation["value"] ?? .null) else {
                    throw APIError.invalidPatch("JSON patch test failed at \(path)")
                }
            case "move", "copy":
                guard let from = operation["from"]?.stringValue, let value = document.value(at: try JSON.pointer(from))
                else { throw APIError.badRequest("JSON patch \(op): \"from\" missing or does not exist") }
                if op == "move" { document = try document.removing(try JSON.pointer(from)) }
                document = try document.setting(pointer, to: value, insert: true)
            default:
                throw APIError.badRequest("JSON patch operation \(index): unknown op \"\(op)\"")
            }
        }
        return document
    }

    static func pointer(_ path: String) throws -> [String] {
        if path.isEmpty { return [] }
        guard path.hasPrefix("/") else { throw APIError.badRequest("JSON pointer must start with '/': \(path)") }
        return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }

    func value(at pointer: [String]) -> JSON? {
        var current: JSON? = self
        for token in pointer {
            switch current {
            case .object(let members): current = members[token]
            case .array(let values):
                guard let index = Int(token), values.indices.contains(index) else { return nil }
                current = values[index]
            default: return nil
            }
        }
        return current
    }

    func setting(_ pointer: [String], to value: JSON, insert: Bool) throws -> JSON {
        guard let token = pointer.first else { return value }
        let rest = Array(pointer.dropFirst())
        switch self {
        case .object(var members):
            if rest.isEmpty {
                members[token] = value
            } else {
                guard let child = members[token] else {
                    throw APIError.badRequest("JSON patch: path segment \"\(token)\" does not exist")
                }
                members[token] = try child.setting(rest, to: value, insert: insert)
            }
            return .object(members)
        case .array(var values):
            if rest.isEmpty {
                if token == "-" {
                    values.append(value)
                } else if let index = Int(token), index >= 0, index <= values.count {
                    if insert { values.insert(value, at: index) } else if index < values.count { values[index] = value }
                } else {
                    throw APIError.badRequest("JSON patch: bad array index \"\(token)\"")
                }
            } else {
                guard let index = Int(token), values.indices.contains(index) else {
                    throw APIError.badRequest("JSON patch: bad array index \"\(token)\"")
                }
                values[index] = try values[index].setting(rest, to: value, insert: insert)
            }
            return .array(values)
        default:
            throw APIError.badRequest("JSON patch: cannot descend into a scalar at \"\(token)\"")
        }
    }

    func removing(_ pointer: [String]) throws -> JSON {
        guard let token = pointer.first else { return .null }
        let rest = Array(pointer.dropFirst())
        switch self {
        case .object(var members):
            guard let child = members[token] else {
                throw APIError.badRequest("JSON patch remove: path segment \"\(token)\" does not exist")
            }
            if rest.isEmpty { members.removeValue(forKey: token) } else { members[token] = try child.removing(rest) }
            return .object(members)
        case .array(var values):
            guard let index = Int(token), values.indices.contains(index) else {
                throw APIError.badRequest("JSON patch remove: bad array index \"\(token)\"")
            }
            if rest.isEmpty { values.remove(at: index) } else { values[index] = try values[index].removing(rest) }
            return .array(values)
        default:
            throw APIError.badRequest("JSON patch remove: cannot descend into a scalar")
        }
    }

    /// The `fieldsV1` set of the fields this applied configuration sets, as managedFields records it.
    var fieldSet: JSON {
        guard case .object(let members) = self else { return [:] }
        var set: [String: JSON] = [:]
        for (key, value) in members {
            if case .object = value { set["f:\(key)"] = value.fieldSet } else { set["f:\(key)"] = [:] }
        }
        return .object(set)
    }
}

extension APIError {
    static func invalidPatch(_ message: String) -> APIError {
        APIError(code: 422, reason: "Invalid", message: message)
    }
}
