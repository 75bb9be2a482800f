import CapstanSupport
public import Foundation
import Synchronization

/// A kubeconfig user's `exec` section: the credential plugin of the
/// `client.authentication.k8s.io` ExecCredential protocol (v1 or v1beta1), as kubectl runs it.
///
/// The plugin is run with `args` and the process environment plus `env`, stdin closed,
/// and `KUBERNETES_EXEC_INFO` holding `{"apiVersion":…,"kind":"ExecCredential","spec":{"interactive":false}}`
/// (plus `spec.cluster` when `provideClusterInfo` is set). Env values are never printed.
public struct ExecConfig: Sendable, Hashable {
    public struct EnvVar: Sendable, Hashable {
        public var name: String
        public var value: String
    }

    /// The two supported protocol versions (v1alpha1 was removed from Kubernetes in 1.24).
    public static let apiVersions = ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"]

    public var apiVersion: String
    /// The command as the kubeconfig names it; one with a `/` is already resolved against the
    /// kubeconfig's directory, a bare name is looked up in `PATH` when run.
    public var command: String
    public var args: [String]
    public var env: [EnvVar]
    /// `Never`, `IfAvailable` or `Always` (required in v1, `IfAvailable` by default in v1beta1).
    public var interactiveMode: String
    public var installHint: String?
    public var provideClusterInfo: Bool
    /// The kubeconfig file and the user this section belongs to, for messages.
    public var file: String
    public var user: String

    public init(
        apiVersion: String, command: String, args: [String] = [], env: [EnvVar] = [],
        interactiveMode: String = "Never", installHint: String? = nil, provideClusterInfo: Bool = false,
        file: String, user: String
    ) {
        self.apiVersion = apiVersion
        self.command = command
        self.args = args
        self.env = env
        self.interactiveMode = interactiveMode
        self.installHint = installHint
        self.provideClusterInfo = provideClusterInfo
        self.file = file
        self.user = user
    }
}

/// What a plugin answered: a bearer token and/or a client certificate and key (PEM), and until when.
public struct ExecCredential: Sendable {
    public var token: RedactedBytes?
    public var clientCertificate: RedactedBytes?
    public var clientKey: RedactedBytes?
    /// `status.expirationTimestamp`; nil means valid until the server answers 401.
    public var expiration: Date?
    /// Which run of the plugin gave it (1 for the first), so a 401 invalidates only the credential it was sent with.
    public var generation: Int
}

/// A credential plugin failed: not found, non-zero exit, timed out, or printed no usable ExecCredential.
///
/// The message names the kubeconfig file, the user and the command (never its args or env,
/// which may hold secrets), with the plugin's stderr on failure; never the plugin's stdout.
public struct ExecCredentialError: Error, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }
        /// The command is not in `PATH`, or cannot be executed.
        public static var notFound: Code { Code(rawValue: "notFound") }
        /// The plugin exited non-zero or was killed by a signal.
        public static var failed: Code { Code(rawValue: "failed") }
        /// The plugin ran longer than the timeout and was killed (with its process group).
        public static var timedOut: Code { Code(rawValue: "timedOut") }
        /// stdout was not an ExecCredential of the configured apiVersion with a token or certificate.
        public static var invalidOutput: Code { Code(rawValue: "invalidOutput") }
    }

    public var code: Code
    public var file: String
    public var user: String
    public var command: String
    public var reason: String
    /// The end of the plugin's stderr (at most 4 KiB), trimmed; empty when it wrote none.
    public var stderr: String

    public var description: String {
        var text = "kubeconfig \(file): user \"\(user)\": exec plugin \(command): \(reason)"
        if !stderr.isEmpty { text += "; its stderr: \(stderr)" }
        return text
    }
}

