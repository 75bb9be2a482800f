/// A Kubernetes `Status` failure, as the API server answers every error.
///
/// `reason` and `code` follow `k8s.io/apimachinery/pkg/api/errors`; clients switch on them
/// (client-go's `IsNotFound`, `IsConflict`...), so each factory matches the real server.
struct APIError: Error, Sendable {
    var code: Int
    var reason: String
    var message: String
    var details: JSON?
    /// Seconds for `Retry-After` (TooManyRequests, ServiceUnavailable).
    var retryAfterSeconds: Int?

    var status: JSON {
        var status: JSON = [
            "kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Failure",
            "message": .string(message), "reason": .string(reason), "code": .int(Int64(code)),
        ]
        if var details {
            if let retryAfterSeconds { details["retryAfterSeconds"] = .int(Int64(retryAfterSeconds)) }
            status["details"] = details
        } else if let retryAfterSeconds {
            status["details"] = ["retryAfterSeconds": .int(Int64(retryAfterSeconds))]
        }
        return status
    }

    static func details(_ resource: ResourceType?, name: String?) -> JSON {
        var details: JSON = [:]
        if let name { details["name"] = .string(name) }
        if let resource {
            details["group"] = .string(resource.group)
            details["kind"] = .string(resource.name)
        }
        return details
    }

    static func notFound(_ resource: ResourceType, name: String) -> APIError {
        APIError(
            code: 404, reason: "NotFound", message: "\(resource.qualifiedName) \"\(name)\" not found",
            details: details(resource, name: name))
    }

    static func alreadyExists(_ resource: ResourceType, name: String) -> APIError {
        APIError(
            code: 409, reason: "AlreadyExists", message: "\(resource.qualifiedName) \"\(name)\" already exists",
            details: details(resource, name: name))
    }

    static func conflict(_ resource: ResourceType, name: String, why: String) -> APIError {
        APIError(
            code: 409, reason: "Conflict",
            message: "Operation cannot be fulfilled on \(resource.qualifiedName) \"\(name)\": \(why)",
            details: details(resource, name: name))
    }

    static func staleResourceVersion(_ resource: ResourceType, name: String) -> APIError {
        conflict(
            resource, name: name,
            why: "the object has been modified; please apply your changes to the latest version and try again")
    }

    /// 422 Invalid with one cause per field, as a validating admission or the storage would.
    static func invalid(_ resource: ResourceType, kind: String, name: String, causes: [(field: String, message: String)])
        -> APIError
    {
        let summary = causes.map { "\($0.field): \($0.message)" }.joined(separator: ", ")
        var details = details(resource, name: name)
        details["kind"] = .string(kind)
        details["causes"] = .array(
            causes.map { ["reason": "FieldValueInvalid", "message": .string($0.message), "field": .string($0.field)] })
        return APIError(
            code: 422, reason: "Invalid", message: "\(kind) \"\(name)\" is invalid: \(summary)", details: details)
    }

    static func badRequest(_ message: String) -> APIError {
        APIError(code: 400, reason: "BadRequest", message: message)
    }

    static func unauthorized() -> APIError {
        APIError(code: 401, reason: "Unauthorized", message: "Unauthorized")
    }

    static func forbidden(_ message: String) -> APIError {
        APIError(code: 403, reason: "Forbidden", message: message)
    }

    static func methodNotAllowed(_ message: String) -> APIError {
        APIError(code: 405, reason: "MethodNotAllowed", message: message)
    }

    static func notAcceptable(_ message: String) -> APIError {
        APIError(code: 406, reason: "NotAcceptable", message: message)
    }

    static func unsupportedMediaType(_ contentType: String) -> APIError {
        APIError(
            code: 415, reason: "UnsupportedMediaType",
            message: "the body of the request was in an unknown format - accepted media types include: application/json, application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got \(contentType)")
    }

    static func gone(_ message: String) -> APIError {
        APIError(code: 410, reason: "Expired", message: message)
    }

    static func tooManyRequests(_ message: String, retryAfterSeconds: Int) -> APIError {
        APIError(code: 429, reason: "TooManyRequests", message: message, retryAfterSeconds: retryAfterSeconds)
    }

    static func internalError(_ message: String) -> APIError {
        APIError(code: 500, reason: "InternalError", message: "Internal error occurred: \(message)")
    }

    static func serviceUnavailable(_ message: String, retryAfterSeconds: Int? = nil) -> APIError {
        APIError(code: 503, reason: "ServiceUnavailable", message: message, retryAfterSeconds: retryAfterSeconds)
    }

    static func pathNotFound(_ path: String) -> APIError {
        APIError(code: 404, reason: "NotFound", message: "the server could not find the requested resource (\(path))")
    }
}
