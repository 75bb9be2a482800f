import Foundation
import KubeSimKit
import Logging
import Providers
import Synchronization
import Testing

/// Fails the test instead of hanging: `body` runs in its own task, and after `limit` the test
/// goes on with an issue recorded even if that task never returns (a child or pipe gone wrong).
func bounded<T: Sendable>(
    _ what: String, _ limit: Duration = .seconds(90), _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    return try await withCheckedThrowingContinuation { continuation in
        let once = BoundedOnce(continuation)
        let work = Task {
            do { _ = once.resume(.success(try await body())) } catch { _ = once.resume(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: limit)
            if once.resume(.failure(BoundedTimeout(what: what))) {
                Issue.record("\(what) did not finish within \(limit)")
                work.cancel()
            }
        }
    }
}

struct BoundedTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "\(what) did not finish in time" }
}

/// Resumes its continuation once: with the body's result or the timeout, whichever is first.
final class BoundedOnce<T: Sendable>: Sendable {
    let continuation: Mutex<CheckedContinuation<T, any Error>?>
    init(_ continuation: CheckedContinuation<T, any Error>) { self.continuation = Mutex(continuation) }
    func resume(_ result: Result<T, any Error>) -> Bool {
        guard let continuation = continuation.withLock({ value in defer { value = nil }; return value }) else { return false }
        continuation.resume(with: result)
        return true
    }
}

/// Collects every log line (message and metadata) a client writes, to prove no credential is in one.
final class LogLines: Sendable {
    let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }

    func logger() -> Logger {
        var logger = Logger(label: "test") { _ in Collector(sink: self) }
        logger.logLevel = .trace
        return logger
    }

    struct Collector: LogHandler {
        let sink: LogLines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        var metadataProvider: Logger.MetadataProvider?

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let fields = (event.metadata ?? [:]).merging(metadata) { a, _ in a }
            sink.lines.withLock { $0.append("\(event.message) \(fields.sorted { $0.key < $1.key })") }
        }
    }
}

/// The client authenticating through a kubeconfig `exec` credential plugin (the
/// client.authentication.k8s.io ExecCredential protocol), against kube-sim over HTTPS.
/// Each plugin is a small shell script the test writes; it logs each run to a file.
@Suite struct ExecCredentialTests {
    /// A plugin directory: the script, the ExecCredential documents it prints, its run log.
    struct Plugin {
        let directory = TemporaryDirectory()
        var path: String { directory.path + "/plugin.sh" }
        var runsPath: String { directory.path + "/runs" }

        /// Writes the script. `$D` is the plugin's directory.
        func script(_ body: String) {
            let text = "#!/bin/sh\nD='\(directory.path)'\necho run >> \"$D/runs\"\n\(body)\n"
            directory.write("plugin.sh", text)
            chmod(path, 0o700)
        }

        /// An ExecCredential document, written as `name` for the script to `cat`.
        func credential(
            _ name: String, apiVersion: String = "client.authentication.k8s.io/v1", token: String? = nil,
            certificate: String? = nil, key: String? = nil, expiration: String? = nil
        ) {
            var status: [String: String] = [:]
            status["token"] = token
            status["clientCertificateData"] = certificate
            status["clientKeyData"] = key
            status["expirationTimestamp"] = expiration
            let document: [String: Any] = ["apiVersion": apiVersion, "kind": "ExecCredential", "status": status]
            let data = try! JSONSerialization.data(withJSONObject: document)
            directory.write(name, String(decoding: data, as: UTF8.self))
        }

        var runs: Int {
            (try? String(contentsOfFile: runsPath, encoding: .utf8))?.split(separator: "\n").count ?? 0
        }

        func read(_ name: String) -> String { (try? String(contentsOfFile: directory.path + "/" + name, encoding: .utf8)) ?? "" }

        /// A kubeconfig next to the plugin whose only user runs it.
        func kubeconfig(
            _ sim: KubeSim, apiVersion: String = "client.authentication.k8s.io/v1", extra: String = "",
            command: String? = nil
        ) -> String {
            directory.write(
                "exec.kubeconfig",
                """
                apiVersion: v1
                kind: Config
                clusters:
                - name: sim
                  cluster:
                    server: \(sim.url)
                    certificate-authority: \(sim.caCertificatePath)
                users:
                - name: exec-user
                  user:
                    exec:
                      apiVersion: \(apiVersion)
                      command: \(command ?? path)
                      args: ["--cluster", "sim", "--secret-arg=sekrit-arg"]
                      env:
                      - name: PLUGIN_SECRET
                        value: sekrit-env
                      interactiveMode: Never
                \(extra)
                contexts:
                - name: sim
                  context: {cluster: sim, user: exec-user, namespace: default}
                current-context: sim
                """)
        }
    }

