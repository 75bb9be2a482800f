// providers-bench: the Kubernetes client's throughput and latency against kube-sim over HTTPS,
// and kube-sim's memory with a fleet loaded. Results go to docs/benchmarks.md ("Kubernetes client").
import ArgumentParser
import Foundation
import Providers

@main
struct ProvidersBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "providers-bench",
        abstract: "Measure the Kubernetes client against kube-sim over HTTPS.",
        discussion: """
            Spawns kube-sim (the binary next to this one unless --kube-sim is given), then runs GET and
            server-side apply with --concurrency requests in flight for --seconds each, and prints
            requests/s with p50/p99 latency. Then loads --clusters control planes of --machines VMs each
            and reports kube-sim's resident memory (VmRSS from /proc/PID/status).
            """)

    @Option(name: .long, help: ArgumentHelp("Requests in flight.", valueName: "n"))
    var concurrency = 64

    @Option(name: .long, help: ArgumentHelp("Seconds per throughput phase.", valueName: "s"))
    var seconds = 10.0

    @Option(name: .long, help: ArgumentHelp("Control planes to load for the memory figure (0 skips it).", valueName: "n"))
    var clusters = 1000

    @Option(name: .long, help: ArgumentHelp("VirtualMachines per control plane.", valueName: "n"))
    var machines = 6

    @Option(name: .long, help: ArgumentHelp("Path of the kube-sim executable.", valueName: "path"))
    var kubeSim: String?

    @Option(name: .long, help: ArgumentHelp("Seed passed to kube-sim.", valueName: "seed"))
    var seed: UInt64 = 1

    mutating func validate() throws {
        guard concurrency >= 1 && concurrency <= 4096 else { throw ValidationError("--concurrency: 1...4096") }
        guard seconds > 0 else { throw ValidationError("--seconds: must be positive") }
        guard clusters >= 0, machines >= 0 else { throw ValidationError("--clusters/--machines: not negative") }
    }

    func run() async throws {
        let executable = kubeSim ?? Self.siblingExecutable("kube-sim")
        let server = try SpawnedKubeSim(executable: executable, seed: seed)
        defer { server.stop() }
        let client = try KubernetesClient(kubeconfigPath: server.kubeconfigPath)
        print("kube-sim \(server.url) pid \(server.pid), RSS at start \(server.residentKiB() ?? 0) KiB")
        print("concurrency \(concurrency), \(seconds) s per phase, \(ProcessInfo.processInfo.activeProcessorCount) cores")

        // GET: one object read over and over.
        _ = try await client.apply(
            .configMaps, name: "bench", Self.configMap(name: "bench", value: "0"), namespace: "default",
            as: RawObject.self)
        let get = try await measure(client) { client, _, _ in
            _ = try await client.get(.configMaps, name: "bench", namespace: "default", as: RawObject.self)
        }
        print("get    " + get.summary)

        // Server-side apply: each worker owns one object and changes a field every time (a real write).
        let apply = try await measure(client) { client, worker, iteration in
            _ = try await client.apply(
                .configMaps, name: "bench-\(worker)", Self.configMap(name: "bench-\(worker)", value: "\(iteration)"),
                namespace: "default", as: RawObject.self)
        }
        print("apply  " + apply.summary)

        if clusters > 0 {
            let before = server.residentKiB() ?? 0
            let loadStart = ContinuousClock.now
            try await loadFleet(client)
            let loaded = ContinuousClock.now - loadStart
            let ready = try await waitForNodes(client, expected: clusters * machines)
            let after = server.residentKiB() ?? 0
            print(
                "fleet  \(clusters) clusters x \(machines) machines loaded in \(String(format: "%.1f", Double(loaded.components.seconds) + Double(loaded.components.attoseconds) / 1e18)) s, nodes joined: \(ready); kube-sim RSS \(before / 1024) MiB before, \(after / 1024) MiB after"
            )
        }
    }

    struct Result {
        var requests: Int
        var elapsed: Duration
        var latenciesNanoseconds: [Int64]

        var summary: String {
            let sorted = latenciesNanoseconds.sorted()
            func percentile(_ p: Double) -> String {
                guard !sorted.isEmpty else { return "-" }
                let value = sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
                return String(format: "%.2f ms", Double(value) / 1e6)
            }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return String(format: "%8.0f req/s", Double(requests) / seconds) + "  p50 \(percentile(0.5))  p99 \(percentile(0.99))  (\(requests) requests)"
        }
    }

    /// Runs `operation` from `concurrency` workers for `seconds`, timing each call.
    func measure(
        _ client: KubernetesClient,
        _ operation: @escaping @Sendable (KubernetesClient, Int, Int) async throws -> Void
    ) async throws -> Result {
        let clock = ContinuousClock()
        // A short warm-up opens the connections and fills curl's pools.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency { group.addTask { try await operation(client, worker, 0) } }
            try await group.waitForAll()
        }
        let deadline = clock.now + .milliseconds(Int64(seconds * 1000))
        let start = clock.now
        let latencies = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var mine: [Int64] = []
                    mine.reserveCapacity(1 << 16)
                    var iteration = 1
                    while clock.now < deadline {
                        let began = clock.now
                        try await operation(client, worker, iteration)
                        let took = clock.now - began
                        mine.append(took.components.seconds * 1_000_000_000 + took.components.attoseconds / 1_000_000_000)
                        iteration += 1
                    }
                    return mine
                }
            }
            var all: [Int64] = []
            for try await part in group { all.append(contentsOf: part) }
            return all
        }
        return Result(requests: latencies.count, elapsed: clock.now - start, latenciesNanoseconds: latencies)
    }

    /// Creates `clusters` TenantControlPlanes and `machines` VMs (with bootstrap Secrets) for each.
    func loadFleet(_ client: KubernetesClient) async throws {
        let kamaji = KamajiProvider(client: client)
        let kubevirt = KubeVirtProvider(client: client)
        let clusters = self.clusters
        let machines = self.machines
        let concurrency = self.concurrency
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func addCluster(_ index: Int, _ group: inout ThrowingTaskGroup<Void, any Error>) {
                group.addTask {
                    let name = "fleet-\(index)"
                    try await kamaji.ensureControlPlane(
                        name: name, namespace: "default", version: "v1.33.0", key: IdempotencyKey("\(name)/cp"))
                    var generator = SystemRandomNumberGenerator()
                    for machine in 0..<machines {
                        let vm = "\(name)-md-\(machine)"
                        let join = KubeadmJoin(
                            apiServerEndpoint: "127.0.0.1:6443", token: BootstrapToken.generate(using: &generator),
                            caCertHashes: [], nodeName: vm, kubeletVersion: "v1.33.0")
                        try await client.ensureBootstrapSecret(
                            name: "\(vm)-userdata", namespace: "default", join: join, clusterName: name,
                            key: IdempotencyKey("\(vm)/bootstrap"))
                        try await kubevirt.ensureVirtualMachine(
                            .init(
                                name: vm, namespace: "default", clusterName: name, cpuCores: 2, memory: "4Gi",
                                bootstrapSecretName: "\(vm)-userdata"),
                            key: IdempotencyKey("\(vm)/vm"))
                    }
                }
            }
            while next < min(clusters, concurrency) {
                addCluster(next, &group)
                next += 1
            }
            while try await group.next() != nil {
                if next < clusters {
                    addCluster(next, &group)
                    next += 1
                }
            }
        }
    }

    private struct ClusterSummary: Decodable { var nodes: Int? }
    private struct ClusterPage: Decodable { var clusters: [ClusterSummary]? }

    /// Waits (up to 5 minutes) until the workload clusters report `expected` nodes in all; returns the count seen.
    func waitForNodes(_ client: KubernetesClient, expected: Int) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(300)
        var seen = 0
        while ContinuousClock.now < deadline {
            let response = try await client.getRaw(path: "/_sim/clusters")
            if let page = try? JSONDecoder().decode(ClusterPage.self, from: Data(response.body)) {
                seen = (page.clusters ?? []).reduce(0) { $0 + ($1.nodes ?? 0) }
            }
            if seen >= expected { return seen }
            try await Task.sleep(for: .milliseconds(500))
        }
        return seen
    }

    static func configMap(name: String, value: String) -> RawObject {
        RawObject(
            apiVersion: "v1", kind: "ConfigMap", metadata: ObjectMeta(name: name, namespace: "default"),
            fields: ["data": ["value": .string(value)]])
    }

    static func siblingExecutable(_ name: String) -> String {
        let own = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        return own.deletingLastPathComponent().appendingPathComponent(name).path
    }
}

