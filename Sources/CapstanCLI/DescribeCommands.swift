import ArgumentParser
import CapstanSupport
import Engine
import EventLog
import Fleet
import Foundation
import Workflows

// `capstan describe cluster NAME` (clusterctl describe's tree, problems first, plus the
// running workflows and the chain's plan) and `capstan history cluster NAME` (the audit
// timeline: desired-state changes, workflows started and ended, observed changes).

struct Describe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a cluster as a tree, problems first, with its workflows and upgrade plan.",
        subcommands: [Cluster.self])

    struct Cluster: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cluster",
            abstract: "Show a cluster: control plane, MachineDeployments, machines and their conditions, workflows.",
            discussion: """
                Like `clusterctl describe cluster`, from the log's projections: the control plane, each \
                MachineDeployment and its machines (those with a problem first), then what no CAPI tool \
                shows: the cluster's running workflows, and for a chained upgrade its plan with the done, \
                current and pending steps and what the current step waits on since when.
                """)

        @Argument(help: ArgumentHelp("The cluster.", valueName: "name")) var name: String
        @Option(name: [.customShort("n"), .long], help: ArgumentHelp("The cluster's namespace.", valueName: "namespace"))
        var namespace = ManifestReader.defaultNamespace
        @OptionGroup var at: AtOptions
        @OptionGroup var watch: WatchOptions
        @OptionGroup var common: CommonOptions

        func validate() throws { try watch.validate(at: at, format: common.output) }

        func run() async throws {
            try await reportingFailures {
                if watch.watch {
                    return try await LiveWatch.run(common.dataDirectory, format: common.output) { snapshot in
                        let description = try ClusterDescription(snapshot, namespace: namespace, name: name)
                        return WatchFrame(
                            screen: description.text(now: snapshot.nowNanoseconds),
                            lines: description.watchLines(now: snapshot.nowNanoseconds),
                            json: common.output == .json ? try jsonText(description, pretty: false) : nil)
                    }
                }
                let snapshot = try FleetSnapshot.open(common.dataDirectory, at: at.at)
                let description = try ClusterDescription(snapshot, namespace: namespace, name: name)
                switch common.output {
                case .json, .yaml: try printStructured(description, format: common.output)
                case .name: print("cluster/\(name)")
                case .text, .wide: print(description.text(now: snapshot.nowNanoseconds))
                }
            }
        }
    }
}

/// What `describe cluster` shows (its JSON and YAML form too).
struct ClusterDescription: Encodable {
    struct Chain: Encodable {
        struct Step: Encodable {
            var number: Int
            var description: String
            /// done, current, pending.
            var state: String
        }
        var workflowID: String
        var phase: String
        var steps: [Step]
        var waitingOn: String?
        var since: String?
        var attempt: Int?
        var reason: String?
    }

    var cluster: ClusterSummary
    /// One line per problem, the worst first.
    var problems: [String]
    var workflows: [WorkflowSummary]
    var chains: [Chain]

    init(_ snapshot: FleetSnapshot, namespace: String, name: String) throws {
        guard let cluster = try snapshot.clusters(namespace: namespace).first(where: { $0.name == name }) else {
            throw CommandFailure(
                "no cluster \(namespace)/\(name) in \(snapshot.reader.directory)"
                    + "\(snapshot.isPast ? " at position \(snapshot.position)" : "") (list them with `capstan get clusters -A`)")
        }
        self.cluster = cluster
        let reports = try snapshot.workflows().filter {
            guard let owner = workflowCluster($0.record) else { return false }
            return owner.namespace == namespace && owner.name == name
        }
        workflows = reports.filter { !$0.record.isFinished }.map { WorkflowSummary($0) }
        var problems: [String] = []
        if cluster.controlPlane.status == nil {
            problems.append("control plane not observed yet")
        } else if !cluster.controlPlane.ready {
            problems.append("control plane \(cluster.controlPlane.status ?? "") (not ready)")
        }
        for machine in cluster.machines where Self.isProblem(machine) {
            problems.append("machine \(machine.name): \(Self.machineProblem(machine))")
        }
        for report in reports where report.record.status == .failed || report.record.quarantine != nil {
            problems.append("workflow \(report.record.workflowID) \(report.view.status.rawValue): \(report.record.lastError ?? "")")
        }
        for workflow in workflows where workflow.lastError != nil && workflow.status == "running" {
            problems.append("workflow \(workflow.id): \(workflow.lastError ?? "")")
        }
        self.problems = problems
        chains = reports.filter { $0.record.type == ChainedUpgrade.type }.compactMap { Self.chain($0) }
    }

