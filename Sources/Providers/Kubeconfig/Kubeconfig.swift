import CapstanSupport
import Foundation
import Yams

/// Where TLS material comes from: a file curl reads itself, or PEM bytes held in memory.
public enum PEMSource: Sendable, Hashable, CustomStringConvertible {
    /// A path, already resolved against the kubeconfig's directory.
    case file(String)
    /// PEM bytes (from a `-data` field, base64-decoded). Redacted when printed.
    case pem(RedactedBytes)

    public var description: String {
        switch self {
        case .file(let path): "file \(path)"
        case .pem(let bytes): "inline PEM (\(bytes.count) bytes)"
        }
    }
}

/// A parsed kubeconfig file (`apiVersion: v1`, `kind: Config`).
///
/// Every context is checked when the file is read: a context naming a cluster or user that the
/// file does not hold is an error, as is a `current-context` that names no context. Relative
/// paths (`certificate-authority`, `client-certificate`, `client-key`, `tokenFile`) are
/// resolved against the file's directory, as kubectl does.
public struct Kubeconfig: Sendable, CustomStringConvertible {
    public struct Cluster: Sendable, Hashable {
        public var name: String
        public var server: String
        public var certificateAuthority: PEMSource?
        /// Only ever true when the file says `insecure-skip-tls-verify: true`.
        public var insecureSkipTLSVerify: Bool
        /// `tls-server-name`: the name the server's certificate is verified for (and sent as SNI)
        /// instead of the host in `server`.
        public var tlsServerName: String? = nil
        /// `proxy-url`: an `http`, `https` or `socks5` proxy for this cluster's requests.
        public var proxyURL: String? = nil
        /// The file and field path it was read from (several files when merged from `KUBECONFIG`).
        var origin = Origin()
    }

    /// Where an entry was read: the file (or other source) and its field path there.
    struct Origin: Sendable, Hashable {
        var file = ""
        var path = ""
    }

    public struct User: Sendable, Hashable {
        public var name: String
        public var token: RedactedBytes?
        public var clientCertificate: PEMSource?
        public var clientKey: PEMSource?
        /// `exec`: a credential plugin run when a request needs a credential.
        public var exec: ExecConfig? = nil

        /// Set when the user authenticates in a way this client does not support (`auth-provider`,
        /// basic auth, an `exec` section it cannot run): the field path and the reason. Such a user is an error
        /// only when a context that uses it is chosen, as with kubectl, not when the file is read.
        public var unsupported: (fieldPath: String, reason: String)? {
            get { unsupportedField.map { ($0, unsupportedReason) } }
            set {
                unsupportedField = newValue?.fieldPath
                unsupportedReason = newValue?.reason ?? ""
            }
        }
        var unsupportedField: String?
        var unsupportedReason = ""

        var origin = Origin()

        /// Whether this user authenticates with anything secret (token, tokenFile or client certificate/key).
        public var hasCredentials: Bool { token != nil || clientCertificate != nil || clientKey != nil || exec != nil }
    }

    public struct Context: Sendable, Hashable {
        public var name: String
        public var cluster: String
        public var user: String
        public var namespace: String?
        var origin = Origin()
    }

    /// The path read, or a description of where the bytes came from.
    public var source: String
    public var clusters: [Cluster]
    public var users: [User]
    public var contexts: [Context]
    public var currentContext: String?
    /// The file `current-context` came from.
    var currentContextFile: String?

    public var description: String {
        "Kubeconfig(\(source), contexts: \(contexts.map(\.name)), current: \(currentContext ?? "-"))"
    }

