import Foundation
import Testing

@testable import Providers

/// A temporary directory removed when the value goes away.
final class TemporaryDirectory {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "capstan-providers-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        let file = (path as NSString).appendingPathComponent(name)
        try! text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
}

// Fake PEM text with no key material; the marker is split so that secret scanners do not take it for a committed key.
private let pemCertificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
private let pemKey = "-----BEGIN EC PRIVATE \("KEY")-----\nSECRETKEYMATERIAL\n-----END EC PRIVATE \("KEY")-----\n"
private func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

private func kubeconfig(cluster: String, user: String, context: String = "", current: String = "ctx") -> String {
    """
    apiVersion: v1
    kind: Config
    clusters:
    - name: c1
      cluster:
    \(cluster)
    users:
    - name: u1
      user:
    \(user)
    contexts:
    - name: ctx
      context:
        cluster: c1
        user: u1
    \(context)
    current-context: \(current)
    """
}

@Suite struct KubeconfigTests {
    /// Goal: every supported field lands in the connection. Method: one file using the -data
    /// variants and a token, one using file paths (relative, resolved against the file's directory) and tokenFile.
    @Test("Kubeconfig: parse: inline data and token")
    func inlineDataAndToken() throws {
        let text = kubeconfig(
            cluster: """
                    server: https://127.0.0.1:6443/clusters/ns/c1/
                    certificate-authority-data: \(base64(pemCertificate))
                """,
            user: """
                    token: sekrit-token-value
                """,
            context: "    namespace: team-a")
        let config = try Kubeconfig.parse(text, source: "/tmp/a.kubeconfig", baseDirectory: "/tmp")
        let connection = try config.connection()
        #expect(connection.server == "https://127.0.0.1:6443/clusters/ns/c1")
        #expect(connection.certificateAuthority == .pem(RedactedBytes(pemCertificate)))
        #expect(connection.token?.exposedString == "sekrit-token-value")
        #expect(connection.namespace == "team-a")
        #expect(connection.insecureSkipTLSVerify == false)
        #expect(connection.clientCertificate == nil)
        #expect(!"\(connection)".contains("sekrit"))
        #expect(!"\(config)".contains("sekrit"))
        var dumped = ""
        dump(connection, to: &dumped)
        #expect(!dumped.contains("sekrit"))
    }

    @Test("Kubeconfig: parse: files, tokenFile and client certificates, relative to the file")
    func filesAndClientCertificates() throws {
        let directory = TemporaryDirectory()
        directory.write("ca.crt", pemCertificate)
        directory.write("client.crt", pemCertificate)
        directory.write("client.key", pemKey)
        directory.write("token", "file-token\n")
        let path = directory.write(
            "config",
            kubeconfig(
                cluster: """
                        server: https://localhost:1
                        certificate-authority: ca.crt
                    """,
                user: """
                        tokenFile: token
                        client-certificate: client.crt
                        client-key: \(directory.path)/client.key
                    """))
        let connection = try Kubeconfig.load(path: path).connection(context: "ctx")
        #expect(connection.certificateAuthority == .file(directory.path + "/ca.crt"))
        #expect(connection.clientCertificate == .file(directory.path + "/client.crt"))
        #expect(connection.clientKey == .file(directory.path + "/client.key"))
        #expect(connection.token?.exposedString == "file-token")
        #expect(connection.namespace == nil)
    }

    @Test("Kubeconfig: parse: client certificate and key data")
    func clientCertificateData() throws {
        let text = kubeconfig(
            cluster: "    server: https://h:1\n    insecure-skip-tls-verify: true",
            user: """
                    client-certificate-data: \(base64(pemCertificate))
                    client-key-data: \(base64(pemKey))
                """)
        let connection = try Kubeconfig.parse(text, source: "x", baseDirectory: nil).connection()
        #expect(connection.clientCertificate == .pem(RedactedBytes(pemCertificate)))
        #expect(connection.clientKey == .pem(RedactedBytes(pemKey)))
        #expect(connection.insecureSkipTLSVerify)
        #expect(!"\(connection)".contains("SECRETKEYMATERIAL"))
    }

    @Test("Kubeconfig: parse: insecure-skip-tls-verify false stays false")
    func insecureFalse() throws {
        let text = kubeconfig(cluster: "    server: https://h:1\n    insecure-skip-tls-verify: false", user: "    token: t")
        #expect(try Kubeconfig.parse(text, source: "x", baseDirectory: nil).connection().insecureSkipTLSVerify == false)
    }

