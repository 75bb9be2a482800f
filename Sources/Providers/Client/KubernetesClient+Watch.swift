import Foundation

extension KubernetesClient {
    /// WATCH (`?watch=1`): a stream of ADDED / MODIFIED / DELETED events, one JSON object per line.
    ///
    /// The stream ends when the server ends the watch (`options.timeoutSeconds`); an `ERROR`
    /// event (such as 410 Gone for a too-old `resourceVersion`) ends it with a `KubernetesError`.
    /// Ending iteration cancels the request.
    ///
    /// - Parameter namespace: nil for every namespace (or a cluster-scoped resource).
    public func watch<Object: Decodable & Sendable>(
        _ type: ResourceType, namespace: String?, options: ListOptions = .init(),
        as objectType: Object.Type = Object.self
    ) throws -> AsyncThrowingStream<WatchEvent<Object>, any Error> {
        var query = options.queryItems
        query.append(("watch", "1"))
        query.append(("allowWatchBookmarks", "false"))
        let target = try Target(type, name: nil, namespace: namespace, subresource: nil, query: query)
        var request = HTTPRequest(
            method: "GET", url: url(target), headers: ["Accept: application/json"], tls: tls,
            timeouts: HTTPTimeouts(connect: timeouts.connect, total: nil))
        let operation = "watch \(target.description)"
        let withhold = target.withholdMessages
        // Without a plugin the request starts now, so `overloaded` is thrown here, as before.
        let started = connection.exec == nil ? try transport.stream(request) : nil
        let (events, continuation) = AsyncThrowingStream<WatchEvent<Object>, any Error>.makeStream()
        let reader = Task {
            var credential: ExecCredential? = nil
            do {
                let parts: AsyncThrowingStream<HTTPStreamPart, any Error>
                if let started {
                    parts = started
                } else {
                    credential = try await execCredential(operation: operation)
                    if let credential { request.tls.use(credential) }
                    parts = try transport.stream(request)
                }
                var decoder = WatchLineDecoder<Object>(operation: operation)
                var head: (status: Int, headers: [String: String])? = nil
                var errorBody: [UInt8] = []
                for try await part in parts {
                    switch part {
                    case .head(let status, let headers):
                        head = (status, headers)
                    case .body(let bytes) where head?.status == 200:
                        for event in try decoder.feed(bytes) { continuation.yield(event) }
                    case .body(let bytes):
                        errorBody.append(contentsOf: bytes.prefix(1 << 20 - errorBody.count))
                    }
                }
                if let head, head.status != 200 {
                    // A refused plugin credential is dropped: the caller's next watch runs the plugin again.
                    if head.status == 401, let credential { connection.exec?.invalidate(credential) }
                    let response = HTTPResponse(status: head.status, headers: head.headers, body: errorBody)
                    throw KubernetesError.from(response: response, operation: operation, withholdMessages: withhold)
                }
                for event in try decoder.finish() { continuation.yield(event) }
                continuation.finish()
            } catch let error as HTTPTransportError {
                continuation.finish(throwing: KubernetesError(code: .transport, operation: operation, transport: error))
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in reader.cancel() }
        return events
    }
}

/// Splits a watch body into lines and decodes each as a watch event.
struct WatchLineDecoder<Object: Decodable & Sendable> {
    let operation: String
    private var pending: [UInt8] = []
    /// One event larger than this is refused rather than buffered without end.
    let lineBytesMax = 64 << 20

    init(operation: String) { self.operation = operation }

    private struct Envelope: Decodable { var type: String }
    private struct Typed: Decodable { var object: Object }
    private struct Failure: Decodable { var object: Status }

    mutating func feed(_ bytes: [UInt8]) throws -> [WatchEvent<Object>] {
        pending.append(contentsOf: bytes)
        var events: [WatchEvent<Object>] = []
        var start = 0
        while let newline = pending[start...].firstIndex(of: 0x0A) {
            let line = pending[start..<newline]
            start = newline + 1
            if let event = try decodeLine(line) { events.append(event) }
        }
        pending.removeFirst(start)
        guard pending.count <= lineBytesMax else {
            throw KubernetesError(code: .decoding, operation: operation, detail: "a watch event exceeds \(lineBytesMax) bytes")
        }
        return events
    }

    mutating func finish() throws -> [WatchEvent<Object>] {
        defer { pending = [] }
        return try decodeLine(pending[...]).map { [$0] } ?? []
    }

    private func decodeLine(_ line: ArraySlice<UInt8>) throws -> WatchEvent<Object>? {
        guard line.contains(where: { $0 != 0x20 && $0 != 0x0D && $0 != 0x09 }) else { return nil }
        let data = Data(line)
        let decoder = JSONDecoder()
        do {
            let envelope = try decoder.decode(Envelope.self, from: data)
            guard let type = WatchEvent<Object>.EventType(rawValue: envelope.type) else {
                throw KubernetesError(code: .decoding, operation: operation, detail: "unknown watch event type")
            }
            if type == .error {
                let status = try decoder.decode(Failure.self, from: data).object
                throw KubernetesError(
                    code: KubernetesError.classify(httpStatus: status.code ?? 500, reason: status.reason),
                    httpStatus: status.code, operation: operation, status: status)
            }
            return WatchEvent(type: type, object: try decoder.decode(Typed.self, from: data).object)
        } catch let error as KubernetesError {
            throw error
        } catch {
            throw KubernetesError(
                code: .decoding, operation: operation, detail: KubernetesClient.describe(decodingError: error))
        }
    }
}