    /// Reads and validates the kubeconfig at `path`.
    ///
    /// - Throws: `KubeconfigError` naming `path` and the field at fault.
    public static func load(path: String) throws -> Kubeconfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw KubeconfigError(code: .unreadable, file: path, fieldPath: "", reason: "cannot read the file")
        }
        let base = (path as NSString).deletingLastPathComponent
        return try parse(String(decoding: data, as: UTF8.self), source: path, baseDirectory: base, execPlugins: true)
    }

    /// Parses and validates kubeconfig text.
    ///
    /// - Parameters:
    ///   - text: YAML or JSON.
    ///   - source: what errors call the file (a path, or "Secret ns/name key admin.conf").
    ///   - baseDirectory: where relative paths resolve; nil means relative paths are refused.
    /// - Throws: `KubeconfigError`.
    ///   - execPlugins: whether `exec` users may run their command. Only for a file Capstan is
    ///     given (`load` sets it): a kubeconfig read from a cluster (a Secret) must never make
    ///     Capstan run a program it names; there such a user is an error when its context is chosen.
    public static func parse(
        _ text: String, source: String, baseDirectory: String?, execPlugins: Bool = false
    ) throws -> Kubeconfig {
        var reader = KubeconfigReader(source: source, baseDirectory: baseDirectory, execPlugins: execPlugins)
        let config = try reader.read(text)
        try config.validate()
        return config
    }

    /// Reads the files of a `KUBECONFIG` list and merges them as kubectl does: the first file that
    /// names a cluster, user or context wins it, `current-context` comes from the first file that
    /// sets one, relative paths resolve against the file they are in, and references are checked
    /// after the merge (a context may name a user of another file). Empty and repeated entries are
    /// skipped, so are files that do not exist (as kubectl); none existing is an error.
    ///
    /// - Throws: `KubeconfigError` naming the file and field at fault.
    public static func load(paths: [String]) throws -> Kubeconfig {
        var seen: Set<String> = []
        let files = paths.filter { !$0.isEmpty && seen.insert($0).inserted }
        let existing = files.filter { FileManager.default.fileExists(atPath: $0) }
        guard !existing.isEmpty else {
            throw KubeconfigError(
                code: .unreadable, file: files.joined(separator: ":"), fieldPath: "",
                reason: files.isEmpty ? "no kubeconfig file named" : "none of these files exists")
        }
        var merged = Kubeconfig(
            source: existing.count == 1 ? existing[0] : existing.joined(separator: ":"), clusters: [], users: [],
            contexts: [], currentContext: nil)
        for path in existing {
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                throw KubeconfigError(code: .unreadable, file: path, fieldPath: "", reason: "cannot read the file")
            }
            var reader = KubeconfigReader(
                source: path, baseDirectory: (path as NSString).deletingLastPathComponent, execPlugins: true)
            let file = try reader.read(String(decoding: data, as: UTF8.self))
            for cluster in file.clusters where !merged.clusters.contains(where: { $0.name == cluster.name }) {
                merged.clusters.append(cluster)
            }
            for user in file.users where !merged.users.contains(where: { $0.name == user.name }) {
                merged.users.append(user)
            }
            for context in file.contexts where !merged.contexts.contains(where: { $0.name == context.name }) {
                merged.contexts.append(context)
            }
            if merged.currentContext == nil, let current = file.currentContext {
                merged.currentContext = current
                merged.currentContextFile = path
            }
        }
        try merged.validate()
        return merged
    }

    /// The kubeconfig `capstan serve` uses without `--kubeconfig`: the files of `KUBECONFIG`
    /// (':'-separated) when it is set and not empty, else `~/.kube/config`, as kubectl.
    ///
    /// - Throws: `KubeconfigError`.
    /// - Parameter environment: the variables to read (the process's when nil).
    public static func loadDefault(environment: [String: String]? = nil) throws -> Kubeconfig {
        let environment = environment ?? ProcessInfo.processInfo.environment
        if let list = environment["KUBECONFIG"], !list.isEmpty {
            do {
                return try load(paths: list.split(separator: ":", omittingEmptySubsequences: false).map(String.init))
            } catch var error as KubeconfigError where error.fieldPath.isEmpty && error.code == .unreadable {
                error.reason += " (from the KUBECONFIG environment variable)"
                throw error
            }
        }
        guard let home = environment["HOME"], !home.isEmpty else {
            throw KubeconfigError(
                code: .unreadable, file: "~/.kube/config", fieldPath: "",
                reason: "no --kubeconfig, KUBECONFIG is not set and HOME is not set")
        }
        let path = (home as NSString).appendingPathComponent(".kube/config")
        guard FileManager.default.fileExists(atPath: path) else {
            throw KubeconfigError(
                code: .unreadable, file: path, fieldPath: "",
                reason: "no such file (and no --kubeconfig, KUBECONFIG is not set)")
        }
        return try load(path: path)
    }

    /// Checks what spans entries (and, merged, files): every context's cluster and user exist,
    /// no credential goes to a plain-http server, `current-context` names a context.
    func validate() throws {
        func fail(_ code: KubeconfigError.Code, _ origin: Origin, _ field: String, _ reason: String) -> KubeconfigError {
            KubeconfigError(code: code, file: origin.file, fieldPath: origin.path + field, reason: reason)
        }
        for context in contexts {
            if !clusters.contains(where: { $0.name == context.cluster }) {
                throw fail(.danglingReference, context.origin, ".context.cluster", "no cluster named \"\(context.cluster)\"")
            }
            if !users.contains(where: { $0.name == context.user }) {
                throw fail(.danglingReference, context.origin, ".context.user", "no user named \"\(context.user)\"")
            }
        }
        // A token or client key on plain http would cross the network in clear text: refuse the pairing.
        for context in contexts {
            guard let cluster = clusters.first(where: { $0.name == context.cluster }),
                let user = users.first(where: { $0.name == context.user })
            else { continue }
            if cluster.server.lowercased().hasPrefix("http://") && user.hasCredentials {
                throw fail(
                    .invalidValue, cluster.origin, ".cluster.server",
                    "credentials are never sent over plain http (user \"\(user.name)\", context \"\(context.name)\")")
            }
        }
        if let currentContext, !contexts.contains(where: { $0.name == currentContext }) {
            throw KubeconfigError(
                code: .danglingReference, file: currentContextFile ?? source, fieldPath: "current-context",
                reason: "no context named \"\(currentContext)\"")
        }
    }

    /// The context `name`, or the current context when `name` is nil.
    ///
    /// - Throws: `KubeconfigError` `.danglingReference` when there is no such context.
    public func context(named name: String? = nil) throws -> Context {
        guard let wanted = name ?? currentContext else {
            throw KubeconfigError(
                code: .missingField, file: source, fieldPath: "current-context",
                reason: "no current-context and no context was asked for")
        }
        guard let context = contexts.first(where: { $0.name == wanted }) else {
            throw KubeconfigError(
                code: .danglingReference, file: source, fieldPath: name == nil ? "current-context" : "contexts",
                reason: "no context named \"\(wanted)\"")
        }
        return context
    }

    /// Everything needed to talk to the cluster of context `name` (current context when nil).
    ///
    /// - Throws: `KubeconfigError` when the context does not exist.
    /// - Parameter execTimeout: how long an `exec` plugin may run.
    public func connection(context name: String? = nil, execTimeout: Duration = .seconds(30)) throws -> ClusterConnection {
        let context = try context(named: name)
        // Both lookups were validated at parse time; failing here would be a broken invariant.
        guard let cluster = clusters.first(where: { $0.name == context.cluster }),
            let user = users.first(where: { $0.name == context.user })
        else { preconditionFailure("kubeconfig references were validated at parse time") }
        if let unsupported = user.unsupported {
            throw KubeconfigError(
                code: .invalidValue, file: user.origin.file.isEmpty ? source : user.origin.file,
                fieldPath: unsupported.fieldPath,
                reason: "\(unsupported.reason) (context \"\(context.name)\" uses user \"\(user.name)\")")
        }
        var connection = ClusterConnection(
            server: cluster.server, certificateAuthority: cluster.certificateAuthority,
            insecureSkipTLSVerify: cluster.insecureSkipTLSVerify,
            clientCertificate: user.clientCertificate, clientKey: user.clientKey, token: user.token,
            namespace: context.namespace, source: "\(source) context \(context.name)")
        connection.tlsServerName = cluster.tlsServerName
        connection.proxyURL = cluster.proxyURL
        if let exec = user.exec {
            connection.exec = ExecCredentialPlugin(
                config: exec, timeout: execTimeout, clusterInfo: exec.provideClusterInfo ? Self.clusterInfo(cluster) : nil)
        }
        return connection
    }

    /// `spec.cluster` of the ExecCredential handed to a plugin with `provideClusterInfo: true`.
    static func clusterInfo(_ cluster: Cluster) -> [UInt8] {
        var writer = JSONWriter()
        writer.openObject()
        writer.field("server", cluster.server)
        writer.field("tls-server-name", cluster.tlsServerName)
        if cluster.insecureSkipTLSVerify { writer.field("insecure-skip-tls-verify", true) }
        switch cluster.certificateAuthority {
        case .pem(let bytes): writer.field("certificate-authority-data", Data(bytes.exposedBytes).base64EncodedString())
        case .file(let path):
            if let data = FileManager.default.contents(atPath: path) {
                writer.field("certificate-authority-data", data.base64EncodedString())
            }
        case nil: break
        }
        writer.field("proxy-url", cluster.proxyURL)
        writer.closeObject()
        return writer.bytes
    }
}

