import Foundation
import Testing

@testable import Providers

/// `KUBECONFIG` with several files, merged as kubectl merges them, and the default lookup
/// (`KUBECONFIG`, else `~/.kube/config`) `capstan serve` uses without `--kubeconfig`.
@Suite struct KubeconfigMergeTests {
    /// Three files in two directories: A (cluster c1, user u1, context ctx-a; no current-context),
    /// B (c1 and u1 again, which lose; c2, u2, ctx-a again, which loses; ctx-b naming A's u1;
    /// current-context ctx-b), C (current-context ctx-a, which loses; c3 with a relative CA).
    private struct Files {
        let one = TemporaryDirectory()
        let two = TemporaryDirectory()
        var a: String { one.path + "/a.kubeconfig" }
        var b: String { one.path + "/b.kubeconfig" }
        var c: String { two.path + "/c.kubeconfig" }

        init() {
            one.write(
                "a.kubeconfig",
                """
                apiVersion: v1
                kind: Config
                clusters:
                - name: c1
                  cluster: {server: "https://a.example:6443"}
                users:
                - name: u1
                  user: {token: token-from-a}
                contexts:
                - name: ctx-a
                  context: {cluster: c1, user: u1, namespace: team-a}
                """)
            one.write(
                "b.kubeconfig",
                """
                apiVersion: v1
                kind: Config
                clusters:
                - name: c1
                  cluster: {server: "https://b-loses.example:6443"}
                - name: c2
                  cluster: {server: "https://b.example:6443", tls-server-name: api.b.example, proxy-url: "http://proxy.example:3128"}
                users:
                - name: u1
                  user: {token: token-from-b-loses}
                - name: u2
                  user: {token: token-from-b}
                contexts:
                - name: ctx-a
                  context: {cluster: c2, user: u2}
                - name: ctx-b
                  context: {cluster: c2, user: u1, namespace: team-b}
                current-context: ctx-b
                """)
            two.write("ca.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
            two.write(
                "c.kubeconfig",
                """
                apiVersion: v1
                kind: Config
                clusters:
                - name: c3
                  cluster: {server: "https://c.example:6443", certificate-authority: ca.crt}
                users:
                - name: u3
                  user: {token: token-from-c}
                contexts:
                - name: ctx-c
                  context: {cluster: c3, user: u3}
                current-context: ctx-a
                """)
        }
    }

    /// Goal: kubectl's merge rules. Seen failing on purpose: with the merge taking the last
    /// file's entry instead of the first, ctx-a came from B (server b.example, token-from-b).
    @Test("Kubeconfig: KUBECONFIG: the first file to set a key wins, current-context from the first that sets it")
    func mergeRules() throws {
        let files = Files()
        let merged = try Kubeconfig.load(paths: [files.a, "", "/nonexistent/x.kubeconfig", files.b, files.a, files.c])
        #expect(merged.currentContext == "ctx-b")
        #expect(merged.contexts.map(\.name) == ["ctx-a", "ctx-b", "ctx-c"])
        #expect(merged.clusters.map(\.name) == ["c1", "c2", "c3"])
        #expect(merged.users.map(\.name) == ["u1", "u2", "u3"])

        let current = try merged.connection()
        #expect(current.server == "https://b.example:6443")
        #expect(current.token?.exposedString == "token-from-a")  // ctx-b names u1, which A set first
        #expect(current.namespace == "team-b")
        #expect(current.tlsServerName == "api.b.example")
        #expect(current.proxyURL == "http://proxy.example:3128")
        #expect(KubernetesClient(connection: current).defaultNamespace == "team-b")

        let a = try merged.connection(context: "ctx-a")
        #expect(a.server == "https://a.example:6443")
        #expect(a.token?.exposedString == "token-from-a")
        #expect(a.namespace == "team-a")
        #expect(KubernetesClient(connection: try merged.connection(context: "ctx-c")).defaultNamespace == "default")

        // A relative path resolves against the file it is written in, not the first file's directory.
        #expect(try merged.connection(context: "ctx-c").certificateAuthority == .file(files.two.path + "/ca.crt"))

        // The same through the environment, as `capstan serve` reads it without --kubeconfig.
        let fromEnvironment = try Kubeconfig.loadDefault(environment: ["KUBECONFIG": "\(files.a):\(files.b):\(files.c)", "HOME": "/nonexistent"])
        #expect(fromEnvironment.currentContext == "ctx-b")
        #expect(try fromEnvironment.connection().token?.exposedString == "token-from-a")

        // The order decides: B first gives B's c1 and u1.
        let reversed = try Kubeconfig.load(paths: [files.b, files.a])
        #expect(try reversed.connection(context: "ctx-a").server == "https://b.example:6443")
        #expect(try reversed.connection(context: "ctx-a").token?.exposedString == "token-from-b")
    }

