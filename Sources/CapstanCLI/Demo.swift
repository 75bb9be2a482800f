import ArgumentParser
import Engine
import EventLog
import Fleet
import Foundation
import KubeSimKit
import Logging
import Providers
import Workflows

/// `capstan demo`: the whole product in one command, on its embedded default (kube-sim).
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the whole product once: kube-sim, a fleet from manifests, serve, a chained upgrade through a crash.",
        discussion: """
            Starts kube-sim (a simulated management cluster: KubeVirt, Kamaji, workload clusters; \
            HTTPS with its own CA) inside this process and writes its kubeconfig into the data \
            directory (mode 0600; the credential is never printed). Writes a small fleet of \
            Cluster API manifests (two clusters with Kamaji control planes at v1.33, KubeVirt \
            workers, a MachineHealthCheck each, a VersionCatalog v1.33 → v1.36) and applies them \
            with `capstan apply`. Runs `capstan serve` as a child process and shows the clusters \
            being provisioned; then `capstan upgrade` to v1.36 with live progress (the step, \
            machines rolled out of total, the current wait), SIGKILLs serve midway and starts it \
            again, and prints kube-sim's ledger: each VirtualMachine created once, each \
            control-plane version applied once. Then it makes a node unhealthy and shows the \
            remediation, shows the fleet and a short history, stops serve and leaves the data \
            directory for you to query. About a minute.

            A step whose part of Capstan is not in this build is named and skipped, never faked.

            The data directory (default ./capstan-demo; CAPSTAN_DATA_DIR is ignored so the demo \
            never writes into a real log) must be new or empty.

            Exit codes: 0 the demo ran and every effect happened once; 1 a check failed (an \
            effect applied twice, a workflow failed or did not finish); otherwise `error: …` \
            says why the demo could not run (a data directory that is not empty, say).

            Examples:
              capstan demo
              capstan demo --data-dir /tmp/capstan-demo -o json
            """)

    @Option(
        name: .customLong("data-dir"),
        help: ArgumentHelp("A new or empty directory for the demo's log, kube-sim's files and the manifests.", valueName: "dir"))
    var dataDirectory = "./capstan-demo"

    @Option(
        name: [.customShort("o"), .long],
        help: ArgumentHelp("text: the story as it happens; json: the story on standard error, a summary on standard output.",
                           valueName: "format"))
    var output: OutputFormat = .text

    @Option(help: ArgumentHelp("Seeds kube-sim (uids, tokens, delays).", valueName: "seed"))
    var seed: UInt64 = 2026

    func run() async throws {
        try await reportingFailures {
            let run = DemoRun(directory: dataDirectory, json: output == .json, seed: seed)
            let passed = try await run.run()
            if output == .json { try printJSON(run.summary) }
            if !passed { throw ExitCode(1) }
        }
    }
}

/// What `capstan demo -o json` prints: each step, and kube-sim's ledger counts.
struct DemoSummary: Codable {
    struct Step: Codable {
        var name: String
        /// `done`, `skipped` (its part is not in this build), or `failed`.
        var status: String
        var detail: String
    }
    var dataDirectory: String
    var kubeSim: String = ""
    var steps: [Step] = []
    var serveStarts = 0
    var serveKills = 0
    var recoveredWorkflows: Int?
    var ledger: DemoLedgerCounts?
    var seconds: Double = 0
}

/// One run of the demo: the story, step by step.
final class DemoRun {
    let directory: String
    let json: Bool
    let seed: UInt64
    let began = ContinuousClock.now
    let executable = currentExecutablePath()
    private(set) var summary: DemoSummary
    private var sim: KubeSim?
    private var serve: DemoChild?
    private var reader: EventLogReader?
    private var passed = true

    init(directory: String, json: Bool, seed: UInt64) {
        self.directory = directory
        self.json = json
        self.seed = seed
        summary = DemoSummary(dataDirectory: directory)
    }