/// How to reach one API server: address, TLS trust, credentials, default namespace.
///
/// Printing it never shows the token or the key.
public struct ClusterConnection: Sendable, Hashable, CustomStringConvertible {
    /// `https://host:port[/path-prefix]`, without a trailing slash.
    public var server: String
    public var certificateAuthority: PEMSource?
    public var insecureSkipTLSVerify: Bool
    public var clientCertificate: PEMSource?
    public var clientKey: PEMSource?
    public var token: RedactedBytes?
    public var namespace: String?
    /// Where this came from, for messages: "path context name".
    public var source: String
    /// The user's credential plugin; shared (a reference) by every copy of this connection, so
    /// the clients made from it share its cached credential.
    public var exec: ExecCredentialPlugin?
    /// Verify the server's certificate for this name (and send it as SNI) instead of the host in `server`.
    public var tlsServerName: String?
    /// Send requests through this proxy (`http://`, `https://`, `socks5://`).
    public var proxyURL: String?

    public init(
        server: String, certificateAuthority: PEMSource? = nil, insecureSkipTLSVerify: Bool = false,
        clientCertificate: PEMSource? = nil, clientKey: PEMSource? = nil,
        token: RedactedBytes? = nil, namespace: String? = nil, source: String = "inline"
    ) {
        var trimmed = server
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.server = trimmed
        self.certificateAuthority = certificateAuthority
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
        self.token = token
        self.namespace = namespace
        self.source = source
    }