/// Runs one kubeconfig user's credential plugin and keeps its answer until it expires.
///
/// Shared by every client made from the same `ClusterConnection` (it is a reference), so
/// concurrent requests run the plugin once: callers that find no valid credential wait for the
/// one run in progress. `invalidate` (after a 401) drops the credential it was given, so the next
/// `credential()` runs the plugin again.
public final class ExecCredentialPlugin: Sendable, Hashable, CustomStringConvertible {
    public let config: ExecConfig
    /// The plugin is killed (its whole process group, SIGKILL) after this long.
    public let timeout: Duration
    /// What `provideClusterInfo` hands the plugin in `spec.cluster`.
    let clusterInfo: [UInt8]?

    private struct State {
        var cached: ExecCredential?
        var running: Task<ExecCredential, any Error>?
        var runs = 0
    }
    private let state = Mutex(State())

    /// - Parameters:
    ///   - clusterInfo: `spec.cluster` as JSON (for `provideClusterInfo`), or nil.
    public init(config: ExecConfig, timeout: Duration = .seconds(30), clusterInfo: [UInt8]? = nil) {
        self.config = config
        self.timeout = timeout
        self.clusterInfo = clusterInfo
    }

    /// How often the plugin has been started (for tests and logs).
    public var runCount: Int { state.withLock { $0.runs } }

    public var description: String { "exec plugin \(config.command) (user \"\(config.user)\" in \(config.file))" }

