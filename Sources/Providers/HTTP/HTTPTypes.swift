/// One HTTP request as the transport sends it: method, absolute URL, headers, body, TLS.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    /// Header lines `Name: value`. Lines carrying credentials are built by the transport from `tls.token`.
    public var headers: [String]
    public var body: [UInt8]?
    public var tls: TLSSettings
    public var timeouts: HTTPTimeouts
    /// Send on a new connection. curl silently re-sends a request once when a *reused*
    /// connection closes before any answer byte (`Curl_retry_request`), which is wrong for a
    /// request that must not run twice (a plain POST): a fresh connection is never re-sent.
    public var freshConnection: Bool

    public init(
        method: String, url: String, headers: [String] = [], body: [UInt8]? = nil, tls: TLSSettings,
        timeouts: HTTPTimeouts = .init(), freshConnection: Bool = false
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.tls = tls
        self.timeouts = timeouts
        self.freshConnection = freshConnection
    }
}

/// Trust and credentials for one server; built from a `ClusterConnection`.
public struct TLSSettings: Sendable, Hashable {
    public var certificateAuthority: PEMSource?
    public var insecureSkipTLSVerify: Bool
    public var clientCertificate: PEMSource?
    public var clientKey: PEMSource?
    /// Sent as `Authorization: Bearer …`; never logged.
    public var bearerToken: RedactedBytes?

    public init(
        certificateAuthority: PEMSource? = nil, insecureSkipTLSVerify: Bool = false,
        clientCertificate: PEMSource? = nil, clientKey: PEMSource? = nil, bearerToken: RedactedBytes? = nil
    ) {
        self.certificateAuthority = certificateAuthority
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
        self.bearerToken = bearerToken
    }

    public init(_ connection: ClusterConnection) {
        self.init(
            certificateAuthority: connection.certificateAuthority,
            insecureSkipTLSVerify: connection.insecureSkipTLSVerify,
            clientCertificate: connection.clientCertificate, clientKey: connection.clientKey,
            bearerToken: connection.token)
        self.serverName = connection.tlsServerName
        self.proxyURL = connection.proxyURL
    }

    /// Verify the certificate for this name and send it as SNI, connecting to the URL's host.
    public var serverName: String?
    /// `CURLOPT_PROXY`.
    public var proxyURL: String?

    /// Sends what an exec plugin answered: its token, its client certificate and key.
    public mutating func use(_ credential: ExecCredential) {
        if let token = credential.token { bearerToken = token }
        if let certificate = credential.clientCertificate, let key = credential.clientKey {
            clientCertificate = .pem(certificate)
            clientKey = .pem(key)
        }
    }
}

/// Connect and total timeouts; `total == nil` means no limit (watch streams).
public struct HTTPTimeouts: Sendable, Hashable {
    public var connect: Duration
    public var total: Duration?

    public init(connect: Duration = .seconds(10), total: Duration? = .seconds(60)) {
        self.connect = connect
        self.total = total
    }
}

/// A complete response.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header names lowercased; the last value wins.
    public var headers: [String: String]
    public var body: [UInt8]

    public init(status: Int, headers: [String: String], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// One piece of a streamed response: the head once, then body chunks as they arrive.
public enum HTTPStreamPart: Sendable {
    case head(status: Int, headers: [String: String])
    case body([UInt8])
}

/// A failure below HTTP: DNS, connect, TLS, timeout, reset. Carries curl's code and words.
public struct HTTPTransportError: Error, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }
        /// Could not connect (refused, unreachable, DNS). Nothing reached the server.
        public static var connectFailed: Code { Code(rawValue: "connectFailed") }
        /// The peer's certificate did not verify against the configured CA. Nothing was sent.
        public static var tlsVerificationFailed: Code { Code(rawValue: "tlsVerificationFailed") }
        /// Another TLS failure (handshake, client certificate).
        public static var tlsFailed: Code { Code(rawValue: "tlsFailed") }
        /// The connect or total timeout passed.
        public static var timedOut: Code { Code(rawValue: "timedOut") }
        /// The connection broke during the exchange: the server may or may not have acted.
        public static var connectionLost: Code { Code(rawValue: "connectionLost") }
        /// Too many requests already in flight in this transport.
        public static var overloaded: Code { Code(rawValue: "overloaded") }
        /// The transport was shut down.
        public static var shutDown: Code { Code(rawValue: "shutDown") }
        /// Anything else curl reported.
        public static var other: Code { Code(rawValue: "other") }
    }

    public var code: Code
    /// `CURLcode` as a number (0 when the failure is not curl's).
    public var curlCode: Int32
    /// curl's explanation (never holds request headers, so never a token).
    public var message: String

    public var description: String { "transport \(code): \(message) (curl \(curlCode))" }
}