    public var description: String {
        var parts = ["server: \(server)", "from: \(source)"]
        if let certificateAuthority { parts.append("ca: \(certificateAuthority)") }
        if insecureSkipTLSVerify { parts.append("insecure-skip-tls-verify") }
        if let tlsServerName { parts.append("tls-server-name: \(tlsServerName)") }
        if let proxyURL { parts.append("proxy: \(Self.redactingUserInfo(proxyURL))") }
        if token != nil { parts.append("token: <redacted>") }
        if clientCertificate != nil { parts.append("client certificate") }
        if let exec { parts.append("exec: \(exec.config.command)") }
        return "ClusterConnection(\(parts.joined(separator: ", ")))"
    }

    /// A URL with any `user:password@` replaced by `<redacted>@` (a proxy URL may carry credentials).
    static func redactingUserInfo(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@") else { return url }
        let authorityEnd = url[scheme.upperBound...].firstIndex(of: "/") ?? url.endIndex
        guard at < authorityEnd else { return url }
        return String(url[..<scheme.upperBound]) + "<redacted>" + String(url[at...])
    }
}

/// Walks the YAML tree by hand so every error can name its exact field path.
private struct KubeconfigReader {
    let source: String
    let baseDirectory: String?
    let execPlugins: Bool

    init(source: String, baseDirectory: String?, execPlugins: Bool) {
        self.source = source
        self.baseDirectory = baseDirectory
        self.execPlugins = execPlugins
    }

    func fail(_ code: KubeconfigError.Code, _ path: String, _ reason: String) -> KubeconfigError {
        KubeconfigError(code: code, file: source, fieldPath: path, reason: reason)
    }