    /// Goal: each broken file names the file and the field path, and never echoes a credential.
    @Test(
        "Kubeconfig: errors: name file and field",
        arguments: [
            (
                kubeconfig(cluster: "    server: https://h:1", user: "    token: sekrit", current: "nope"),
                "current-context", KubeconfigError.Code.danglingReference
            ),
            (
                kubeconfig(cluster: "    server: https://h:1", user: "    token: sekrit").replacingOccurrences(
                    of: "cluster: c1", with: "cluster: x"),
                "contexts[0].context.cluster", .danglingReference
            ),
            (
                kubeconfig(cluster: "    server: https://h:1", user: "    token: sekrit").replacingOccurrences(
                    of: "user: u1", with: "user: ghost"),
                "contexts[0].context.user", .danglingReference
            ),
            (kubeconfig(cluster: "    insecure-skip-tls-verify: true", user: "    token: sekrit"), "clusters[0].cluster.server", .missingField),
            (kubeconfig(cluster: "    server: not a url", user: "    token: sekrit"), "clusters[0].cluster.server", .invalidValue),
            (
                kubeconfig(cluster: "    server: https://h:1\n    certificate-authority-data: '!!!notbase64'", user: "    token: sekrit"),
                "clusters[0].cluster.certificate-authority-data", .invalidValue
            ),
            (
                kubeconfig(cluster: "    server: https://h:1\n    certificate-authority-data: \(base64("hello"))", user: "    token: sekrit"),
                "clusters[0].cluster.certificate-authority-data", .invalidValue
            ),
            (
                kubeconfig(cluster: "    server: https://h:1\n    certificate-authority: /nonexistent/ca.crt", user: "    token: sekrit"),
                "clusters[0].cluster.certificate-authority", .unreadable
            ),
            (
                kubeconfig(cluster: "    server: https://h:1\n    insecure-skip-tls-verify: maybe", user: "    token: sekrit"),
                "clusters[0].cluster.insecure-skip-tls-verify", .malformed
            ),
            (
                kubeconfig(cluster: "    server: https://h:1", user: "    client-certificate-data: \(base64(pemCertificate))"),
                "users[0].user.client-key", .missingField
            ),
            (
                kubeconfig(cluster: "    server: https://h:1", user: "    client-key-data: \(base64(pemKey))"),
                "users[0].user.client-certificate", .missingField
            ),
            (
                kubeconfig(cluster: "    server: https://h:1", user: "    tokenFile: /nonexistent/token"),
                "users[0].user.tokenFile", .unreadable
            ),
            (
                kubeconfig(cluster: "    server: https://h:1", user: "    token: sekrit\n    tokenFile: /etc/hostname"),
                "users[0].user.tokenFile", .invalidValue
            ),
            (
                kubeconfig(cluster: "    server: https://h:1", user: "    token: sekrit").replacingOccurrences(
                    of: "- name: u1\n", with: "- nome: u1\n"),
                "users[0].name", .missingField
            ),
            (
                kubeconfig(cluster: "    server: https://h:1", user: "    token: sekrit").replacingOccurrences(
                    of: "clusters:\n", with: "clusters: 7\nxclusters:\n"),
                "clusters", .malformed
            ),
            (kubeconfig(cluster: "    server: http://h:1", user: "    token: sekrit"), "clusters[0].cluster.server", .invalidValue),
            (
                kubeconfig(cluster: "    server: http://h:1", user: "    tokenFile: /etc/hostname"),
                "clusters[0].cluster.server", .invalidValue
            ),
            (
                kubeconfig(
                    cluster: "    server: HTTP://h:1",
                    user: "    client-certificate-data: \(base64(pemCertificate))\n    client-key-data: \(base64(pemKey))"),
                "clusters[0].cluster.server", .invalidValue
            ),
            ("apiVersion: v1\nkind: Pod\n", "kind", .invalidValue),
            ("clusters: [\n  token: sekrit {", "", .malformed),
            ("- just a list", "", .malformed),
        ])
    func errorsNameFileAndField(text: String, field: String, code: KubeconfigError.Code) throws {
        try errorNamesFileAndField(text: text, field: field, code: code)
    }