    static func isProblem(_ machine: ClusterSummary.Machine) -> Bool {
        machine.phase != "Running" || machine.conditions.contains { $0.value.status != "True" }
    }

    static func machineProblem(_ machine: ClusterSummary.Machine) -> String {
        var parts: [String] = []
        if machine.phase != "Running" { parts.append(machine.phase) }
        for (type, condition) in machine.conditions.sorted(by: { $0.key < $1.key }) where condition.status != "True" {
            parts.append("\(type)=\(condition.status)\(condition.reason.map { " (\($0))" } ?? "") since "
                + rfc3339(nanoseconds: condition.lastTransitionNanoseconds))
        }
        return parts.joined(separator: ", ")
    }

    /// The chain's plan and where it stands, from its snapshot (decider state and progress).
    static func chain(_ report: WorkflowStatusReport) -> Chain? {
        guard let state = try? JSONDecoder().decode(ChainedUpgrade.State.self, from: Data(report.deciderState)) else { return nil }
        let progress = try? report.progress(as: ChainedUpgrade.Progress.self)
        let current = progress?.step ?? 0
        let finished = report.record.isFinished || progress?.phase == .done
        let steps = (state.plan?.steps ?? []).enumerated().map { index, step in
            let number = index + 1
            let stepState = finished && report.record.status == .completed ? "done"
                : number < current ? "done" : number == current ? "current" : "pending"
            return Chain.Step(number: number, description: step.description, state: stepState)
        }
        return Chain(
            workflowID: report.record.workflowID, phase: progress?.phase.rawValue ?? report.view.status.rawValue, steps: steps,
            waitingOn: progress?.waitingOn, since: progress?.since.map { rfc3339(nanoseconds: $0.nanoseconds) },
            attempt: progress?.attempt, reason: progress?.reason ?? state.planError)
    }