    private var simDirectory: String { (directory as NSString).appendingPathComponent("kube-sim") }
    private var manifestDirectory: String { (directory as NSString).appendingPathComponent("manifests") }
    private var outputDirectory: String { (directory as NSString).appendingPathComponent("demo-output") }
    private var serveLog: String { (directory as NSString).appendingPathComponent("serve.log") }

    // MARK: the story

    /// Runs the demo; false when a check failed.
    func run() async throws -> Bool {
        try prepareDirectory()
        var configuration = KubeSimConfiguration(stateDirectory: simDirectory, port: 0, seed: seed)
        // Slow enough to watch (and for the SIGKILL to land mid-chain), quick enough for a minute.
        configuration.delays.virtualMachineReady = .milliseconds(1500)
        configuration.delays.nodeJoin = .milliseconds(500)
        configuration.delays.controlPlaneProvision = .milliseconds(2000)
        configuration.delays.controlPlaneUpgrade = .milliseconds(2500)
        configuration.delays.jitter = 0.2
        var simLogger = Logger(label: "kube-sim")
        simLogger.logLevel = .error
        let sim = try await KubeSim.start(configuration, logger: simLogger)
        self.sim = sim
        summary.kubeSim = sim.url
        do {
            try await story(sim)
        } catch {
            _ = await stopServe()
            await sim.shutdown()
            throw error
        }
        await sim.shutdown()
        summary.seconds = Double((ContinuousClock.now - began).components.seconds)
        return passed
    }

    private func story(_ sim: KubeSim) async throws {
        say("capstan demo: the whole product in one run, in \(directory)")
        say("")
        say("1. kube-sim: a simulated management cluster (KubeVirt, Kamaji) at \(sim.url), inside this process")
        say("   HTTPS with its own CA; kubeconfig \(sim.managementKubeconfigPath) (mode 0600, not shown)")
        record("kube-sim", "done", sim.url)

        say("")
        say("2. apply: two clusters at \(DemoFleet.startVersion) (Kamaji control planes, KubeVirt workers, a health check each)")
        let files = try DemoFleet.write(into: manifestDirectory)
        say("   wrote \(files.map { ($0 as NSString).lastPathComponent }.joined(separator: ", ")) to \(manifestDirectory)")
        let apply = try await capstan(["apply", "-f", manifestDirectory, "--data-dir", directory])
        guard apply.status == 0 else {
            fail("apply", "capstan apply exited \(apply.status.map(String.init) ?? "on a timeout")")
            return
        }
        record("apply", "done", "\(apply.stdout.split(separator: "\n").count) objects")
        reader = try openReader(directory)

        say("")
        say("3. serve: `capstan serve` as a child process, against kube-sim")
        try await startServe()

        say("")
        say("4. provision")
        let provisioned = try await provision()

        say("")
        say("5. upgrade to \(DemoFleet.targetVersion), with serve SIGKILLed midway")
        var upgraded = false
        if provisioned { upgraded = try await upgrade() } else {
            record("upgrade", "skipped", "nothing was provisioned to upgrade")
            say("   skipped: nothing was provisioned to upgrade")
        }

        say("")
        say("6. kube-sim's ledger: what the clusters were actually asked to do")
        let counts = DemoLedgerCounts(sim.ledger.entries())
        printLedger(counts)
        summary.ledger = counts
        if !counts.eachEffectOnce { fail("ledger", "an effect was applied more than once") } else {
            record("ledger", "done", "each VirtualMachine created once, each control-plane version applied once")
        }

        say("")
        say("7. remediation: a node turns NotReady")
        if upgraded || provisioned {
            do { try await remediate(sim) } catch is DemoSkip {
                let reason =
                    "serve recorded no health-check verdict and started no Remediate workflow within "
                    + "\(DemoFleet.unhealthySeconds + 30) s: its fleet controller does not evaluate MachineHealthChecks in this build"
                record("remediation", "skipped", reason)
                say("   skipped: \(reason)")
            }
        } else {
            record("remediation", "skipped", "no machines were provisioned")
            say("   skipped: no machines were provisioned")
        }
        summary.ledger = DemoLedgerCounts(sim.ledger.entries())

        say("")
        say("8. the fleet as the log tells it")
        try await show()

        say("")
        let status = await stopServe()
        say("serve stopped with SIGTERM (exit \(status.map(String.init) ?? "none: killed after 60 s")); kube-sim ends with this process")
        let verify = try await capstan(["log", "verify", "--data-dir", directory])
        if verify.status != 0 { fail("verify", "capstan log verify exited \(verify.status.map(String.init) ?? "on a timeout")") }
        say("")
        say("the data directory stays: \(directory)  (serve.log, manifests/, kube-sim/; the log itself)")
        say("next:")
        for command in nextCommands() { say("  \(command)") }
        say(passed ? "demo: OK in \(demoSeconds(ContinuousClock.now - began)) s" : "demo: FAILED (see above)")
    }

