import EventLog
import Foundation
import Testing

/// The fleet issue's bad-input proof, through the real `capstan apply`: each invalid file is
/// refused with exit 1 and a message naming the file, line, document, field and reason, and the
/// log (events and state tables) is exactly as it was. Each file is the valid fixture fleet
/// with one document broken, so "a file with one bad document writes nothing at all" is
/// checked on every case.
@Suite struct ApplyRefusalTests {
    /// (case, what to replace in the fixture fleet, its replacement, what stderr must say).
    static let cases: [(name: String, find: String, replace: String, says: [String])] = [
        ("YAML syntax", "  replicas: 3\n", "  replicas: [3\n",
         [":75: document 6: YAML syntax: did not find expected ',' or ']'"]),
        ("unknown field", "  replicas: 3\n", "  replicas: 3\n  replicaz: 4\n",
         [":75: document 6 (MachineDeployment/prod-md-0): spec.replicaz: unknown field \"replicaz\" (did you mean \"replicas\"?)"]),
        ("DNS-1123 name", "  name: prod-md-0\n  labels:", "  name: Prod_MD\n  labels:",
         ["metadata.name: \"Prod_MD\" is not a DNS-1123 name"]),
        ("unknown kind", "kind: KubevirtCluster\nmetadata", "kind: KubevirtClusterX\nmetadata",
         ["document 2 (KubevirtClusterX/prod): kind: unknown kind KubevirtClusterX (did you mean KubevirtCluster?)"]),
        ("unknown apiVersion",
         "apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1\nkind: KubevirtCluster\n",
         "apiVersion: infrastructure.cluster.x-k8s.io/v9\nkind: KubevirtCluster\n",
         ["apiVersion: KubevirtCluster is not served at infrastructure.cluster.x-k8s.io/v9; use infrastructure.cluster.x-k8s.io/v1alpha1"]),
        ("reference that does not resolve", "    kind: KubevirtMachineTemplate\n        name: prod-md-0",
         "    kind: KubevirtMachineTemplate\n        name: prod-md-9",
         ["spec.template.spec.infrastructureRef: KubevirtMachineTemplate/prod-md-9 does not exist in namespace default"]),
        ("version absent from the catalog", "version: v1.33.4", "version: v1.33.99",
         ["document 3 (KamajiControlPlane/prod): spec.version: v1.33.99 is not in VersionCatalog/default"]),
        ("downgrade", "version: v1.33.4", "version: v1.32.1",
         ["document 3 (KamajiControlPlane/prod): spec.version: v1.32.1 is older than the applied v1.33.4: Capstan never downgrades"]),
        ("worker newer than its control plane", "      version: v1.33.4", "      version: v1.34.2",
         ["workers of MachineDeployment/prod-md-0 at v1.34.2 would be newer than the control plane at v1.33.4"]),
        ("negative replicas", "  replicas: 3\n", "  replicas: -1\n", ["spec.replicas: must not be negative, got -1"]),
        ("maxSurge and maxUnavailable both 0", "maxSurge: 1", "maxSurge: 0",
         ["spec.rollout.strategy.rollingUpdate: maxSurge and maxUnavailable must not both be 0"]),
        ("duplicate object",
         "unhealthyLessThanOrEqualTo: 40%",
         "unhealthyLessThanOrEqualTo: 40%\n---\napiVersion: infrastructure.cluster.x-k8s.io/v1alpha1\nkind: KubevirtCluster\nmetadata:\n  name: prod\nspec: {}",
         ["document 8 (KubevirtCluster/prod): KubevirtCluster/prod in namespace default is also defined in", "document 2"]),
        ("integer field given a duration", "nodeStartupTimeoutSeconds: 600", "nodeStartupTimeoutSeconds: 10m",
         ["spec.checks.nodeStartupTimeoutSeconds: must be an integer, got the string \"10m\""]),
        ("bad int-or-percent", "40%", "40 percent",
         ["spec.remediation.triggerIf.unhealthyLessThanOrEqualTo: InvalidIntOrPercent: value \"40 percent\""]),
    ]

    /// Everything a refused apply could have touched: the last position and every state entry.
    static func fingerprint(_ directory: String) throws -> (LogPosition, [String: [UInt8]]) {
        let reader = try EventLogReader(directory: directory)
        var state: [String: [UInt8]] = [:]
        for entry in try reader.stateEntries(withPrefix: "") { state[entry.key] = entry.value }
        return (try reader.lastPosition(), state)
    }

    /// Seen failing, on purpose (2026-12-02): with the "downgrade" case's replacement left at
    /// v1.33.4 (a valid file), apply exited 0 printing "unchanged", and that case failed on its
    /// exit status, stdout, file, message and dry-run checks; the other 13 passed.
    @Test("CLI: apply: each bad input is refused naming file, line, document and field; the log is unchanged",
          arguments: 0..<cases.count)
    func refused(_ index: Int) async throws {
        let (name, find, replace, says) = Self.cases[index]
        let work = try temporaryDirectory("apply-refusal")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let data = work + "/data"
        let applied = try await capstan(
            ["apply", "-f", fixturePath("catalog.yaml"), "-f", fixturePath("fleet.yaml"), "--data-dir", data])
        #expect(applied.status == 0, "\(applied.stderr)")
        let before = try Self.fingerprint(data)

        let valid = try fixture("fleet.yaml")
        #expect(valid.contains(find), "\(name): the fixture changed; fix the case")
        let bad = work + "/bad.yaml"
        try valid.replacingOccurrences(of: find, with: replace).write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try await capstan(["apply", "-f", bad, "--data-dir", data])
        #expect(refused.status == 1, "\(name): exit \(refused.status)\n\(refused.stdout)\(refused.stderr)")
        #expect(refused.stdout.isEmpty, "\(name): printed \(refused.stdout)")
        #expect(refused.stderr.contains("error: \(bad):"), "\(name): the error does not name the file\n\(refused.stderr)")
        for text in says { #expect(refused.stderr.contains(text), "\(name): stderr lacks \(text)\n\(refused.stderr)") }
        #expect(refused.stderr.contains("nothing was written"), "\(name)\n\(refused.stderr)")

        let after = try Self.fingerprint(data)
        #expect(after.0 == before.0, "\(name): the log moved from \(before.0) to \(after.0)")
        #expect(after.1 == before.1, "\(name): the state tables changed")
        // The same file with --dry-run is refused the same way.
        let dry = try await capstan(["apply", "-f", bad, "--dry-run", "--data-dir", data])
        #expect(dry.status == 1, "\(name): dry run exit \(dry.status)")
    }
}
