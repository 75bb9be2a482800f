import Foundation
import Testing

/// `capstan serve` without `--kubeconfig`: KUBECONFIG (merged), else ~/.kube/config. A kubeconfig
/// that cannot be used stops serve before anything is written, with the file and field named.
@Suite struct ServeKubeconfigTests {
    /// Goal: each refusal names what to fix and leaves no data directory behind. Seen failing on
    /// purpose: with `--kubeconfig` required again, the first case was a usage error (exit 2).
    @Test("CLI: serve: without --kubeconfig, KUBECONFIG or ~/.kube/config; refusals name the file and write nothing")
    func defaultKubeconfig() async throws {
        let work = try temporaryDirectory("serve-kubeconfig")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let data = work + "/data"

        let missing = try await capstan(
            ["serve", "--data-dir", data], environment: ["KUBECONFIG": "\(work)/a.yaml:\(work)/b.yaml", "HOME": work])
        #expect(missing.status == 1, "\(missing.stderr)")
        #expect(missing.stderr.contains("\(work)/a.yaml:\(work)/b.yaml"), "\(missing.stderr)")
        #expect(missing.stderr.contains("KUBECONFIG"), "\(missing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: data))

        // Merged: b.yaml's context names a user only a.yaml would have had; a.yaml has none.
        try "apiVersion: v1\nkind: Config\nusers:\n- name: other\n  user: {token: sekrit-a}\n"
            .write(toFile: work + "/a.yaml", atomically: true, encoding: .utf8)
        try """
            apiVersion: v1
            kind: Config
            clusters:
            - name: c
              cluster: {server: "https://127.0.0.1:1"}
            contexts:
            - name: c
              context: {cluster: c, user: admin}
            current-context: c
            """.write(toFile: work + "/b.yaml", atomically: true, encoding: .utf8)
        let dangling = try await capstan(
            ["serve", "--data-dir", data], environment: ["KUBECONFIG": "\(work)/a.yaml:\(work)/b.yaml", "HOME": work])
        #expect(dangling.status == 1)
        #expect(dangling.stderr.contains("kubeconfig \(work)/b.yaml: contexts[0].context.user"), "\(dangling.stderr)")
        #expect(!dangling.stderr.contains("sekrit-a"))
        #expect(!FileManager.default.fileExists(atPath: data))

        let home = try await capstan(["serve", "--data-dir", data], environment: ["KUBECONFIG": "", "HOME": work])
        #expect(home.status == 1)
        #expect(home.stderr.contains("\(work)/.kube/config"), "\(home.stderr)")
        #expect(!FileManager.default.fileExists(atPath: data))
    }
}