    mutating func read(_ text: String) throws -> Kubeconfig {
        let root: Yams.Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            // Yams' own description quotes the offending line, which may hold a token: keep only the position.
            throw fail(.malformed, "", "not valid YAML (\(Self.position(of: error)))")
        }
        guard let root, let top = root.mapping else {
            throw fail(.malformed, "", "expected a mapping at the top level")
        }
        if let kind = top["kind"], kind.string != "Config" {
            throw fail(.invalidValue, "kind", "expected \"Config\"")
        }
        let clusters = try items(top, "clusters").map { item in
            var cluster = try cluster(item.node, item.path)
            cluster.origin = Kubeconfig.Origin(file: source, path: item.path)
            return cluster
        }
        let users = try items(top, "users").map { item in
            var user = try user(item.node, item.path)
            user.origin = Kubeconfig.Origin(file: source, path: item.path)
            return user
        }
        let contexts = try items(top, "contexts").map { item in
            var context = try context(item.node, item.path)
            context.origin = Kubeconfig.Origin(file: source, path: item.path)
            return context
        }
        try checkUnique(clusters.map(\.name), "clusters")
        try checkUnique(users.map(\.name), "users")
        try checkUnique(contexts.map(\.name), "contexts")
        // References across entries are checked by `Kubeconfig.validate`, after a merge when there is one.
        let current = try optionalString(top, "current-context", "current-context").flatMap { $0.isEmpty ? nil : $0 }
        return Kubeconfig(
            source: source, clusters: clusters, users: users, contexts: contexts, currentContext: current,
            currentContextFile: current == nil ? nil : source)
    }

    static func position(of error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            "line \(mark.line) column \(mark.column): \(problem)"
        case .reader(let problem, let offset, _, _): "offset \(offset ?? 0): \(problem)"
        case .duplicatedKeysInMapping(let duplicates, _): "duplicated keys \(duplicates)"
        default: "unreadable YAML"
        }
    }

    func items(
        _ mapping: Yams.Node.Mapping, _ key: String, at path: String? = nil
    ) throws -> [(node: Yams.Node.Mapping, path: String)] {
        let path = path ?? key
        guard let node = mapping[key] else { return [] }
        if node.scalar.map({ $0.string == "null" || $0.string == "~" || $0.string.isEmpty }) == true { return [] }
        guard let sequence = node.sequence else { throw fail(.malformed, path, "expected a list") }
        return try sequence.enumerated().map { index, item in
            guard let itemMapping = item.mapping else {
                throw fail(.malformed, "\(path)[\(index)]", "expected a mapping")
            }
            return (itemMapping, "\(path)[\(index)]")
        }
    }

    func checkUnique(_ names: [String], _ key: String) throws {
        var seen: Set<String> = []
        for (index, name) in names.enumerated() where !seen.insert(name).inserted {
            throw fail(.invalidValue, "\(key)[\(index)].name", "duplicate name \"\(name)\"")
        }
    }

    func optionalString(_ mapping: Yams.Node.Mapping, _ key: String, _ path: String) throws -> String? {
        guard let node = mapping[key] else { return nil }
        guard let scalar = node.scalar else { throw fail(.malformed, path, "expected a string") }
        if scalar.style == .plain && ["null", "~", "Null", "NULL"].contains(scalar.string) {
            return nil
        }
        return scalar.string
    }

    func requiredString(_ mapping: Yams.Node.Mapping, _ key: String, _ path: String) throws -> String {
        guard let value = try optionalString(mapping, key, path), !value.isEmpty else {
            throw fail(.missingField, path, "required")
        }
        return value
    }

    func name(_ item: Yams.Node.Mapping, _ path: String) throws -> String {
        try requiredString(item, "name", "\(path).name")
    }

    func body(_ item: Yams.Node.Mapping, _ key: String, _ path: String) throws -> Yams.Node.Mapping {
        guard let node = item[key] else { throw fail(.missingField, "\(path).\(key)", "required") }
        guard let mapping = node.mapping else { throw fail(.malformed, "\(path).\(key)", "expected a mapping") }
        return mapping
    }

    func cluster(_ item: Yams.Node.Mapping, _ path: String) throws -> Kubeconfig.Cluster {
        let name = try name(item, path)
        let body = try body(item, "cluster", path)
        let base = "\(path).cluster"
        let server = try requiredString(body, "server", "\(base).server")
        guard let url = URL(string: server), let scheme = url.scheme, ["https", "http"].contains(scheme),
            url.host != nil
        else {
            throw fail(.invalidValue, "\(base).server", "expected an https:// or http:// URL with a host")
        }
        let insecure: Bool
        if let node = body["insecure-skip-tls-verify"] {
            guard let value = node.bool else { throw fail(.malformed, "\(base).insecure-skip-tls-verify", "expected true or false") }
            insecure = value
        } else {
            insecure = false
        }
        let authority = try pem(body, file: "certificate-authority", data: "certificate-authority-data", base, secret: false)
        if insecure && authority != nil {
            throw fail(
                .invalidValue, "\(base).insecure-skip-tls-verify",
                "cannot be true together with a certificate authority")
        }
        let serverName = try optionalString(body, "tls-server-name", "\(base).tls-server-name").flatMap { $0.isEmpty ? nil : $0 }
        if let serverName, serverName.contains(where: { $0 == "/" || $0 == ":" || $0 == "@" || $0.isWhitespace }) {
            throw fail(.invalidValue, "\(base).tls-server-name", "expected a host name (no scheme, port or path)")
        }
        let proxy = try optionalString(body, "proxy-url", "\(base).proxy-url").flatMap { $0.isEmpty ? nil : $0 }
        if let proxy {
            guard let url = URL(string: proxy), let scheme = url.scheme?.lowercased(),
                ["http", "https", "socks5", "socks5h"].contains(scheme), url.host != nil
            else {
                throw fail(.invalidValue, "\(base).proxy-url", "expected an http://, https:// or socks5:// URL with a host")
            }
        }
        return Kubeconfig.Cluster(
            name: name, server: server, certificateAuthority: authority, insecureSkipTLSVerify: insecure,
            tlsServerName: serverName, proxyURL: proxy)
    }

    func user(_ item: Yams.Node.Mapping, _ path: String) throws -> Kubeconfig.User {
        let name = try name(item, path)
        let body = try body(item, "user", path)
        let base = "\(path).user"
        // Not refused here: a file whose other contexts are usable stays usable (kubectl reads it).
        let unsupported = ["auth-provider", "username", "password"].first { body[$0] != nil }
        var token: RedactedBytes? = nil
        if let value = try optionalString(body, "token", "\(base).token"), !value.isEmpty {
            token = RedactedBytes(value)
        }
        if let file = try optionalString(body, "tokenFile", "\(base).tokenFile"), !file.isEmpty {
            if token != nil { throw fail(.invalidValue, "\(base).tokenFile", "cannot be set together with token") }
            let resolved = try resolve(file, "\(base).tokenFile")
            guard let data = FileManager.default.contents(atPath: resolved) else {
                throw fail(.unreadable, "\(base).tokenFile", "cannot read \(resolved)")
            }
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty else { throw fail(.invalidValue, "\(base).tokenFile", "\(resolved) is empty") }
            token = RedactedBytes(text)
        }
        let certificate = try pem(body, file: "client-certificate", data: "client-certificate-data", base, secret: false)
        let key = try pem(body, file: "client-key", data: "client-key-data", base, secret: true)
        if (certificate == nil) != (key == nil) {
            let missing = certificate == nil ? "client-certificate" : "client-key"
            throw fail(.missingField, "\(base).\(missing)", "a client certificate needs both certificate and key")
        }
        var user = Kubeconfig.User(name: name, token: token, clientCertificate: certificate, clientKey: key)
        if let unsupported {
            user.unsupported = ("\(base).\(unsupported)", "not supported; use token, tokenFile, client certificates or exec")
        } else if let node = body["exec"] {
            // Deferred like the rest: an exec section nobody's context uses never rejects the file.
            do {
                guard execPlugins else {
                    throw fail(
                        .invalidValue, "\(base).exec",
                        "exec credential plugins run only from a kubeconfig file given to Capstan, never from one read from a cluster")
                }
                if token != nil || certificate != nil {
                    throw fail(.invalidValue, "\(base).exec", "cannot be set together with token, tokenFile or client certificates")
                }
                user.exec = try exec(node, "\(base).exec", user: name)
            } catch let error as KubeconfigError {
                user.unsupported = (error.fieldPath, error.reason)
            }
        }
        return user
    }

    /// A user's `exec` section (client.authentication.k8s.io v1 or v1beta1).
    func exec(_ node: Yams.Node, _ base: String, user: String) throws -> ExecConfig {
        guard let body = node.mapping else { throw fail(.malformed, base, "expected a mapping") }
        let apiVersion = try requiredString(body, "apiVersion", "\(base).apiVersion")
        guard ExecConfig.apiVersions.contains(apiVersion) else {
            throw fail(
                .invalidValue, "\(base).apiVersion",
                "expected one of \(ExecConfig.apiVersions.joined(separator: ", ")) (v1alpha1 is no longer served)")
        }
        var command = try requiredString(body, "command", "\(base).command")
        // As kubectl: a command with a path separator is relative to the kubeconfig's directory;
        // a bare name is looked up in PATH when it runs.
        if command.contains("/") { command = try resolve(command, "\(base).command") }
        var args: [String] = []
        if let node = body["args"], node.scalar.map({ $0.string == "null" || $0.string.isEmpty }) != true {
            guard let sequence = node.sequence else { throw fail(.malformed, "\(base).args", "expected a list of strings") }
            for (index, item) in sequence.enumerated() {
                guard let scalar = item.scalar else { throw fail(.malformed, "\(base).args[\(index)]", "expected a string") }
                args.append(scalar.string)
            }
        }
        var env: [ExecConfig.EnvVar] = []
        for item in try items(body, "env", at: "\(base).env") {
            env.append(
                ExecConfig.EnvVar(
                    name: try requiredString(item.node, "name", "\(item.path).name"),
                    value: try optionalString(item.node, "value", "\(item.path).value") ?? ""))
        }
        let mode = try optionalString(body, "interactiveMode", "\(base).interactiveMode").flatMap { $0.isEmpty ? nil : $0 }
        if mode == nil && apiVersion == "client.authentication.k8s.io/v1" {
            throw fail(.missingField, "\(base).interactiveMode", "required with apiVersion client.authentication.k8s.io/v1")
        }
        let interactiveMode = mode ?? "IfAvailable"
        guard ["Never", "IfAvailable", "Always"].contains(interactiveMode) else {
            throw fail(.invalidValue, "\(base).interactiveMode", "expected Never, IfAvailable or Always")
        }
        if interactiveMode == "Always" {
            throw fail(
                .invalidValue, "\(base).interactiveMode",
                "Always needs a terminal; Capstan runs plugins non-interactively (use Never or IfAvailable)")
        }
        var provideClusterInfo = false
        if let node = body["provideClusterInfo"] {
            guard let value = node.bool else { throw fail(.malformed, "\(base).provideClusterInfo", "expected true or false") }
            provideClusterInfo = value
        }
        return ExecConfig(
            apiVersion: apiVersion, command: command, args: args, env: env, interactiveMode: interactiveMode,
            installHint: try optionalString(body, "installHint", "\(base).installHint"),
            provideClusterInfo: provideClusterInfo, file: source, user: user)
    }

    func context(_ item: Yams.Node.Mapping, _ path: String) throws -> Kubeconfig.Context {
        let name = try name(item, path)
        let body = try body(item, "context", path)
        let base = "\(path).context"
        return Kubeconfig.Context(
            name: name, cluster: try requiredString(body, "cluster", "\(base).cluster"),
            user: try requiredString(body, "user", "\(base).user"),
            namespace: try optionalString(body, "namespace", "\(base).namespace").flatMap { $0.isEmpty ? nil : $0 })
    }

    /// A `field` / `field-data` pair: a path curl reads, or base64 PEM held in memory.
    func pem(_ body: Yams.Node.Mapping, file: String, data: String, _ base: String, secret: Bool) throws -> PEMSource? {
        let path = try optionalString(body, file, "\(base).\(file)").flatMap { $0.isEmpty ? nil : $0 }
        let encoded = try optionalString(body, data, "\(base).\(data)").flatMap { $0.isEmpty ? nil : $0 }
        switch (path, encoded) {
        case (nil, nil):
            return nil
        case (.some, .some):
            throw fail(.invalidValue, "\(base).\(data)", "cannot be set together with \(file)")
        case (let path?, nil):
            let resolved = try resolve(path, "\(base).\(file)")
            guard FileManager.default.isReadableFile(atPath: resolved) else {
                throw fail(.unreadable, "\(base).\(file)", "cannot read \(resolved)")
            }
            return .file(resolved)
        case (nil, let encoded?):
            let compact = encoded.filter { !$0.isWhitespace }
            guard let bytes = Data(base64Encoded: compact), !bytes.isEmpty else {
                throw fail(.invalidValue, "\(base).\(data)", "not valid base64")
            }
            guard String(decoding: bytes, as: UTF8.self).contains("-----BEGIN ") else {
                throw fail(.invalidValue, "\(base).\(data)", "does not hold PEM (no -----BEGIN line)")
            }
            return .pem(RedactedBytes(Array(bytes)))
        }
    }

    func resolve(_ path: String, _ field: String) throws -> String {
        if path.hasPrefix("/") { return path }
        guard let baseDirectory else {
            throw fail(.invalidValue, field, "a relative path needs a kubeconfig file to resolve against")
        }
        return baseDirectory.isEmpty ? path : (baseDirectory as NSString).appendingPathComponent(path)
    }
}
