import ArgumentParser
import Foundation
import KubeSimKit
import Logging
import ServiceLifecycle

/// `kube-sim`: a simulated management cluster with its workload clusters, over HTTPS.
@main
struct KubeSimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kube-sim",
        abstract: "Serve a simulated Kubernetes management cluster with KubeVirt, Kamaji and workload clusters.",
        discussion: """
            Listens on 127.0.0.1 over HTTPS with a CA made at start, prints
            "kube-sim listening on https://127.0.0.1:PORT" as its first line, writes
            DIR/management.kubeconfig and DIR/ca.crt, and a kubeconfig per workload cluster under
            DIR/clusters/. Stops on SIGTERM or SIGINT. See tools/kube-sim/README.md.
            """)

    @Option(name: .long, help: ArgumentHelp("Directory for kubeconfigs and the CA (made if missing).", valueName: "dir"))
    var stateDir: String

    @Option(name: .long, help: ArgumentHelp("TCP port on 127.0.0.1; 0 picks a free one.", valueName: "port"))
    var port: Int = 0

    @Option(name: .long, help: ArgumentHelp("Seed for uids, tokens, delays and faults.", valueName: "seed"))
    var seed: UInt64?

    @Option(name: .long, help: ArgumentHelp("Management cluster version served at /version.", valueName: "version"))
    var managementVersion: String = "v1.33.4"

    @Option(name: .long, help: ArgumentHelp("VirtualMachine created → ready, in milliseconds.", valueName: "ms"))
    var vmReadyMs: Int?

    @Option(name: .long, help: ArgumentHelp("VirtualMachine ready → Node joined, in milliseconds.", valueName: "ms"))
    var nodeJoinMs: Int?

    @Option(name: .long, help: ArgumentHelp("TenantControlPlane created → Ready, in milliseconds.", valueName: "ms"))
    var controlPlaneProvisionMs: Int?

    @Option(name: .long, help: ArgumentHelp("TenantControlPlane version bump → Ready, in milliseconds.", valueName: "ms"))
    var controlPlaneUpgradeMs: Int?

    @Option(name: .long, help: ArgumentHelp("In-place kubelet update duration, in milliseconds.", valueName: "ms"))
    var inPlaceUpdateMs: Int?

    @Option(name: .long, help: ArgumentHelp("Delay jitter as a fraction (0.25 = up to 25% longer).", valueName: "fraction"))
    var jitter: Double?

    @Option(name: .long, help: ArgumentHelp("Faults as JSON, the shape of PUT /_sim/faults.", valueName: "json"))
    var faults: String?

    @Flag(name: .long, help: "Let the update extension accept minor kubelet upgrades in place.")
    var allowInPlaceMinorUpgrade = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port: \(port) is not between 0 and 65535") }
        for (name, value) in [
            ("--vm-ready-ms", vmReadyMs), ("--node-join-ms", nodeJoinMs),
            ("--control-plane-provision-ms", controlPlaneProvisionMs),
            ("--control-plane-upgrade-ms", controlPlaneUpgradeMs), ("--in-place-update-ms", inPlaceUpdateMs),
        ] {
            if let value, value < 0 { throw ValidationError("\(name): \(value) must not be negative") }
        }
        if let jitter, jitter < 0 { throw ValidationError("--jitter: \(jitter) must not be negative") }
    }

    func makeConfiguration() throws -> KubeSimConfiguration {
        var configuration = KubeSimConfiguration(stateDirectory: stateDir, port: port, seed: seed)
        configuration.managementVersion = managementVersion
        if let vmReadyMs { configuration.delays.virtualMachineReady = .milliseconds(vmReadyMs) }
        if let nodeJoinMs { configuration.delays.nodeJoin = .milliseconds(nodeJoinMs) }
        if let controlPlaneProvisionMs { configuration.delays.controlPlaneProvision = .milliseconds(controlPlaneProvisionMs) }
        if let controlPlaneUpgradeMs { configuration.delays.controlPlaneUpgrade = .milliseconds(controlPlaneUpgradeMs) }
        if let inPlaceUpdateMs { configuration.delays.inPlaceUpdate = .milliseconds(inPlaceUpdateMs) }
        if let jitter { configuration.delays.jitter = jitter }
        configuration.updateExtension.allowMinorUpgrade = allowInPlaceMinorUpgrade
        if let faults {
            do {
                configuration.faults = try FaultConfiguration(json: try JSON.parse(faults))
            } catch {
                throw ValidationError("--faults: \(error)")
            }
        }
        return configuration
    }

    func run() async throws {
        let configuration = try makeConfiguration()
        var logger = Logger(label: "kube-sim")
        logger.logLevel = ProcessInfo.processInfo.environment["KUBE_SIM_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        let service = KubeSimService(configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// Runs kube-sim until graceful shutdown (SIGTERM/SIGINT through the service group).
struct KubeSimService: Service {
    let configuration: KubeSimConfiguration
    let logger: Logger

    func run() async throws {
        let sim = try await KubeSim.start(configuration, logger: logger)
        // One write, unbuffered: the first line is the contract the tests and scripts wait on.
        let banner = "kube-sim listening on \(sim.url)\nkubeconfig: \(sim.managementKubeconfigPath)\nseed: \(sim.seed)\n"
        FileHandle.standardOutput.write(Data(banner.utf8))
        try? await gracefulShutdown()
        await sim.shutdown()
    }
}