    private static func client(_ path: String, timeout: Duration = .seconds(30), logger: Logger? = nil) throws -> KubernetesClient {
        let connection = try Kubeconfig.load(path: path).connection(execTimeout: timeout)
        return KubernetesClient(
            connection: connection, retryPolicy: .none, logger: logger ?? Logger(label: "capstan.test"))
    }

    private struct Review: Decodable {
        struct Status: Decodable {
            struct UserInfo: Decodable { var username: String }
            var userInfo: UserInfo
        }
        var status: Status
    }

    /// Goal: a v1 plugin's token authenticates; it runs once for many requests (no expiry), with
    /// its args, its env, stdin closed and `KUBERNETES_EXEC_INFO` (apiVersion, interactive false).
    /// Seen failing on purpose: with `request.tls.use(credential)` removed from `perform` every
    /// request went out without a token and kube-sim answered 401.
    @Test("Exec: a v1 plugin's token authenticates, the plugin runs once, with args, env and KUBERNETES_EXEC_INFO")
    func tokenPlugin() async throws {
        try await bounded("tokenPlugin") {
            try await withKubeSim { sim, _ in
                let plugin = Plugin()
                plugin.credential("cred.json", token: sim.managementToken, expiration: "2200-01-01T00:00:00Z")
                plugin.script(
                    """
                    printf '%s' "$KUBERNETES_EXEC_INFO" > "$D/exec-info"
                    printf '%s\\n' "$@" > "$D/args"
                    printf '%s' "$PLUGIN_SECRET" > "$D/env"
                    if read line; then echo "stdin was open" > "$D/stdin"; fi
                    cat "$D/cred.json"
                    """)
                let client = try Self.client(plugin.kubeconfig(sim))
                for _ in 0..<3 {
                    let namespace = try await client.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                    #expect(namespace.metadata.name == "default")
                }
                // A watch gets the credential too (it starts inside its reader task with a plugin).
                let events = try client.watch(
                    .namespaces, namespace: nil, options: ListOptions(resourceVersion: "0", timeoutSeconds: 30),
                    as: RawObject.self)
                var watched: String? = nil
                for try await event in events {
                    watched = event.object.metadata.name
                    break
                }
                #expect(watched != nil)
                #expect(plugin.runs == 1)
                #expect(client.connection.exec?.runCount == 1)
                let info = try JSONSerialization.jsonObject(with: Data(plugin.read("exec-info").utf8)) as? [String: Any]
                #expect(info?["apiVersion"] as? String == "client.authentication.k8s.io/v1")
                #expect(info?["kind"] as? String == "ExecCredential")
                #expect((info?["spec"] as? [String: Any])?["interactive"] as? Bool == false)
                #expect((info?["spec"] as? [String: Any])?["cluster"] == nil)
                #expect(plugin.read("args") == "--cluster\nsim\n--secret-arg=sekrit-arg\n")
                #expect(plugin.read("env") == "sekrit-env")
                #expect(plugin.read("stdin").isEmpty)
                #expect(client.defaultNamespace == "default")
                // Printing the connection names the plugin, never what it printed.
                #expect(!"\(client.connection)".contains(sim.managementToken))
                #expect("\(client.connection)".contains("exec: \(plugin.path)"))
            }
        }
    }

