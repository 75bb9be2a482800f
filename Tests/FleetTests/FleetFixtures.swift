import EventLog
import Foundation
@testable import Fleet

/// Manifests and a log for the manifest, apply and projection tests.
enum FleetFixtures {
    static let catalog = """
        apiVersion: capstan.dev/v1alpha1
        kind: VersionCatalog
        metadata:
          name: default
        spec:
          versions:
          - version: v1.32.1
          - version: v1.33.4
            machineImage: quay.io/capk/ubuntu-2404-container-disk:v1.33.4
          - version: v1.34.2
          - version: v1.35.0
          - version: v1.36.1
        """

    /// A whole cluster in v1beta2 / v1alpha2 spelling.
    static func fleet(cpVersion: String = "v1.33.4", mdVersion: String = "v1.33.4", replicas: String = "3",
                      maxSurge: String = "1", maxUnavailable: String = "0") -> String {
        """
        apiVersion: cluster.x-k8s.io/v1beta2
        kind: Cluster
        metadata:
          name: prod
          namespace: default
        spec:
          clusterNetwork:
            pods:
              cidrBlocks: [10.243.0.0/16]
          controlPlaneRef:
            apiGroup: controlplane.cluster.x-k8s.io
            kind: KamajiControlPlane
            name: prod
          infrastructureRef:
            apiGroup: infrastructure.cluster.x-k8s.io
            kind: KubevirtCluster
            name: prod
        ---
        apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1
        kind: KubevirtCluster
        metadata:
          name: prod
        spec: {}
        ---
        apiVersion: controlplane.cluster.x-k8s.io/v1alpha2
        kind: KamajiControlPlane
        metadata:
          name: prod
        spec:
          dataStoreName: default
          replicas: 2
          version: \(cpVersion)
        ---
        apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1
        kind: KubevirtMachineTemplate
        metadata:
          name: prod-md-0
        spec:
          template:
            spec:
              virtualMachineTemplate:
                spec:
                  runStrategy: Always
                  template:
                    spec:
                      domain:
                        cpu: {cores: 2}
                        memory: {guest: 4Gi}
        ---
        apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
        kind: KubeadmConfigTemplate
        metadata:
          name: prod-md-0
        spec:
          template:
            spec:
              joinConfiguration:
                nodeRegistration:
                  kubeletExtraArgs:
                  - name: node-labels
                    value: pool=md-0
        ---
        apiVersion: cluster.x-k8s.io/v1beta2
        kind: MachineDeployment
        metadata:
          name: prod-md-0
        spec:
          clusterName: prod
          replicas: \(replicas)
          selector:
            matchLabels: {pool: md-0}
          rollout:
            strategy:
              type: RollingUpdate
              rollingUpdate:
                maxSurge: \(maxSurge)
                maxUnavailable: \(maxUnavailable)
          template:
            spec:
              clusterName: prod
              version: \(mdVersion)
              bootstrap:
                configRef:
                  apiGroup: bootstrap.cluster.x-k8s.io
                  kind: KubeadmConfigTemplate
                  name: prod-md-0
              infrastructureRef:
                apiGroup: infrastructure.cluster.x-k8s.io
                kind: KubevirtMachineTemplate
                name: prod-md-0
        ---
        apiVersion: cluster.x-k8s.io/v1beta2
        kind: MachineHealthCheck
        metadata:
          name: prod-md-0
        spec:
          clusterName: prod
          selector:
            matchLabels: {pool: md-0}
          checks:
            nodeStartupTimeoutSeconds: 600
            unhealthyNodeConditions:
            - type: Ready
              status: "False"
              timeoutSeconds: 300
          remediation:
            triggerIf:
              unhealthyLessThanOrEqualTo: 40%
        """
    }

    static let source = ChangeSource(user: "alice", host: "laptop", atNanoseconds: 1_700_000_000_000_000_000)

    static func fixture(_ name: String) throws -> String {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)")
        return try String(contentsOf: url, encoding: .utf8)
    }

    /// A fresh temporary directory.
    static func temporaryDirectory(_ label: String) throws -> String {
        let path = NSTemporaryDirectory() + "capstan-fleet-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Runs `body` with a fresh log, closed and removed afterwards.
    static func withLog<T>(_ label: String, _ body: (EventLog) async throws -> T) async throws -> T {
        let directory = try temporaryDirectory(label)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try EventLog(directory: directory)
        do {
            let result = try await body(log)
            await log.close()
            return result
        } catch {
            await log.close()
            throw error
        }
    }

    static func apply(_ texts: [(String, String)], on log: EventLog, source: ChangeSource = source) async throws -> FleetRecorder.Outcome {
        let files = texts.map { ManifestFile(name: $0.0, text: $0.1) }
        return try await FleetRecorder.perform(FleetOperation(.apply(files: files), source: source), on: log)
    }
}