    func text(now: Int64) -> String {
        var lines: [String] = []
        let labels = cluster.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        lines.append(Style.bold("Cluster \(cluster.namespace)/\(cluster.name)")
            + (labels.isEmpty ? "" : "  labels: \(labels)") + "  catalog: \(cluster.versionCatalog)"
            + (cluster.paused ? "  " + Style.yellow("PAUSED") : ""))
        if !problems.isEmpty {
            lines.append(Style.red("Problems:"))
            for problem in problems { lines.append("  ! " + problem) }
        }
        var table = Table(["name", "status", "version", "detail"])
        let plane = cluster.controlPlane
        table.append([
            "Cluster/\(cluster.name)", plane.ready ? "Ready" : "NotReady", "-", cluster.paused ? "paused" : "",
        ])
        table.append([
            "├─ControlPlane - \(plane.name.map { "KamajiControlPlane/\($0)" } ?? "(none)")", plane.status ?? "NotObserved",
            plane.installedVersion?.description ?? "-",
            "desired \(plane.desiredVersion?.description ?? "-")\(plane.replicas.map { ", \($0) replicas" } ?? "")",
        ])
        table.append(["└─Workers", "", "", ""])
        for (index, deployment) in cluster.deployments.enumerated() {
            let lastDeployment = index == cluster.deployments.count - 1
            let branch = lastDeployment ? "  └─" : "  ├─"
            table.append([
                branch + "MachineDeployment/\(deployment.name)", "\(deployment.readyMachines)/\(deployment.replicas) ready",
                deployment.desiredVersion?.description ?? "-", versionCounts(deployment.versions),
            ])
            let machines = cluster.machines.filter { $0.deployment == deployment.name }
                .sorted { (Self.isProblem($0) ? 0 : 1, $0.name) < (Self.isProblem($1) ? 0 : 1, $1.name) }
            for (machineIndex, machine) in machines.enumerated() {
                let stem = lastDeployment ? "    " : "  │ "
                let leaf = machineIndex == machines.count - 1 ? "└─" : "├─"
                table.append([
                    stem + leaf + "Machine/\(machine.name)", machine.phase, machine.version?.description ?? "-",
                    Self.isProblem(machine) ? Self.machineProblem(machine) : "Ready",
                ])
            }
        }
        lines.append(table.render(wide: true))
        if !workflows.isEmpty {
            lines.append("Running workflows:")
            var running = Table(["id", "type", "status", "waiting on", "since"])
            for workflow in workflows {
                running.append([workflow.id, workflow.type, workflow.status, workflow.waitingOn, workflow.since])
            }
            lines.append(running.render(wide: false).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        }
        for chain in chains {
            lines.append("Upgrade chain \(chain.workflowID) (\(chain.phase)):")
            if chain.steps.isEmpty { lines.append("  no plan yet\(chain.reason.map { ": \($0)" } ?? "")") }
            for step in chain.steps {
                let mark = step.state == "done" ? "✓" : step.state == "current" ? "▶" : "·"
                var line = "  \(mark) \(step.number). \(step.description)  \(step.state)"
                if step.state == "current", let waiting = chain.waitingOn, !waiting.isEmpty {
                    line += ": waiting on \(waiting)"
                    if let since = chain.since { line += " since \(since)" }
                    if let attempt = chain.attempt, attempt > 1 { line += " (attempt \(attempt))" }
                }
                lines.append(line)
            }
            if let reason = chain.reason, !chain.steps.isEmpty { lines.append("  reason: " + reason) }
        }
        return lines.joined(separator: "\n")
    }
}

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "Show the audit timeline of a cluster.", subcommands: [Cluster.self])

    struct Cluster: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cluster",
            abstract: "Every change of a cluster: desired state (who, host, file digest), workflows, versions, conditions.")

        @Argument(help: ArgumentHelp("The cluster.", valueName: "name")) var name: String
        @Option(name: [.customShort("n"), .long], help: ArgumentHelp("The cluster's namespace.", valueName: "namespace"))
        var namespace = ManifestReader.defaultNamespace
        @OptionGroup var at: AtOptions
        @OptionGroup var common: CommonOptions

        func run() async throws {
            try await reportingFailures {
                let snapshot = try FleetSnapshot.open(common.dataDirectory, at: at.at)
                let entries = try clusterTimeline(snapshot, namespace: namespace, name: name)
                try emit(
                    entries, format: common.output,
                    table: {
                        var table = Table(["time", "actor", "event", "summary"])
                        for entry in entries { table.append([entry.time, entry.actor, entry.event, entry.summary]) }
                        return table
                    }, names: { entries.map { "event/\($0.event)" } },
                    empty: "No history for cluster \(namespace)/\(name) in \(common.dataDirectory).")
            }
        }
    }
}

/// One line of `history cluster`.
struct TimelineEntry: Encodable {
    var time: String
    var atNanoseconds: Int64
    var actor: String
    var event: String
    var summary: String
}

/// The cluster's audit entries merged with its workflows' starts and ends, oldest first.
func clusterTimeline(_ snapshot: FleetSnapshot, namespace: String, name: String) throws -> [TimelineEntry] {
    var entries = try FleetView.audit(snapshot.state, namespace: namespace, cluster: name).map {
        TimelineEntry(time: rfc3339(nanoseconds: $0.atNanoseconds), atNanoseconds: $0.atNanoseconds, actor: $0.actor,
                      event: $0.event, summary: $0.summary)
    }
    for report in try snapshot.workflows() {
        guard let owner = workflowCluster(report.record), owner.namespace == namespace, owner.name == name else { continue }
        let record = report.record
        let stream = StreamID.forWorkflow(record.workflowID, run: 1)
        if let first = try snapshot.reader.readStream(stream, maxCount: 1).first, first.position <= snapshot.position {
            let at = (try? WorkflowEventCodec.decode(first).at.nanoseconds) ?? first.recordedAtNanoseconds
            entries.append(TimelineEntry(
                time: rfc3339(nanoseconds: at), atNanoseconds: at, actor: first.metadata.actor, event: "WorkflowStarted",
                summary: "\(record.type) \(record.workflowID) started"))
        }
        if record.isFinished {
            let at = record.lastEventAt.nanoseconds
            entries.append(TimelineEntry(
                time: rfc3339(nanoseconds: at), atNanoseconds: at, actor: "engine", event: "Workflow\(record.status.rawValue.capitalized)",
                summary: "\(record.type) \(record.workflowID) \(record.status.rawValue)\(record.result.map { ": \($0.prefix(120))" } ?? "")"))
        }
    }
    return entries.enumerated().sorted { ($0.element.atNanoseconds, $0.offset) < ($1.element.atNanoseconds, $1.offset) }.map(\.element)
}