    /// Goal: a v1beta1 plugin answering a client certificate and key (PEM) authenticates as the
    /// certificate's CN; `provideClusterInfo` hands the plugin the server and CA.
    @Test("Exec: a v1beta1 plugin's client certificate authenticates; provideClusterInfo passes the cluster")
    func certificatePlugin() async throws {
        try await bounded("certificatePlugin") {
            try await withKubeSim { sim, _ in
                let plugin = Plugin()
                let issued = try sim.issueClientCertificate(user: "exec-cert-user", groups: ["team-x"])
                plugin.credential(
                    "cred.json", apiVersion: "client.authentication.k8s.io/v1beta1", certificate: issued.certificatePEM,
                    key: issued.keyPEM)
                plugin.script("printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$D/exec-info\"\ncat \"$D/cred.json\"")
                let path = plugin.kubeconfig(
                    sim, apiVersion: "client.authentication.k8s.io/v1beta1", extra: "      provideClusterInfo: true")
                let client = try Self.client(path)
                let body = #"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#
                let response = try await client.send(
                    method: "POST", path: "/apis/authentication.k8s.io/v1/selfsubjectreviews", body: Array(body.utf8),
                    contentType: "application/json", idempotent: true)
                let review = try JSONDecoder().decode(Review.self, from: Data(response.body))
                #expect(review.status.userInfo.username == "exec-cert-user")
                let info = try JSONSerialization.jsonObject(with: Data(plugin.read("exec-info").utf8)) as? [String: Any]
                let spec = info?["spec"] as? [String: Any]
                let cluster = spec?["cluster"] as? [String: Any]
                #expect(info?["apiVersion"] as? String == "client.authentication.k8s.io/v1beta1")
                #expect(cluster?["server"] as? String == sim.url)
                let ca = (cluster?["certificate-authority-data"] as? String).flatMap { Data(base64Encoded: $0) }
                #expect(ca.map { String(decoding: $0, as: UTF8.self) } == sim.caCertificatePEM)
            }
        }
    }

    /// Goal: an expired credential is never sent again: with `expirationTimestamp` in the past,
    /// every request runs the plugin. And the cache boundary itself: a credential is reused
    /// before its expiry and replaced at it (the clock handed in).
    @Test("Exec: an expired credential makes the plugin run again")
    func expiry() async throws {
        try await bounded("expiry") {
            try await withKubeSim { sim, _ in
                let plugin = Plugin()
                plugin.credential("cred.json", token: sim.managementToken, expiration: "2001-01-01T00:00:00Z")
                plugin.script("cat \"$D/cred.json\"")
                let client = try Self.client(plugin.kubeconfig(sim))
                for _ in 0..<3 { _ = try await client.get(.namespaces, name: "default", namespace: nil, as: RawObject.self) }
                #expect(plugin.runs == 3)

                let later = Plugin()
                later.credential("cred.json", token: sim.managementToken, expiration: "2030-06-01T12:00:00Z")
                later.script("cat \"$D/cred.json\"")
                let exec = try #require(try Self.client(later.kubeconfig(sim)).connection.exec)
                let expiry = Date(timeIntervalSince1970: 1_906_545_600)  // 2030-06-01T12:00:00Z
                let first = try await exec.credential(now: expiry.addingTimeInterval(-60))
                #expect(first.expiration == expiry)
                _ = try await exec.credential(now: expiry.addingTimeInterval(-1))
                #expect(later.runs == 1)
                let renewed = try await exec.credential(now: expiry)
                #expect(later.runs == 2)
                #expect(renewed.generation == 2)
            }
        }
    }

