import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Upstream-shaped manifests for the fleet proofs: a VersionCatalog and clusters each with a
/// KamajiControlPlane, KubevirtCluster, and per MachineDeployment a KubevirtMachineTemplate,
/// a KubeadmConfigTemplate, the MachineDeployment and a MachineHealthCheck.
enum FleetManifests {
    static func catalog(_ versions: [String] = ["v1.30.4", "v1.31.2", "v1.32.1", "v1.33.0", "v1.34.0", "v1.35.0", "v1.36.0"]) -> String {
        """
        apiVersion: capstan.dev/v1alpha1
        kind: VersionCatalog
        metadata:
          name: default
          namespace: default
        spec:
          versions:
        \(versions.map { "  - version: \($0)" }.joined(separator: "\n"))

        """
    }

    /// One cluster `name` at `version`, with `deployments` MachineDeployments of `replicas` each
    /// (VMs of `cpuCores` cores; `strategy` RollingUpdate 1/0 or OnDelete).
    static func cluster(
        _ name: String, version: String, deployments: Int = 2, replicas: Int = 3, workerVersion: String? = nil, cpuCores: Int = 2,
        strategy: String = "RollingUpdate"
    ) -> String {
        let strategyYAML = strategy == "OnDelete" ? "type: OnDelete" : "type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0"
        var documents = [
            """
            apiVersion: cluster.x-k8s.io/v1beta1
            kind: Cluster
            metadata:
              name: \(name)
              namespace: default
            spec:
              clusterNetwork:
                pods:
                  cidrBlocks: [10.243.0.0/16]
              controlPlaneRef:
                apiVersion: controlplane.cluster.x-k8s.io/v1alpha1
                kind: KamajiControlPlane
                name: \(name)
              infrastructureRef:
                apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1
                kind: KubevirtCluster
                name: \(name)
            """,
            """
            apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1
            kind: KubevirtCluster
            metadata:
              name: \(name)
              namespace: default
            spec: {}
            """,
            """
            apiVersion: controlplane.cluster.x-k8s.io/v1alpha1
            kind: KamajiControlPlane
            metadata:
              name: \(name)
              namespace: default
            spec:
              dataStoreName: default
              replicas: 2
              version: \(version)
            """,
        ]
        for index in 0..<deployments {
            let md = "\(name)-md-\(index)"
            documents += [
                """
                apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1
                kind: KubevirtMachineTemplate
                metadata:
                  name: \(md)
                  namespace: default
                spec:
                  template:
                    spec:
                      virtualMachineTemplate:
                        spec:
                          runStrategy: Always
                          template:
                            spec:
                              domain:
                                cpu: {cores: \(cpuCores)}
                                memory: {guest: 4Gi}
                                devices:
                                  disks:
                                  - name: containervolume
                                    disk: {bus: virtio}
                              evictionStrategy: External
                              volumes:
                              - name: containervolume
                                containerDisk:
                                  image: quay.io/capk/ubuntu-2404-container-disk:\(version)
                """,
                """
                apiVersion: bootstrap.cluster.x-k8s.io/v1beta1
                kind: KubeadmConfigTemplate
                metadata:
                  name: \(md)
                  namespace: default
                spec:
                  template:
                    spec:
                      joinConfiguration:
                        nodeRegistration:
                          kubeletExtraArgs:
                            node-labels: pool=\(md)
                """,
                """
                apiVersion: cluster.x-k8s.io/v1beta1
                kind: MachineDeployment
                metadata:
                  name: \(md)
                  namespace: default
                spec:
                  clusterName: \(name)
                  replicas: \(replicas)
                  selector:
                    matchLabels: {pool: \(md)}
                  strategy:
                    \(strategyYAML)
                  template:
                    spec:
                      clusterName: \(name)
                      version: \(workerVersion ?? version)
                      bootstrap:
                        configRef:
                          apiVersion: bootstrap.cluster.x-k8s.io/v1beta1
                          kind: KubeadmConfigTemplate
                          name: \(md)
                      infrastructureRef:
                        apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1
                        kind: KubevirtMachineTemplate
                        name: \(md)
                """,
                """
                apiVersion: cluster.x-k8s.io/v1beta1
                kind: MachineHealthCheck
                metadata:
                  name: \(md)
                  namespace: default
                spec:
                  clusterName: \(name)
                  selector:
                    matchLabels: {pool: \(md)}
                  nodeStartupTimeout: 10m
                  maxUnhealthy: 40%
                  unhealthyConditions:
                  - type: Ready
                    status: "False"
                    timeout: 5m
                """,
            ]
        }
        return documents.joined(separator: "\n---\n") + "\n"
    }
}

/// Runs the real `capstan` binary to its end (output through files, never a pipe that could fill).
func runCapstan(_ arguments: [String], in directory: String, timeout: Duration = .seconds(180)) async throws
    -> (status: Int32, stdout: String, stderr: String)
{
    let prefix = directory + "/capstan-\(UInt32.random(in: 0...UInt32.max))"
    FileManager.default.createFile(atPath: prefix + ".out", contents: nil)
    FileManager.default.createFile(atPath: prefix + ".err", contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try builtExecutable("capstan"))
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    process.environment = ProcessInfo.processInfo.environment.merging(["USER": "alice"]) { $1 }
    process.standardOutput = FileHandle(forWritingAtPath: prefix + ".out")
    process.standardError = FileHandle(forWritingAtPath: prefix + ".err")
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = ContinuousClock.now + timeout
    while process.isRunning {
        if ContinuousClock.now > deadline {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw ServeTestError("capstan \(arguments) did not end within \(timeout)")
        }
        try await Task.sleep(for: .milliseconds(20))
    }
    process.waitUntilExit()
    let out = (try? String(contentsOfFile: prefix + ".out", encoding: .utf8)) ?? ""
    let err = (try? String(contentsOfFile: prefix + ".err", encoding: .utf8)) ?? ""
    return (process.terminationStatus, out, err)
}

/// `capstan apply` against a data directory whose log the serve child creates as it starts:
/// an apply before that finds nothing to append to ("its databases are not created yet", seen
/// under load), so it is tried again while that is the answer, for at most two minutes.
func applyOnceServeCreatedLog(_ arguments: [String], in directory: String) async throws
    -> (status: Int32, stdout: String, stderr: String)
{
    var result = try await runCapstan(arguments, in: directory)
    let deadline = ContinuousClock.now + .seconds(120)
    while result.status != 0, result.stderr.contains("not created yet"), ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(100))
        result = try await runCapstan(arguments, in: directory)
    }
    return result
}