    /// Goal (issue 12): an `exec` user in a context nobody uses does not reject the file, as with
    /// kubectl; choosing that context is the error, naming the field. (Before, parsing threw.)
    @Test("Kubeconfig: exec: an exec user in an unused context is no error; choosing it is")
    func execUserInUnusedContext() throws {
        let text = """
            apiVersion: v1
            kind: Config
            clusters:
            - name: c1
              cluster:
                server: https://h:1
            users:
            - name: cloud
              user:
                exec:
                  apiVersion: client.authentication.k8s.io/v1
                  command: sekrit-helper
            - name: u1
              user:
                token: sekrit
            contexts:
            - name: cloud
              context: {cluster: c1, user: cloud}
            - name: ctx
              context: {cluster: c1, user: u1, namespace: team-a}
            current-context: ctx
            """
        let config = try Kubeconfig.parse(text, source: "/etc/capstan/mixed.kubeconfig", baseDirectory: "/")
        let connection = try config.connection()
        #expect(connection.token?.exposedString == "sekrit")
        #expect(connection.namespace == "team-a")
        let error = #expect(throws: KubeconfigError.self) { _ = try config.connection(context: "cloud") }
        #expect(error?.code == .invalidValue)
        #expect(error?.fieldPath == "users[0].user.exec")
        #expect(error.map { "\($0)" }?.contains("/etc/capstan/mixed.kubeconfig") == true)
        #expect(error.map { "\($0)" }?.contains("sekrit") == false)
    }

    /// Goal: an `exec` section is read as kubectl reads it (a command with a `/` relative to the
    /// file, args, env, interactiveMode; v1 requires interactiveMode), its faults are errors only
    /// for the context that uses it, naming the field; and a kubeconfig not read from a file (a
    /// Secret's) never runs a plugin.
    @Test("Kubeconfig: exec: fields, deferred errors, and never from a Secret")
    func execFields() throws {
        func config(_ exec: String) -> String {
            """
            apiVersion: v1
            kind: Config
            clusters:
            - name: c1
              cluster: {server: "https://h:1"}
            users:
            - name: cloud
              user:
                exec:
            \(exec)
            - name: u1
              user: {token: sekrit}
            contexts:
            - name: cloud
              context: {cluster: c1, user: cloud}
            - name: ctx
              context: {cluster: c1, user: u1}
            current-context: ctx
            """
        }
        let good = config(
            """
                  apiVersion: client.authentication.k8s.io/v1
                  command: bin/cloud-auth
                  args: [token, --region, eu]
                  env: [{name: PROFILE, value: prod}]
                  interactiveMode: IfAvailable
                  installHint: get cloud-auth
            """)
        let parsed = try Kubeconfig.parse(good, source: "/etc/capstan/cloud.kubeconfig", baseDirectory: "/etc/capstan", execPlugins: true)
        let exec = try #require(try parsed.connection(context: "cloud").exec?.config)
        #expect(exec.command == "/etc/capstan/bin/cloud-auth")
        #expect(exec.args == ["token", "--region", "eu"])
        #expect(exec.env == [ExecConfig.EnvVar(name: "PROFILE", value: "prod")])
        #expect(exec.interactiveMode == "IfAvailable")
        #expect(exec.installHint == "get cloud-auth")
        #expect(exec.user == "cloud")
        #expect(exec.file == "/etc/capstan/cloud.kubeconfig")
        #expect(try parsed.connection().exec == nil)

        // From a Secret (execPlugins false, the default): the file loads, the exec context is refused.
        let secret = try Kubeconfig.parse(good, source: "Secret default/x key admin.conf", baseDirectory: nil)
        #expect(try secret.connection().token?.exposedString == "sekrit")
        let refused = #expect(throws: KubeconfigError.self) { _ = try secret.connection(context: "cloud") }
        #expect(refused?.fieldPath == "users[0].user.exec")
        #expect(refused?.reason.contains("never from one read from a cluster") == true)

        let faults: [(String, String)] = [
            ("      apiVersion: client.authentication.k8s.io/v1\n      command: x", "users[0].user.exec.interactiveMode"),
            ("      apiVersion: client.authentication.k8s.io/v1alpha1\n      command: x", "users[0].user.exec.apiVersion"),
            ("      apiVersion: client.authentication.k8s.io/v1beta1", "users[0].user.exec.command"),
            ("      apiVersion: client.authentication.k8s.io/v1beta1\n      command: x\n      args: x", "users[0].user.exec.args"),
            ("      apiVersion: client.authentication.k8s.io/v1beta1\n      command: x\n      env: [{value: v}]", "users[0].user.exec.env[0].name"),
            ("      apiVersion: client.authentication.k8s.io/v1\n      command: x\n      interactiveMode: Always", "users[0].user.exec.interactiveMode"),
        ]
        for (exec, field) in faults {
            let file = try Kubeconfig.parse(config(exec), source: "/etc/capstan/bad.kubeconfig", baseDirectory: "/", execPlugins: true)
            #expect(try file.connection().token != nil)
            let error = #expect(throws: KubeconfigError.self) { _ = try file.connection(context: "cloud") }
            #expect(error?.fieldPath == field)
            #expect(error.map { "\($0)" }?.contains("/etc/capstan/bad.kubeconfig") == true)
            #expect(error.map { "\($0)" }?.contains("sekrit") == false)
        }
    }

