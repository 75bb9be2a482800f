import Foundation
import Hummingbird
import NIOCore

/// Query parameters, percent-decoded, first value wins (as the API server reads them).
struct QueryParameters: Sendable {
    private var values: [String: String] = [:]

    init(_ query: String?) {
        guard let query, !query.isEmpty else { return }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = QueryParameters.decode(parts[0])
            let value = parts.count > 1 ? QueryParameters.decode(parts[1]) : ""
            if values[key] == nil { values[key] = value }
        }
    }

    private static func decode(_ text: Substring) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }

    subscript(_ key: String) -> String? { values[key] }

    func flag(_ key: String) -> Bool {
        guard let value = values[key] else { return false }
        return value == "true" || value == "1" || value.isEmpty
    }
}

/// How this request's JSON responses are encoded: the gzip threshold when the client accepts
/// gzip, else nil. Set by `APIResponder.respond` around each request.
enum ResponseEncoding {
    @TaskLocal static var gzipThresholdBytes: Int? = nil
}

extension Response {
    static func json(_ status: Int, _ body: JSON, headers: HTTPFields = HTTPFields()) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        var bytes = body.serializedBytes()
        if let threshold = ResponseEncoding.gzipThresholdBytes, bytes.count >= threshold {
            bytes = Gzip.compress(bytes)
            fields[.contentEncoding] = "gzip"
        }
        return Response(
            status: HTTPResponse.Status(code: status), headers: fields,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func status(_ error: APIError) -> Response {
        var headers = HTTPFields()
        if let seconds = error.retryAfterSeconds { headers[.retryAfter] = String(seconds) }
        if error.code == 401 { headers[.wwwAuthenticate] = "Bearer realm=\"kube-sim\"" }
        return json(error.code, error.status, headers: headers)
    }

    /// A response the connection-reset handler turns into a closed connection.
    static var connectionReset: Response {
        var headers = HTTPFields()
        headers[ConnectionResetHandler.marker] = "1"
        return Response(status: .internalServerError, headers: headers)
    }
}
