import Foundation
import KubeSimKit

#if canImport(Glibc)
    import Glibc
#endif

// The parts of `capstan demo` that are not the story: its fleet's manifests, the child
// processes it runs (its own executable), and the counts it reads from kube-sim's ledger.

/// The demo's fleet: two clusters on KubeVirt with Kamaji control planes at v1.33, each with
/// one MachineDeployment and a MachineHealthCheck, and a catalog v1.33 → v1.36.
enum DemoFleet {
    struct Cluster {
        var name: String
        var workers: Int
        var deployment: String { "\(name)-md-0" }
    }

    static let namespace = "default"
    static let clusters = [Cluster(name: "prod-eu", workers: 3), Cluster(name: "prod-us", workers: 2)]
    static let startVersion = "v1.33.4"
    static let targetVersion = "v1.36.1"
    /// How long a Node may stay `Ready=False` before the health check remediates its machine.
    static let unhealthySeconds = 10
    static var machines: Int { clusters.reduce(0) { $0 + $1.workers } }

    static let catalog = """
        # The versions the fleet may run, and the containerDisk image each boots.
        apiVersion: capstan.dev/v1alpha1
        kind: VersionCatalog
        metadata:
          name: default
        spec:
          versions:
          - version: v1.33.4
            machineImage: quay.io/capk/ubuntu-2404-container-disk:v1.33.4
          - version: v1.34.2
            machineImage: quay.io/capk/ubuntu-2404-container-disk:v1.34.2
          - version: v1.35.0
            machineImage: quay.io/capk/ubuntu-2404-container-disk:v1.35.0
          - version: v1.36.1
            machineImage: quay.io/capk/ubuntu-2404-container-disk:v1.36.1

        """

    /// One cluster as Cluster API, the Kamaji control-plane provider and CAPK spell it.
    static func manifest(_ cluster: Cluster) -> String {
        let name = cluster.name
        return """
            apiVersion: cluster.x-k8s.io/v1beta2
            kind: Cluster
            metadata:
              name: \(name)
              namespace: \(namespace)
            spec:
              clusterNetwork:
                pods:
                  cidrBlocks: [10.243.0.0/16]
                services:
                  cidrBlocks: [10.95.0.0/16]
              controlPlaneRef:
                apiGroup: controlplane.cluster.x-k8s.io
                kind: KamajiControlPlane
                name: \(name)
              infrastructureRef:
                apiGroup: infrastructure.cluster.x-k8s.io
                kind: KubevirtCluster
                name: \(name)
            ---
            apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1
            kind: KubevirtCluster
            metadata:
              name: \(name)
              namespace: \(namespace)
              annotations:
                cluster.x-k8s.io/managed-by: kamaji
            ---
            apiVersion: controlplane.cluster.x-k8s.io/v1alpha2
            kind: KamajiControlPlane
            metadata:
              name: \(name)
              namespace: \(namespace)
            spec:
              dataStoreName: default
              replicas: 2
              version: \(startVersion)
            ---
            apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1
            kind: KubevirtMachineTemplate
            metadata:
              name: \(cluster.deployment)
              namespace: \(namespace)
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
                            devices:
                              disks:
                              - name: containervolume
                                disk: {bus: virtio}
                          evictionStrategy: External
                          volumes:
                          - name: containervolume
                            containerDisk:
                              image: quay.io/capk/ubuntu-2404-container-disk:v1.33.4
            ---
            apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
            kind: KubeadmConfigTemplate
            metadata:
              name: \(cluster.deployment)
              namespace: \(namespace)
            spec:
              template:
                spec:
                  joinConfiguration:
                    nodeRegistration:
                      kubeletExtraArgs:
                      - name: node-labels
                        value: pool=md-0
                  preKubeadmCommands:
                  - sysctl -w net.ipv4.ip_forward=1
            ---
            apiVersion: cluster.x-k8s.io/v1beta2
            kind: MachineDeployment
            metadata:
              name: \(cluster.deployment)
              namespace: \(namespace)
            spec:
              clusterName: \(name)
              replicas: \(cluster.workers)
              selector:
                matchLabels: {pool: md-0}
              rollout:
                strategy:
                  type: RollingUpdate
                  rollingUpdate:
                    maxSurge: 1
                    maxUnavailable: 0
              template:
                spec:
                  clusterName: \(name)
                  version: \(startVersion)
                  bootstrap:
                    configRef:
                      apiGroup: bootstrap.cluster.x-k8s.io
                      kind: KubeadmConfigTemplate
                      name: \(cluster.deployment)
                  infrastructureRef:
                    apiGroup: infrastructure.cluster.x-k8s.io
                    kind: KubevirtMachineTemplate
                    name: \(cluster.deployment)
            ---
            apiVersion: cluster.x-k8s.io/v1beta2
            kind: MachineHealthCheck
            metadata:
              name: \(cluster.deployment)
              namespace: \(namespace)
            spec:
              clusterName: \(name)
              selector:
                matchLabels: {pool: md-0}
              checks:
                nodeStartupTimeoutSeconds: 600
                unhealthyNodeConditions:
                - type: Ready
                  status: "False"
                  timeoutSeconds: \(unhealthySeconds)
              remediation:
                triggerIf:
                  unhealthyLessThanOrEqualTo: 40%

            """
    }

