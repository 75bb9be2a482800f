import CCurl
import Foundation

/// One request on one easy handle: the options set, the buffers curl points at, the answer so far.
///
/// Lives on the curl thread only. It keeps alive what curl only borrows (the header `curl_slist`
/// and the error buffer) until `release()`, after the handle left the multi handle.
final class CurlTransfer {
    let id: UInt64
    let easy: UnsafeMutableRawPointer
    private let completion: CurlTransport.Completion
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var connectToList: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private var responseHeaders: [String: String] = [:]
    private var responseBody: [UInt8] = []
    private var headSent = false

    init(id: UInt64, easy: UnsafeMutableRawPointer, completion: CurlTransport.Completion) {
        self.id = id
        self.easy = easy
        self.completion = completion
        self.errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        errorBuffer.deallocate()
        precondition(headerList == nil && connectToList == nil, "CurlTransfer released without release()")
    }

    private var isStreaming: Bool {
        if case .streaming = completion { return true }
        return false
    }

    // MARK: options

    /// Sets every option for `request`. A failing `setopt` is our bug (wrong type or option), so it traps.
    func configure(_ request: HTTPRequest) {
        var request = request
        if let serverName = request.tls.serverName { connect(request: &request, verifyingAs: serverName) }
        set(CURLOPT_URL, string: request.url)
        // One home for who Capstan says it is; a request's own `User-Agent:` line would win.
        set(CURLOPT_USERAGENT, string: ClientIdentity.userAgent)
        // Ask for gzip and decode it (responses come back as sent when the server does not compress).
        set(CURLOPT_ACCEPT_ENCODING, string: "gzip")
        if let proxy = request.tls.proxyURL { set(CURLOPT_PROXY, string: proxy) }
        set(CURLOPT_NOSIGNAL, 1)  // required with threads: no SIGALRM for DNS timeouts
        set(CURLOPT_TCP_KEEPALIVE, 1)
        set(CURLOPT_PIPEWAIT, 1)  // prefer multiplexing on an HTTP/2 connection over opening another
        set(CURLOPT_CONNECTTIMEOUT_MS, Int(request.timeouts.connect.milliseconds))
        set(CURLOPT_TIMEOUT_MS, request.timeouts.total.map { Int($0.milliseconds) } ?? 0)
        set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))
        if request.freshConnection { set(CURLOPT_FRESH_CONNECT, 1) }
        configureMethod(request)
        configureTLS(request.tls)
        configureHeaders(request)
        let context = Unmanaged.passUnretained(self).toOpaque()
        check(capstan_curl_easy_setopt_data_callback(easy, CURLOPT_WRITEFUNCTION, curlWriteCallback))
        set(CURLOPT_WRITEDATA, pointer: context)
        check(capstan_curl_easy_setopt_data_callback(easy, CURLOPT_HEADERFUNCTION, curlHeaderCallback))
        set(CURLOPT_HEADERDATA, pointer: context)
    }

    /// `tls-server-name`: the URL names `serverName` (so curl sends it as SNI and verifies the
    /// certificate for it) while CURLOPT_CONNECT_TO sends the connection to the kubeconfig's
    /// host and port, and `Host:` stays that host, as Go's `tls.Config.ServerName` does.
    private func connect(request: inout HTTPRequest, verifyingAs serverName: String) {
        guard var components = URLComponents(string: request.url), let host = components.percentEncodedHost else {
            preconditionFailure("HTTPRequest.url is not a URL")
        }
        let port = components.port ?? (components.scheme?.lowercased() == "http" ? 80 : 443)
        let hostLiteral = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        components.percentEncodedHost = serverName
        guard let rewritten = components.string else { preconditionFailure("tls-server-name made no URL") }
        let entry = "\(serverName):\(port):\(hostLiteral):\(port)"
        guard let list = curl_slist_append(nil, entry) else { fatalError("curl_slist_append: out of memory") }
        connectToList = list
        check(capstan_curl_easy_setopt_slist(easy, CURLOPT_CONNECT_TO, list))
        if !request.headers.contains(where: { $0.lowercased().hasPrefix("host:") }) {
            request.headers.append("Host: \(hostLiteral)\(components.port.map { ":\($0)" } ?? "")")
        }
        request.url = rewritten
    }

    private func configureMethod(_ request: HTTPRequest) {
        switch request.method {
        case "GET": set(CURLOPT_HTTPGET, 1)
        case "POST": break
        default: set(CURLOPT_CUSTOMREQUEST, string: request.method)
        }
        if let body = request.body {
            // COPYPOSTFIELDS copies the bytes, so the body need not outlive this call.
            check(capstan_curl_easy_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)))
            body.withUnsafeBytes { bytes in
                let base = bytes.baseAddress ?? UnsafeRawPointer(errorBuffer)
                set(CURLOPT_COPYPOSTFIELDS, pointer: UnsafeMutableRawPointer(mutating: base))
            }
        } else if request.method == "POST" {
            check(capstan_curl_easy_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, 0))
            set(CURLOPT_COPYPOSTFIELDS, string: "")
        }
    }

    private func configureTLS(_ tls: TLSSettings) {
        // With a credential on board curl may only speak TLS: a token or key never leaves in clear text,
        // whatever URL (or redirect) the request names.
        if tls.bearerToken != nil || tls.clientCertificate != nil || tls.clientKey != nil {
            set(CURLOPT_PROTOCOLS_STR, string: "https")
            set(CURLOPT_REDIR_PROTOCOLS_STR, string: "https")
        }
        if tls.insecureSkipTLSVerify {
            set(CURLOPT_SSL_VERIFYPEER, 0)
            set(CURLOPT_SSL_VERIFYHOST, 0)
        } else {
            set(CURLOPT_SSL_VERIFYPEER, 1)
            set(CURLOPT_SSL_VERIFYHOST, 2)
        }
        // A kubeconfig's CA is the only trust anchor, as for kubectl. libcurl4-openssl on Debian
        // is built with a default bundle (/etc/ssl/certs/ca-certificates.crt) and a default CA
        // directory (/etc/ssl/certs); CAINFO or CAINFO_BLOB replaces the bundle but the directory
        // would still be searched, so any system-trusted certificate would verify. Both defaults
        // are cleared (NULL: "no CA path"/"no CA bundle"). No CA fallback is built in
        // (curl-config --configure has no --with-ca-fallback), so nothing else is consulted.
        switch tls.certificateAuthority {
        case .file(let path):
            set(CURLOPT_CAINFO, string: path)
            clear(CURLOPT_CAPATH)
        case .pem(let pem):
            setBlob(CURLOPT_CAINFO_BLOB, pem.exposedBytes)
            clear(CURLOPT_CAINFO)
            clear(CURLOPT_CAPATH)
        case nil: break
        }
        switch tls.clientCertificate {
        case .file(let path): set(CURLOPT_SSLCERT, string: path)
        case .pem(let pem): setBlob(CURLOPT_SSLCERT_BLOB, pem.exposedBytes)
        case nil: break
        }
        if tls.clientCertificate != nil { set(CURLOPT_SSLCERTTYPE, string: "PEM") }
        switch tls.clientKey {
        case .file(let path): set(CURLOPT_SSLKEY, string: path)
        case .pem(let pem): setBlob(CURLOPT_SSLKEY_BLOB, pem.exposedBytes)
        case nil: break
        }
        if tls.clientKey != nil { set(CURLOPT_SSLKEYTYPE, string: "PEM") }
    }

    private func configureHeaders(_ request: HTTPRequest) {
        var lines = request.headers
        // curl asks for `100-continue` before large bodies; servers answering at once make that a stall.
        lines.append("Expect:")
        if let token = request.tls.bearerToken { lines.append("Authorization: Bearer \(token.exposedString)") }
        for line in lines {
            guard let appended = curl_slist_append(headerList, line) else { fatalError("curl_slist_append: out of memory") }
            headerList = appended
        }
        check(capstan_curl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, headerList))
    }

    private func set(_ option: CURLoption, _ value: Int) {
        check(capstan_curl_easy_setopt_long(easy, option, value))
    }

    private func set(_ option: CURLoption, string: String) {
        // curl copies string options (`curl_easy_setopt(3)`: "strings are copied" since 7.17).
        check(capstan_curl_easy_setopt_string(easy, option, string))
    }

    /// Sets a string option to NULL, its "none" (not its built-in default).
    private func clear(_ option: CURLoption) {
        check(capstan_curl_easy_setopt_string(easy, option, nil))
    }

    private func set(_ option: CURLoption, pointer: UnsafeMutableRawPointer) {
        check(capstan_curl_easy_setopt_pointer(easy, option, pointer))
    }

    private func setBlob(_ option: CURLoption, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            // CURL_BLOB_COPY: curl keeps its own copy, so our array may go away after this call.
            var blob = curl_blob(
                data: UnsafeMutableRawPointer(mutating: raw.baseAddress), len: raw.count,
                flags: UInt32(CURL_BLOB_COPY))
            check(capstan_curl_easy_setopt_blob(easy, option, &blob))
        }
    }

    private func check(_ code: CURLcode, line: UInt = #line) {
        precondition(code == CURLE_OK, "curl_easy_setopt failed (\(code.rawValue)) at CurlTransfer.swift:\(line)")
    }

    // MARK: callbacks (curl thread)

    func receiveHeader(_ bytes: UnsafeRawBufferPointer) {
        let line = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: ["\r", "\n"])
        if line.hasPrefix("HTTP/") {
            responseHeaders = [:]  // a new response (after 100 Continue or a redirect)
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: [" ", "\t"])
        responseHeaders[name] = value
    }

    func receiveBody(_ bytes: UnsafeRawBufferPointer) {
        guard case .streaming(let continuation) = completion else {
            responseBody.append(contentsOf: bytes)
            return
        }
        if !headSent {
            headSent = true
            continuation.yield(.head(status: responseStatus(), headers: responseHeaders))
        }
        continuation.yield(.body(Array(bytes)))
    }

    private func responseStatus() -> Int {
        var status = 0
        let code = capstan_curl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        precondition(code == CURLE_OK, "curl_easy_getinfo(CURLINFO_RESPONSE_CODE): \(code.rawValue)")
        return status
    }

    // MARK: completion

    func complete(_ result: Result<Void, any Error>) {
        switch (completion, result) {
        case (.buffered(let waiter), .success):
            waiter.resume(returning: HTTPResponse(status: responseStatus(), headers: responseHeaders, body: responseBody))
        case (.streaming(let continuation), .success):
            if !headSent { continuation.yield(.head(status: responseStatus(), headers: responseHeaders)) }
            continuation.finish()
        case (_, .failure(let error)):
            completion.fail(error)
        }
    }

    /// Frees what curl borrowed. Call after the handle left the multi handle.
    func release() {
        curl_slist_free_all(headerList)
        headerList = nil
        curl_slist_free_all(connectToList)
        connectToList = nil
    }

    func transportError(_ code: CURLcode) -> HTTPTransportError {
        let detail = String(cString: errorBuffer)
        let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        let kind: HTTPTransportError.Code
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            kind = .connectFailed
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE:
            kind = .tlsVerificationFailed
        case CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER, CURLE_SSL_ENGINE_NOTFOUND:
            kind = .tlsFailed
        case CURLE_OPERATION_TIMEDOUT:
            kind = .timedOut
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_HTTP2,
            CURLE_HTTP2_STREAM:
            kind = .connectionLost
        default:
            kind = .other
        }
        return HTTPTransportError(code: kind, curlCode: Int32(code.rawValue), message: message)
    }
}

@available(*, unavailable) extension CurlTransfer: Sendable {}

private let curlWriteCallback: capstan_curl_data_callback = { data, size, count, context in
    let length = size * count
    guard let context, let data, length > 0 else { return length }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
    transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: length))
    return length
}

private let curlHeaderCallback: capstan_curl_data_callback = { data, size, count, context in
    let length = size * count
    guard let context, let data, length > 0 else { return length }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
    transfer.receiveHeader(UnsafeRawBufferPointer(start: data, count: length))
    return length
}

extension Duration {
    /// Whole milliseconds, rounded down (curl takes `long` milliseconds).
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