    /// Goal: a 401 drops the plugin's credential and runs it again, once per request: a plugin
    /// whose first token is stale succeeds on the second run; one that only has wrong tokens
    /// gets the 401 after exactly two runs (no loop). No token in the error or any log line.
    @Test("Exec: a 401 runs the plugin again once; the token is in no error or log line")
    func unauthorizedRefresh() async throws {
        try await bounded("unauthorizedRefresh") {
            try await withKubeSim { sim, _ in
                let plugin = Plugin()
                plugin.credential("stale.json", token: "stale-sekrit-token")
                plugin.credential("fresh.json", token: sim.managementToken)
                plugin.script(
                    """
                    if [ "$(wc -l < "$D/runs")" -le 1 ]; then cat "$D/stale.json"; else cat "$D/fresh.json"; fi
                    """)
                let lines = LogLines()
                let client = try Self.client(plugin.kubeconfig(sim), logger: lines.logger())
                _ = try await client.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                #expect(plugin.runs == 2)
                _ = try await client.get(.namespaces, name: "kube-system", namespace: nil, as: RawObject.self)
                #expect(plugin.runs == 2)
                #expect(lines.all.contains { $0.contains("kubernetes.request.credential_refresh") })

                let wrong = Plugin()
                wrong.credential("cred.json", token: "wrong-sekrit-token")
                wrong.script("cat \"$D/cred.json\"")
                let refused = try Self.client(wrong.kubeconfig(sim), logger: lines.logger())
                let error = await #expect(throws: KubernetesError.self) {
                    _ = try await refused.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                }
                #expect(error?.code == .unauthorized)
                #expect(wrong.runs == 2)
                let texts = lines.all + [error.map { "\($0)" } ?? "", "\(refused.connection)", String(reflecting: refused.connection)]
                for text in texts {
                    for secret in [sim.managementToken, "stale-sekrit-token", "wrong-sekrit-token", "sekrit-env", "sekrit-arg"] {
                        #expect(!text.contains(secret), "a credential in: \(text)")
                    }
                }
            }
        }
    }

    /// Goal: a failing plugin gives an error naming the kubeconfig file, the user and the
    /// command, with its exit status and stderr; never its args, env or stdout (which may hold
    /// a token). A missing command says so, with the installHint.
    @Test("Exec: a failing plugin's error names file, user, command, status and stderr, no secret")
    func failingPlugin() async throws {
        try await bounded("failingPlugin") {
            try await withKubeSim { sim, _ in
                let plugin = Plugin()
                plugin.script(
                    """
                    echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"half-sekrit"}}'
                    echo "error: no credentials for profile prod" >&2
                    exit 3
                    """)
                let path = plugin.kubeconfig(sim)
                let client = try Self.client(path)
                let error = await #expect(throws: KubernetesError.self) {
                    _ = try await client.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                }
                #expect(error?.code == .credentialPlugin)
                let text = error.map { "\($0)" } ?? ""
                for part in [path, "user \"exec-user\"", plugin.path, "exited with status 3", "no credentials for profile prod"] {
                    #expect(text.contains(part), "\(part) not in \(text)")
                }
                for secret in ["half-sekrit", "sekrit-env", "sekrit-arg", sim.managementToken] {
                    #expect(!text.contains(secret), "a secret in \(text)")
                }

                // Output that is not an ExecCredential of the configured version: named, never quoted.
                plugin.script(
                    #"echo '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"half-sekrit"}}'"#)
                let mismatch = await #expect(throws: KubernetesError.self) {
                    _ = try await client.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                }
                #expect(mismatch.map { "\($0)" }?.contains("the plugin answered client.authentication.k8s.io/v1beta1") == true)
                #expect(mismatch.map { "\($0)" }?.contains("half-sekrit") == false)

                // A time past what the clock holds is an error naming the field (it trapped in parseRFC3339 once).
                plugin.credential("far.json", token: "half-sekrit", expiration: "2999-01-01T00:00:00Z")
                plugin.script("cat \"$D/far.json\"")
                let far = await #expect(throws: KubernetesError.self) {
                    _ = try await client.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                }
                #expect(far.map { "\($0)" }?.contains("status.expirationTimestamp") == true)

                let missing = try Self.client(
                    plugin.kubeconfig(
                        sim, extra: "      installHint: install it with 'brew install sim-auth'",
                        command: "capstan-no-such-plugin"))
                let notFound = await #expect(throws: KubernetesError.self) {
                    _ = try await missing.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                }
                #expect(notFound.map { "\($0)" }?.contains("capstan-no-such-plugin: command not found in PATH") == true)
                #expect(notFound.map { "\($0)" }?.contains("brew install sim-auth") == true)
            }
        }
    }

    /// Goal: a plugin that does not finish is killed at the timeout with its whole process group
    /// (the `sleep` it started too, which holds the pipes open), and the error says so.
    @Test("Exec: a plugin past its timeout is killed with its children")
    func timeout() async throws {
        try await bounded("timeout") {
            try await withKubeSim { sim, _ in
                let plugin = Plugin()
                plugin.script("sleep 600 &\necho $! > \"$D/child\"\necho waiting >&2\nwait")
                let client = try Self.client(plugin.kubeconfig(sim), timeout: .milliseconds(500))
                let error = await #expect(throws: KubernetesError.self) {
                    _ = try await client.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                }
                #expect(error?.code == .credentialPlugin)
                #expect(error.map { "\($0)" }?.contains("did not finish within") == true)
                #expect(error.map { "\($0)" }?.contains("waiting") == true)
                let child = try #require(Int32(plugin.read("child").trimmingCharacters(in: .whitespacesAndNewlines)))
                // Gone, or a zombie waiting for a reaper: either way no longer running.
                _ = try await eventually("the plugin's child killed", timeout: .seconds(30)) { () -> Bool? in
                    guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8) else { return true }
                    let state = stat.split(separator: ")").last?.split(separator: " ").first
                    return state == "Z" ? true : nil
                }
            }
        }
    }
}