    /// Writes the catalog and one file per cluster into `directory`; returns their paths.
    static func write(into directory: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var files = [("catalog.yaml", catalog)]
        files += clusters.map { ("\($0.name).yaml", manifest($0)) }
        return try files.map { name, text in
            let path = (directory as NSString).appendingPathComponent(name)
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            return path
        }
    }
}

/// What kube-sim's effect ledger says the clients (serve's executors) did to the management
/// cluster: the proof that a crash repeated nothing.
struct DemoLedgerCounts: Codable, Equatable {
    /// Every ledger entry, controllers' own status writes included.
    var entries: Int
    var virtualMachinesCreated: Int
    var virtualMachineNames: Int
    /// Names created more than once (must be empty).
    var virtualMachinesCreatedTwice: [String]
    var virtualMachinesDeleted: Int
    var tenantControlPlanesCreated: Int
    /// `namespace/name` → version → how many writes set `spec.kubernetes.version` to it.
    var controlPlaneVersions: [String: [String: Int]]

    /// Each VM created once and each control-plane version applied once.
    var eachEffectOnce: Bool {
        virtualMachinesCreatedTwice.isEmpty && controlPlaneVersions.values.allSatisfy { $0.values.allSatisfy { $0 == 1 } }
    }

    init(_ entries: [LedgerEntry]) {
        self.entries = entries.count
        let client = entries.filter { $0.actor == "client" && $0.cluster == "management" }
        let vmCreates = client.filter { $0.resource == "virtualmachines" && $0.verb == "create" }
        var perName: [String: Int] = [:]
        for entry in vmCreates { perName["\(entry.namespace)/\(entry.name)", default: 0] += 1 }
        virtualMachinesCreated = vmCreates.count
        virtualMachineNames = perName.count
        virtualMachinesCreatedTwice = perName.filter { $0.value > 1 }.keys.sorted()
        virtualMachinesDeleted = client.filter { $0.resource == "virtualmachines" && $0.verb == "delete" }.count
        let controlPlanes = client.filter { $0.resource == "tenantcontrolplanes" }
        tenantControlPlanesCreated = controlPlanes.filter { $0.verb == "create" }.count
        var versions: [String: [String: Int]] = [:]
        for entry in controlPlanes {
            for change in entry.changes where change.path == "spec.kubernetes.version" {
                guard let to = change.to else { continue }
                versions["\(entry.namespace)/\(entry.name)", default: [:]][to, default: 0] += 1
            }
        }
        controlPlaneVersions = versions
    }
}

/// The path of the running `capstan` executable, so the demo runs its own build as children.
func currentExecutablePath() -> String {
    if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return resolved }
    return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
}

/// A child process of the demo; its standard output and error go to files (never a pipe that
/// could fill and stall it).
final class DemoChild {
    let process = Process()

    init(_ executable: String, _ arguments: [String], output: String, error: String, append: Bool) throws {
        for path in [output, error] where !append || !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        let err = output == error ? out : try FileHandle(forWritingTo: URL(fileURLWithPath: error))
        if append {
            out.seekToEndOfFile()
            err.seekToEndOfFile()
        }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    func sigkill() {
        _ = kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Waits for the end without blocking a thread; kills after `timeout`. Returns the exit
    /// status, or nil when it had to be killed.
    func wait(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                sigkill()
                return nil
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// SIGTERM, then the exit status (nil when it had to be killed after `timeout`).
    func terminate(timeout: Duration = .seconds(60)) async -> Int32? {
        process.terminate()
        return await wait(timeout: timeout)
    }
}

/// Seconds with one decimal, for the demo's timeline.
func demoSeconds(_ duration: Duration) -> String {
    formatted(Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18, digits: 1)
}