    /// Goal: references are checked after the merge and an error names the file and field it is
    /// in; a current-context naming no context names the file that set it; no file at all says so.
    @Test("Kubeconfig: KUBECONFIG: errors name the file and field")
    func mergeErrors() throws {
        let files = Files()
        let bad = files.two.write(
            "bad.kubeconfig",
            """
            apiVersion: v1
            kind: Config
            contexts:
            - name: ok
              context: {cluster: c1, user: u1}
            - name: dangling
              context: {cluster: c1, user: ghost}
            """)
        // Alone, `ok` names a cluster and user it does not hold; merged after A it is fine...
        #expect(throws: KubeconfigError.self) { _ = try Kubeconfig.load(path: bad) }
        let error = #expect(throws: KubeconfigError.self) { _ = try Kubeconfig.load(paths: [files.a, bad]) }
        // ...but `dangling` is not, and the error is bad.kubeconfig's.
        #expect(error?.file == bad)
        #expect(error?.fieldPath == "contexts[1].context.user")
        #expect(error?.code == .danglingReference)
        #expect(error.map { "\($0)" }?.contains("token-from-a") == false)

        let current = files.one.write(
            "current.kubeconfig", "apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n")
        let dangling = #expect(throws: KubeconfigError.self) { _ = try Kubeconfig.load(paths: [current, files.a, files.b]) }
        #expect(dangling?.file == current)
        #expect(dangling?.fieldPath == "current-context")

        let syntax = files.one.write("syntax.kubeconfig", "clusters: [\n  token: sekrit {")
        let malformed = #expect(throws: KubeconfigError.self) { _ = try Kubeconfig.load(paths: [files.a, syntax]) }
        #expect(malformed?.file == syntax)
        #expect(malformed.map { "\($0)" }?.contains("sekrit") == false)

        let none = #expect(throws: KubeconfigError.self) {
            _ = try Kubeconfig.loadDefault(environment: ["KUBECONFIG": "/nonexistent/1:/nonexistent/2", "HOME": files.one.path])
        }
        #expect(none?.file == "/nonexistent/1:/nonexistent/2")
        #expect(none.map { "\($0)" }?.contains("KUBECONFIG") == true)
    }

    /// Goal: without KUBECONFIG, `~/.kube/config`; neither is an error naming the path.
    @Test("Kubeconfig: default: ~/.kube/config when KUBECONFIG is unset or empty")
    func homeConfig() throws {
        let files = Files()
        let home = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: home.path + "/.kube", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: files.b, toPath: home.path + "/.kube/config")
        for environment in [["HOME": home.path], ["HOME": home.path, "KUBECONFIG": ""]] {
            let config = try Kubeconfig.loadDefault(environment: environment)
            #expect(config.source == home.path + "/.kube/config")
            #expect(try config.connection().token?.exposedString == "token-from-b-loses")
        }
        let empty = TemporaryDirectory()
        let missing = #expect(throws: KubeconfigError.self) { _ = try Kubeconfig.loadDefault(environment: ["HOME": empty.path]) }
        #expect(missing?.file == empty.path + "/.kube/config")
        #expect(missing?.code == .unreadable)
    }
}