/// kube-sim as a child process on a fresh state directory.
final class SpawnedKubeSim {
    let process = Process()
    let stateDirectory: String
    let url: String
    var pid: Int32 { process.processIdentifier }
    var kubeconfigPath: String { stateDirectory + "/management.kubeconfig" }

    init(executable: String, seed: UInt64) throws {
        stateDirectory = NSTemporaryDirectory() + "providers-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "--state-dir", stateDirectory, "--seed", "\(seed)", "--vm-ready-ms", "0", "--node-join-ms", "0",
            "--control-plane-provision-ms", "0",
        ]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        // The first line is `kube-sim listening on https://127.0.0.1:PORT`.
        var line: [UInt8] = []
        let handle = output.fileHandleForReading
        while !line.contains(0x0A) {
            let chunk = handle.availableData
            guard !chunk.isEmpty else { break }
            line.append(contentsOf: chunk)
        }
        let first = String(decoding: line.prefix { $0 != 0x0A }, as: UTF8.self)
        guard let range = first.range(of: "https://") else {
            process.terminate()
            throw ValidationError("kube-sim did not print its address (got \"\(first)\")")
        }
        url = String(first[range.lowerBound...])
    }

    /// VmRSS in KiB, from /proc/PID/status.
    func residentKiB() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: stateDirectory)
    }
}