    public static func == (lhs: ExecCredentialPlugin, rhs: ExecCredentialPlugin) -> Bool { lhs === rhs }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }

    /// A credential that has not expired: the cached one, or a fresh run's.
    ///
    /// - Throws: `ExecCredentialError`.
    public func credential(now: Date = Date()) async throws -> ExecCredential {
        enum Next {
            case ready(ExecCredential)
            case wait(Task<ExecCredential, any Error>)
        }
        let next: Next = state.withLock { state in
            if let cached = state.cached, cached.expiration.map({ now < $0 }) ?? true { return .ready(cached) }
            if let running = state.running { return .wait(running) }
            state.runs += 1
            let generation = state.runs
            let running = Task { [self] in
                let result: Result<ExecCredential, any Error>
                do { result = .success(try await run(generation: generation)) } catch { result = .failure(error) }
                self.state.withLock { state in
                    state.running = nil
                    if case .success(let credential) = result { state.cached = credential }
                }
                return try result.get()
            }
            state.running = running
            return .wait(running)
        }
        switch next {
        case .ready(let credential): return credential
        case .wait(let task): return try await task.value
        }
    }

    /// Forgets `used` (the server refused it), so the next `credential()` runs the plugin again.
    public func invalidate(_ used: ExecCredential) {
        state.withLock { state in
            if state.cached?.generation == used.generation { state.cached = nil }
        }
    }

    private func failure(_ code: ExecCredentialError.Code, _ reason: String, stderr: [UInt8] = []) -> ExecCredentialError {
        var text = String(decoding: stderr.suffix(4096), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if stderr.count > 4096 { text = "…" + text }
        return ExecCredentialError(
            code: code, file: config.file, user: config.user, command: config.command, reason: reason, stderr: text)
    }

    private func run(generation: Int) async throws -> ExecCredential {
        guard let executable = Self.resolve(config.command) else {
            var reason = "command not found in PATH"
            if let hint = config.installHint, !hint.isEmpty { reason += " (\(hint))" }
            throw failure(.notFound, reason)
        }
        var environment = ProcessInfo.processInfo.environment
        for variable in config.env { environment[variable.name] = variable.value }
        environment["KUBERNETES_EXEC_INFO"] = String(decoding: execInfo(), as: UTF8.self)
        let outcome: Subprocess.Outcome
        do {
            outcome = try await Subprocess.run(
                executable: executable, arguments: config.args, environment: environment, timeout: timeout)
        } catch {
            throw failure(.notFound, "cannot be started: \(error)")
        }
        if outcome.timedOut {
            throw failure(.timedOut, "did not finish within \(timeout) and was killed", stderr: outcome.stderr)
        }
        if let signal = outcome.signal {
            throw failure(.failed, "killed by signal \(signal)", stderr: outcome.stderr)
        }
        guard outcome.exitStatus == 0 else {
            throw failure(.failed, "exited with status \(outcome.exitStatus)", stderr: outcome.stderr)
        }
        return try parse(outcome.stdout, generation: generation)
    }

    /// `KUBERNETES_EXEC_INFO`: the ExecCredential the plugin is handed (never interactive).
    func execInfo() -> [UInt8] {
        var writer = JSONWriter()
        writer.openObject()
        writer.field("apiVersion", config.apiVersion)
        writer.field("kind", "ExecCredential")
        writer.key("spec")
        writer.openObject()
        if config.provideClusterInfo, let clusterInfo {
            writer.key("cluster")
            writer.raw(clusterInfo)
        }
        writer.field("interactive", false)
        writer.closeObject()
        writer.closeObject()
        return writer.bytes
    }

    private struct Output: Decodable {
        struct Status: Decodable {
            var token: String?
            var clientCertificateData: String?
            var clientKeyData: String?
            var expirationTimestamp: String?
        }
        var apiVersion: String?
        var kind: String?
        var status: Status?
    }

    /// Reads the plugin's stdout. Messages name fields, never values (stdout holds the credential).
    func parse(_ stdout: [UInt8], generation: Int) throws -> ExecCredential {
        let output: Output
        do {
            output = try JSONDecoder().decode(Output.self, from: Data(stdout))
        } catch {
            throw failure(.invalidOutput, "stdout is not an ExecCredential (\(KubernetesClient.describe(decodingError: error)))")
        }
        guard output.kind == "ExecCredential" else {
            throw failure(.invalidOutput, "stdout is not an ExecCredential (kind must be \"ExecCredential\")")
        }
        guard output.apiVersion == config.apiVersion else {
            throw failure(
                .invalidOutput,
                "the kubeconfig asks for apiVersion \(config.apiVersion), the plugin answered \(output.apiVersion ?? "none")")
        }
        guard let status = output.status else { throw failure(.invalidOutput, "the ExecCredential has no status") }
        let token = status.token.flatMap { $0.isEmpty ? nil : RedactedBytes($0) }
        let certificate = status.clientCertificateData.flatMap { $0.isEmpty ? nil : RedactedBytes($0) }
        let key = status.clientKeyData.flatMap { $0.isEmpty ? nil : RedactedBytes($0) }
        if (certificate == nil) != (key == nil) {
            throw failure(
                .invalidOutput, "status.clientCertificateData and status.clientKeyData must be given together")
        }
        guard token != nil || certificate != nil else {
            throw failure(.invalidOutput, "status has neither token nor clientCertificateData/clientKeyData")
        }
        for (field, pem) in [("clientCertificateData", certificate), ("clientKeyData", key)] {
            if let pem, !pem.exposedString.contains("-----BEGIN ") {
                throw failure(.invalidOutput, "status.\(field) does not hold PEM (no -----BEGIN line)")
            }
        }
        var expiration: Date? = nil
        if let text = status.expirationTimestamp, !text.isEmpty {
            guard let nanoseconds = parseRFC3339(text) else {
                throw failure(.invalidOutput, "status.expirationTimestamp is not an RFC 3339 time (before 2262)")
            }
            expiration = Date(timeIntervalSince1970: Double(nanoseconds) / 1e9)
        }
        return ExecCredential(
            token: token, clientCertificate: certificate, clientKey: key, expiration: expiration, generation: generation)
    }

    /// A command with a `/` as given; a bare name searched in this process's `PATH`, as kubectl does.
    static func resolve(_ command: String) -> String? {
        if command.contains("/") { return access(command, X_OK) == 0 ? command : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":", omittingEmptySubsequences: true) {
            let candidate = "\(directory)/\(command)"
            var info = stat()
            if stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return nil
    }
}