    private func errorNamesFileAndField(text: String, field: String, code: KubeconfigError.Code) throws {
        let error = #expect(throws: KubeconfigError.self) {
            _ = try Kubeconfig.parse(text, source: "/etc/capstan/bad.kubeconfig", baseDirectory: "/")
        }
        #expect(error?.code == code)
        #expect(error?.fieldPath == field)
        #expect(error?.file == "/etc/capstan/bad.kubeconfig")
        let message = error.map { "\($0)" } ?? ""
        #expect(message.contains("/etc/capstan/bad.kubeconfig"))
        #expect(field.isEmpty || message.contains(field))
        #expect(!message.contains("sekrit"))
    }

    @Test("Kubeconfig: errors: unreadable file named")
    func unreadableFile() {
        let error = #expect(throws: KubeconfigError.self) { _ = try Kubeconfig.load(path: "/nonexistent/config") }
        #expect(error?.code == .unreadable)
        #expect(error?.description.contains("/nonexistent/config") == true)
    }

    @Test("Kubeconfig: context: unknown context asked for")
    func unknownContext() throws {
        let config = try Kubeconfig.parse(
            kubeconfig(cluster: "    server: https://h:1", user: "    token: t"), source: "f", baseDirectory: nil)
        let error = #expect(throws: KubeconfigError.self) { _ = try config.connection(context: "other") }
        #expect(error?.code == .danglingReference)
        #expect(error?.description.contains("\"other\"") == true)
    }

    @Test("Kubeconfig: parse: relative path without a file refused")
    func relativePathWithoutBase() {
        let text = kubeconfig(cluster: "    server: https://h:1\n    certificate-authority: ca.crt", user: "    token: t")
        let error = #expect(throws: KubeconfigError.self) { _ = try Kubeconfig.parse(text, source: "Secret x", baseDirectory: nil) }
        #expect(error?.fieldPath == "clusters[0].cluster.certificate-authority")
    }

    /// Goal: plain http is only for anonymous access. Method: the same http cluster with and without a user credential.
    @Test("Kubeconfig: http: credentials never paired with a plain-http server")
    func plainHTTPWithCredentials() throws {
        let anonymous = kubeconfig(cluster: "    server: http://127.0.0.1:8080", user: "    {}")
        #expect(try Kubeconfig.parse(anonymous, source: "f", baseDirectory: nil).connection().server == "http://127.0.0.1:8080")
        let withToken = kubeconfig(cluster: "    server: http://127.0.0.1:8080", user: "    token: sekrit")
        let error = #expect(throws: KubeconfigError.self) {
            _ = try Kubeconfig.parse(withToken, source: "/etc/capstan/http.kubeconfig", baseDirectory: nil)
        }
        #expect(error?.fieldPath == "clusters[0].cluster.server")
        #expect(error?.description.contains("credentials are never sent over plain http") == true)
        #expect(error?.description.contains("/etc/capstan/http.kubeconfig") == true)
        #expect(error?.description.contains("sekrit") == false)
    }

    @Test("Kubeconfig: parse: duplicate names refused")
    func duplicateNames() {
        let text = kubeconfig(cluster: "    server: https://h:1", user: "    token: t")
            .replacingOccurrences(of: "users:\n", with: "users:\n- name: u1\n  user: {token: x}\n")
        let error = #expect(throws: KubeconfigError.self) { _ = try Kubeconfig.parse(text, source: "f", baseDirectory: nil) }
        #expect(error?.fieldPath == "users[1].name")
    }
}