    // MARK: steps

    private func provision() async throws -> Bool {
        let clusters = DemoFleet.clusters.map { "\(DemoFleet.namespace)/\($0.name)" }
        // The fleet controller inside serve turns the applied clusters into CreateCluster workflows.
        let gate = ContinuousClock.now + .seconds(30)
        var creates: [String: WorkflowStatusReport] = [:]
        while ContinuousClock.now < gate {
            creates = try lifecycleWorkflows(type: CreateCluster.type)
            if creates.count == clusters.count { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        if creates.isEmpty {
            let reason =
                "serve started no workflow for the applied clusters within 30 s: the fleet controller "
                + "(desired state → workflows) is not in this build"
            record("provision", "skipped", reason)
            say("   skipped: \(reason)")
            return false
        }
        var watch = DemoWatch()
        var endedAt: ContinuousClock.Instant?
        let finished = try await watch.run(self, timeout: .seconds(300)) {
            creates = try self.lifecycleWorkflows(type: CreateCluster.type)
            var lines: [String: DemoWatch.Line] = [:]
            for cluster in try FleetView.clusters(self.reader!) {
                let key = "\(cluster.namespace)/\(cluster.name)"
                let ready = cluster.deployments.reduce(0) { $0 + $1.readyMachines }
                let desired = cluster.deployments.reduce(0) { $0 + $1.replicas }
                let text = "control plane \(cluster.controlPlane.installedVersion?.description ?? "-") "
                    + "\(cluster.controlPlane.status ?? "not observed"), workers \(ready)/\(desired) ready"
                var line = DemoWatch.Line(text: text)
                if let workflow = creates[key] {
                    line.text += "; \(workflow.record.type) \(workflow.record.status.rawValue)"
                    if workflow.record.status == .running {
                        line.wait = workflow.view.waitingOn
                        line.since = workflow.view.since
                    }
                }
                lines[cluster.name] = line
            }
            // Done once every CreateCluster ended and the observed fleet shows it all.
            let ended = clusters.allSatisfy { creates[$0]?.record.isFinished == true }
            return (lines, try ended && self.settled(at: nil, since: &endedAt))
        }
        guard finished else {
            fail("provision", "the clusters were not provisioned within 300 s")
            return false
        }
        let failed = creates.values.filter { $0.record.status != .completed }
        if !failed.isEmpty {
            fail("provision", failed.map { "\($0.record.workflowID) \($0.record.status.rawValue): \($0.record.result ?? "")" }
                .joined(separator: "; "))
            return false
        }
        record("provision", "done", "\(clusters.count) clusters, \(DemoFleet.machines) machines")
        return true
    }

    private func upgrade() async throws -> Bool {
        guard FleetRuntime.workflows.contains(where: { $0.type == ChainedUpgrade.type }) else {
            let reason = "serve in this build does not run \(ChainedUpgrade.type) (not in FleetRuntime.workflows)"
            record("upgrade", "skipped", reason)
            say("   skipped: \(reason)")
            return false
        }
        for cluster in DemoFleet.clusters {
            let result = try await capstan(["upgrade", cluster.name, "--to", DemoFleet.targetVersion, "--data-dir", directory])
            guard result.status == 0 else {
                fail("upgrade", "capstan upgrade \(cluster.name) exited \(result.status.map(String.init) ?? "on a timeout")")
                return false
            }
        }
        let clusters = DemoFleet.clusters.map { "\(DemoFleet.namespace)/\($0.name)" }
        var killed = false
        var chains: [String: WorkflowStatusReport] = [:]
        var watch = DemoWatch()
        var endedAt: ContinuousClock.Instant?
        let finished = try await watch.run(self, timeout: .seconds(400)) {
            chains = try self.lifecycleWorkflows(type: ChainedUpgrade.type)
            var lines: [String: DemoWatch.Line] = [:]
            var midway: String?
            for cluster in try FleetView.clusters(self.reader!) {
                let key = "\(cluster.namespace)/\(cluster.name)"
                guard let chain = chains[key] else { continue }
                let total = cluster.deployments.reduce(0) { $0 + $1.replicas }
                let rolled = cluster.deployments.reduce(0) { $0 + ($1.versions[DemoFleet.targetVersion] ?? 0) }
                let machines = "machines \(rolled)/\(total) at \(DemoFleet.targetVersion)"
                let progress = try? chain.progress(as: ChainedUpgrade.Progress.self)
                if chain.record.isFinished || progress == nil {
                    let installed = cluster.controlPlane.installedVersion?.description ?? "-"
                    lines[cluster.name] = DemoWatch.Line(
                        text: "\(chain.record.type) \(chain.record.status.rawValue): control plane \(installed), \(machines)")
                    continue
                }
                guard let progress else { continue }
                var text = "step \(progress.step)/\(progress.steps) \(progress.description.isEmpty ? "planning" : progress.description)"
                    + " (\(progress.phase.rawValue)), control plane \(progress.controlPlaneVersion ?? "-"), \(machines)"
                if let reason = progress.reason { text += " [\(reason)]" }
                lines[cluster.name] = DemoWatch.Line(
                    text: text, wait: progress.waitingOn.isEmpty ? nil : progress.waitingOn, since: progress.since ?? chain.view.since)
                if !killed, progress.step >= 2 { midway = "\(cluster.name) step \(progress.step)/\(progress.steps)" }
            }
            if let midway {
                killed = true
                return (lines, false, { try await self.crashAndRestart(during: midway) })
            }
            let ended = clusters.allSatisfy { chains[$0]?.record.isFinished == true }
            return (lines, try ended && self.settled(at: DemoFleet.targetVersion, since: &endedAt), nil)
        }
        guard finished else {
            fail("upgrade", "the upgrades did not finish within 400 s")
            return false
        }
        if !killed { fail("crash", "the upgrade ended before the demo could SIGKILL serve midway") }
        let failed = chains.values.filter { $0.record.status != .completed }
        if !failed.isEmpty {
            fail("upgrade", failed.map { "\($0.record.workflowID) \($0.record.status.rawValue): \($0.record.result ?? "")" }
                .joined(separator: "; "))
            return false
        }
        record("upgrade", "done", "\(clusters.count) clusters at \(DemoFleet.targetVersion)")
        return true
    }

    /// After the workflows ended: whether the observation caught up (serve observes the
    /// clusters on its own tick), waiting at most 20 s, after which the demo goes on and says so.
    private func settled(at version: String?, since endedAt: inout ContinuousClock.Instant?) throws -> Bool {
        if try fleetSettled(at: version) { return true }
        let now = ContinuousClock.now
        guard let ended = endedAt else {
            endedAt = now
            return false
        }
        guard now - ended >= .seconds(20) else { return false }
        say("   note: 20 s after the workflows ended, serve's observation of the fleet still differs from the desired state")
        return true
    }

    /// Whether the observed fleet shows every cluster's control plane ready (at `version`
    /// when given) and exactly its replicas of machines, all ready (at `version`).
    private func fleetSettled(at version: String?) throws -> Bool {
        try FleetView.clusters(reader!).allSatisfy { cluster in
            let controlPlane = cluster.controlPlane
            guard controlPlane.ready, version == nil || controlPlane.installedVersion?.description == version else { return false }
            return cluster.deployments.allSatisfy { deployment in
                deployment.machines == deployment.replicas && deployment.readyMachines == deployment.replicas
                    && (version == nil || deployment.versions[version!] == deployment.replicas)
            }
        }
    }

    /// The engine's wording of a wait, with a timer's instant as seconds from now.
    static func readable(_ waitingOn: String) -> String {
        guard let range = waitingOn.range(of: #"fires at -?[0-9]+ns"#, options: .regularExpression) else { return waitingOn }
        let digits = waitingOn[range].dropFirst("fires at ".count).dropLast(2)
        guard let at = Int64(digits) else { return waitingOn }
        let seconds = Double(at - Int64(Date().timeIntervalSince1970 * 1e9)) / 1e9
        return waitingOn.replacingCharacters(in: range, with: "fires in \(formatted(max(0, seconds), digits: 0)) s")
    }

    /// SIGKILL serve wherever it is, then start it again: the log and its snapshots are all it needs.
    private func crashAndRestart(during moment: String) async throws {
        guard let serve else { return }
        let running = try reader!.stateEntries(withPrefix: StateKey.runningPrefix).count
        let pid = serve.pid
        serve.sigkill()
        summary.serveKills += 1
        say("   [\(elapsed())] SIGKILL capstan serve (pid \(pid)) during \(moment), with \(running) workflows running")
        try await Task.sleep(for: .seconds(1))
        try await startServe()
        let recovered = recoveredCount()
        summary.recoveredWorkflows = recovered
        say("   [\(elapsed())] the new serve recovered \(recovered.map(String.init) ?? "?") unfinished workflows from the log and carries on")
        record("crash", "done", "SIGKILL during \(moment); \(recovered.map(String.init) ?? "?") workflows recovered")
    }

    private func remediate(_ sim: KubeSim) async throws {
        let remediateType = "Remediate"
        guard FleetRuntime.workflows.contains(where: { $0.type == remediateType }) else {
            let reason = "serve in this build does not run a \(remediateType) workflow (MachineHealthCheck remediation is not in it)"
            record("remediation", "skipped", reason)
            say("   skipped: \(reason)")
            return
        }
        let cluster = DemoFleet.clusters[0]
        let fleet = try FleetView.clusters(reader!, namespace: DemoFleet.namespace)
        // The newest Ready machine: right after an upgrade the projection may still list a
        // replaced machine whose Node is gone (the controller records its deletion next pass).
        let ready = (fleet.first(where: { $0.name == cluster.name })?.machines ?? []).filter {
            $0.phase == "Running" && $0.conditions["Ready"]?.status == "True"
        }
        guard let machine = ready.max(by: {
            (MachineNaming.ordinal(of: $0.name, deployment: $0.deployment) ?? 0) < (MachineNaming.ordinal(of: $1.name, deployment: $1.deployment) ?? 0)
        })?.name else {
            fail("remediation", "no ready machine of \(cluster.name) observed to make unhealthy")
            return
        }
        let before = Set(try workflows(type: remediateType).map(\.report.record.workflowID))
        let mark = Int64(sim.ledger.count)
        let client = try KubernetesClient(kubeconfigPath: sim.managementKubeconfigPath)
        struct NodeReadiness: Encodable { var cluster: String, node: String, ready: Bool }
        let body = Payload.encode(NodeReadiness(cluster: "\(DemoFleet.namespace)/\(cluster.name)", node: machine, ready: false))
        _ = try await client.send(
            method: "POST", path: "/_sim/node-readiness", body: Array(body.utf8), contentType: "application/json",
            idempotent: true)
        say("   [\(elapsed())] node \(machine) of \(cluster.name) reports Ready=False (the health check allows \(DemoFleet.unhealthySeconds) s)")
        let audited = try FleetView.audit(reader!, namespace: DemoFleet.namespace, cluster: cluster.name).count
        // Serve's health checks record their verdict (RemediationDecided / RemediationSkipped)
        // and start a Remediate workflow; if neither shows, serve does not evaluate them.
        let gate = ContinuousClock.now + .seconds(DemoFleet.unhealthySeconds + 30)
        var shownVerdicts = 0
        var watch = DemoWatch()
        var outcome: WorkflowStatusReport?
        let finished = try await watch.run(self, timeout: .seconds(DemoFleet.unhealthySeconds + 180)) {
            let verdicts = try FleetView.audit(self.reader!, namespace: DemoFleet.namespace, cluster: cluster.name)
                .dropFirst(audited).filter { $0.event.hasPrefix("Remediation") }
            for verdict in verdicts.dropFirst(shownVerdicts) { self.sayAt("\(cluster.name): \(verdict.event): \(verdict.summary)") }
            shownVerdicts = verdicts.count
            let runs = try self.workflows(type: remediateType).map(\.report).filter { !before.contains($0.record.workflowID) }
            guard let run = runs.sorted(by: { $0.record.workflowID < $1.record.workflowID }).first else {
                if verdicts.isEmpty && ContinuousClock.now > gate { throw DemoSkip() }
                return ([:], false)
            }
            outcome = run
            var line = DemoWatch.Line(text: "\(run.record.type) \(run.record.workflowID) \(run.record.status.rawValue)")
            if !run.record.isFinished {
                line.wait = run.view.waitingOn
                line.since = run.view.since
            }
            return ([cluster.name: line], run.record.isFinished)
        }
        guard finished, let run = outcome else {
            fail("remediation", "no remediation of \(machine) finished within \(DemoFleet.unhealthySeconds + 180) s")
            return
        }
        let changes = DemoLedgerCounts(sim.ledger.entries(after: mark))
        guard run.record.status == .completed else {
            fail("remediation", "\(run.record.workflowID) \(run.record.status.rawValue): \(run.record.result ?? "")")
            return
        }
        say("   ledger since the node went NotReady: \(changes.virtualMachinesCreated) VirtualMachine created, "
            + "\(changes.virtualMachinesDeleted) deleted")
        record("remediation", "done", "\(machine) replaced by \(run.record.workflowID)")
    }

    private func show() async throws {
        let first = DemoFleet.clusters[0].name
        _ = try await capstan(["get", "clusters", "--data-dir", directory])
        let commands = availableCommands()
        for (command, arguments) in [("describe", ["describe", "cluster", first]), ("history", ["history", "cluster", first])] {
            guard commands.contains(command) else {
                say("   skipped `capstan \(arguments.joined(separator: " "))`: that command is not in this build")
                record(command, "skipped", "`capstan \(command)` is not in this build")
                continue
            }
            let result = try await capstan(arguments + ["--data-dir", directory], lines: command == "history" ? 25 : nil)
            record(command, result.status == 0 ? "done" : "failed", "exit \(result.status.map(String.init) ?? "timeout")")
        }
    }

    private func printLedger(_ counts: DemoLedgerCounts) {
        say("   \(counts.entries) entries in all (controllers' status writes included); writes by serve's executors:")
        say(
            "   VirtualMachines created: \(counts.virtualMachinesCreated) (\(counts.virtualMachineNames) distinct names"
                + (counts.virtualMachinesCreatedTwice.isEmpty ? ", none twice" : "; TWICE: \(counts.virtualMachinesCreatedTwice.joined(separator: ", "))")
                + "), deleted: \(counts.virtualMachinesDeleted)")
        say("   TenantControlPlanes created: \(counts.tenantControlPlanesCreated)")
        for (cluster, versions) in counts.controlPlaneVersions.sorted(by: { $0.key < $1.key }) {
            let applied = versions.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
            say("   control-plane version set on \(cluster): \(applied)")
        }
    }

    private func nextCommands() -> [String] {
        let commands = availableCommands()
        let first = DemoFleet.clusters[0].name
        var next = ["capstan get clusters --data-dir \(directory)"]
        if commands.contains("describe") { next.append("capstan describe cluster \(first) --data-dir \(directory)") }
        if commands.contains("history") { next.append("capstan history cluster \(first) --data-dir \(directory)") }
        if commands.contains("workflow") { next.append("capstan workflow list --data-dir \(directory)") }
        next += [
            "capstan log export --data-dir \(directory) | head",
            "capstan log stats --data-dir \(directory)",
            "capstan serve --data-dir \(directory) --kubeconfig KUBECONFIG   (against a cluster of yours)",
        ]
        return next
    }

    // MARK: serve

    private func startServe() async throws {
        let starts = startedLines()
        let child = try DemoChild(
            executable,
            ["serve", "--data-dir", directory, "--kubeconfig", sim!.managementKubeconfigPath, "--log-level", "info"]
                + Self.quickPolls,
            output: serveLog, error: serveLog, append: true)
        serve = child
        summary.serveStarts += 1
        let deadline = ContinuousClock.now + .seconds(60)
        while startedLines() == starts {
            guard child.isRunning else {
                throw CommandFailure("capstan serve exited at once (status \(child.process.terminationStatus)); see \(serveLog)")
            }
            guard ContinuousClock.now < deadline else { throw CommandFailure("capstan serve did not start within 60 s; see \(serveLog)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        say("   [\(elapsed())] capstan serve running as pid \(child.pid) (its log: \(serveLog))")
    }

    /// Serve's reconcile and workflow polls every 250 ms (kube-sim answers at once), when this
    /// build's serve has the option.
    static let quickPolls: [String] = {
        let option = ["--poll-interval", "250"]
        return (try? Serve.parse(["--kubeconfig", "-"] + option)) == nil ? [] : option
    }()

    private func stopServe() async -> Int32? {
        guard let serve, serve.isRunning else { return nil }
        self.serve = nil
        return await serve.terminate()
    }

    private func startedLines() -> Int {
        let text = (try? String(contentsOfFile: serveLog, encoding: .utf8)) ?? ""
        return text.components(separatedBy: "serve.started").count - 1
    }

    /// `engine.recovered=N` of serve's latest start line.
    private func recoveredCount() -> Int? {
        let text = (try? String(contentsOfFile: serveLog, encoding: .utf8)) ?? ""
        guard let line = text.split(separator: "\n").last(where: { $0.contains("serve.started") }),
            let range = line.range(of: "engine.recovered=")
        else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    // MARK: reading the log

    /// Every workflow of `type`, running or finished, with the cluster its input names.
    private func workflows(type: String) throws -> [(cluster: String, report: WorkflowStatusReport)] {
        struct Target: Decodable { var cluster: Activities.ClusterRef }
        var found: [(String, WorkflowStatusReport)] = []
        for prefix in [StateKey.finishedPrefix, StateKey.runningPrefix] {
            for (key, value) in try reader!.stateEntries(withPrefix: prefix) {
                let report = try WorkflowStatusReport(snapshot: value, key: key)
                guard report.record.type == type,
                    let target = try? Payload.decode(Target.self, from: report.record.input, field: "input")
                else { continue }
                found.append(("\(target.cluster.namespace)/\(target.cluster.name)", report))
            }
        }
        return found
    }

    /// The top-level workflows of `type` keyed by `namespace/cluster` (a running one wins).
    private func lifecycleWorkflows(type: String) throws -> [String: WorkflowStatusReport] {
        var found: [String: WorkflowStatusReport] = [:]
        for (cluster, report) in try workflows(type: type) where report.record.parentID == nil { found[cluster] = report }
        return found
    }

    // MARK: output

    private func say(_ line: String) {
        // Unbuffered, so the story shows as it happens even when piped.
        if json { printError(line) } else { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
    }

    /// A timeline line: `   [ 12.3 s] text`.
    func sayAt(_ text: String) { say("   [\(elapsed())] \(text)") }

    private func elapsed() -> String {
        let text = demoSeconds(ContinuousClock.now - began)
        return String(repeating: " ", count: max(0, 5 - text.count)) + text + " s"
    }

    private func record(_ name: String, _ status: String, _ detail: String) {
        summary.steps.append(.init(name: name, status: status, detail: detail))
    }

    private func fail(_ name: String, _ detail: String) {
        passed = false
        record(name, "failed", detail)
        say("   FAILED \(name): \(detail)")
    }

    /// Runs `capstan ARGS` (this executable) to its end and shows it as a shell would.
    private func capstan(_ arguments: [String], lines: Int? = nil) async throws -> (status: Int32?, stdout: String) {
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        let base = (outputDirectory as NSString).appendingPathComponent(arguments.prefix(2).joined(separator: "-"))
        let child = try DemoChild(executable, arguments, output: base + ".out", error: base + ".err", append: false)
        let status = await child.wait(timeout: .seconds(120))
        let out = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
        say("   $ capstan \(arguments.joined(separator: " "))")
        var shown = out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if shown.last == "" { shown.removeLast() }
        if let lines, shown.count > lines { shown = shown.prefix(lines) + ["… (\(shown.count - lines) more lines)"] }
        for line in shown + err.split(separator: "\n").map(String.init) { say("     \(line)") }
        return (status, out)
    }

    private func availableCommands() -> Set<String> {
        Set(Capstan.configuration.subcommands.map { $0._commandName })
    }

    /// The directory must be new or empty: the demo never writes into a log it did not make.
    private func prepareDirectory() throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw CommandFailure("--data-dir \(directory): is a file, not a directory") }
            let contents = try FileManager.default.contentsOfDirectory(atPath: directory)
            guard contents.isEmpty else {
                throw CommandFailure(
                    "--data-dir \(directory): not empty (an earlier demo's?); remove it (rm -r \(directory)) "
                        + "or give another --data-dir; nothing was written")
            }
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }
}

/// Prints one line per cluster whenever it changes (as `--watch` does when piped), and again
/// every few seconds while it waits, with how long the current wait has lasted.
struct DemoWatch {
    struct Line {
        var text: String
        /// What it waits on, in the engine's words.
        var wait: String? = nil
        /// Since when the current wait lasts.
        var since: Timestamp? = nil

        /// What counts as a change: the wait without its numbers (a poll's counter, a
        /// timer's instant), so a poll loop is one line, not one per poll.
        var key: String {
            text + (wait.map { " " + waitShape($0) } ?? "")
        }
    }
    private var last: [String: (text: String, at: ContinuousClock.Instant)] = [:]
    static let heartbeat: Duration = .seconds(5)

    /// Polls `poll` until it says done (true) or `timeout` passes (false). `poll` may return
    /// an action to run before the next poll.
    mutating func run(
        _ demo: DemoRun, timeout: Duration,
        _ poll: () async throws -> (lines: [String: Line], done: Bool, then: (() async throws -> Void)?)
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (lines, done, then) = try await poll()
            for (name, line) in lines.sorted(by: { $0.key < $1.key }) {
                let now = ContinuousClock.now
                let previous = last[name]
                guard previous?.text != line.key || now - previous!.at >= Self.heartbeat else { continue }
                var shown = line.text
                if let wait = line.wait { shown += ", waiting on \(DemoRun.readable(wait))" }
                if let since = line.since {
                    let waited = Timestamp(nanoseconds: Int64(Date().timeIntervalSince1970 * 1e9)).duration(since: since)
                    if waited >= .seconds(1) { shown += " (for \(demoSeconds(waited)) s)" }
                }
                last[name] = (line.key, now)
                demo.sayAt("\(name): \(shown)")
            }
            if let then { try await then() }
            if done { return true }
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    mutating func run(
        _ demo: DemoRun, timeout: Duration, _ poll: () async throws -> (lines: [String: Line], done: Bool)
    ) async throws -> Bool {
        try await run(demo, timeout: timeout) {
            let (lines, done) = try await poll()
            return (lines, done, nil)
        }
    }
}

/// A step found its part missing from this build (thrown from inside a watch).
struct DemoSkip: Error {}
