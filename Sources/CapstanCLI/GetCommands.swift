import ArgumentParser
import CapstanSupport
import Engine
import EventLog
import Fleet
import Foundation

// `capstan get clusters|machinedeployments|machines|workflows`: kubectl's `get`, read from
// the log's projections (or rebuilt through a past position with --at), while `serve` runs
// or not.

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List clusters, MachineDeployments, machines or workflows.",
        discussion: """
            Reads the log's projections directly, whether or not `capstan serve` runs. Like kubectl: \
            -n NAMESPACE (default: default), -A for every namespace, -l key=value,key!=value to select \
            by label, -o wide|json|yaml|name. --at TIME|POSITION shows the fleet as it stood then.

            Machines carry the labels cluster.x-k8s.io/cluster-name and cluster.x-k8s.io/deployment-name; \
            workflows capstan.dev/type, capstan.dev/status and cluster.x-k8s.io/cluster-name.

            Examples:
              capstan get clusters -A
              capstan get machines -l cluster.x-k8s.io/cluster-name=prod -o wide
              capstan get workflows -l capstan.dev/status=running
              capstan get clusters --at -2h
            """,
        subcommands: [Clusters.self, MachineDeployments.self, Machines.self, Workflows.self])

    struct Clusters: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "clusters", abstract: "List clusters: control-plane versions (desired, installed) and workers.",
            aliases: ["cluster", "cl"])

        @OptionGroup var scope: ScopeOptions
        @OptionGroup var at: AtOptions
        @OptionGroup var common: CommonOptions

        @OptionGroup var watch: WatchOptions

        func validate() throws { try watch.validate(at: at, format: common.output) }

        func run() async throws {
            try await showList(common, at: at, watch: watch, namespaced: scope.allNamespaces, empty: noneFound("clusters", scope)) {
                snapshot in
                let clusters = try snapshot.clusters(namespace: scope.namespaceFilter).filter { scope.labelSelector.matches($0.labels) }
                return (clusters, clusterTable(clusters, showNamespace: scope.allNamespaces), clusters.map { "cluster/\($0.name)" })
            }
        }
    }

    struct MachineDeployments: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "machinedeployments", abstract: "List MachineDeployments: replicas, ready machines, versions.",
            aliases: ["machinedeployment", "md"])

        @OptionGroup var scope: ScopeOptions
        @OptionGroup var at: AtOptions
        @OptionGroup var common: CommonOptions

        @OptionGroup var watch: WatchOptions

        func validate() throws { try watch.validate(at: at, format: common.output) }

        func run() async throws {
            try await showList(
                common, at: at, watch: watch, namespaced: scope.allNamespaces, empty: noneFound("MachineDeployments", scope)
            ) { snapshot in
                let rows = try snapshot.clusters(namespace: scope.namespaceFilter).flatMap(MachineDeploymentRow.rows)
                    .filter { scope.labelSelector.matches($0.labels) }
                return (
                    rows, machineDeploymentTable(rows, showNamespace: scope.allNamespaces),
                    rows.map { "machinedeployment/\($0.name)" }
                )
            }
        }
    }

    struct Machines: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "machines", abstract: "List machines as the workflows observed them: phase, version, conditions.",
            aliases: ["machine", "ma"])

        @OptionGroup var scope: ScopeOptions
        @OptionGroup var at: AtOptions
        @OptionGroup var common: CommonOptions

        @OptionGroup var watch: WatchOptions

        func validate() throws { try watch.validate(at: at, format: common.output) }

        func run() async throws {
            try await showList(common, at: at, watch: watch, namespaced: scope.allNamespaces, empty: noneFound("machines", scope)) {
                snapshot in
                let rows = try snapshot.clusters(namespace: scope.namespaceFilter).flatMap(MachineRow.rows)
                    .filter { scope.labelSelector.matches($0.labels) }
                return (rows, machineTable(rows, showNamespace: scope.allNamespaces), rows.map { "machine/\($0.name)" })
            }
        }
    }

    struct Workflows: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "workflows", abstract: "List workflow runs: type, status, what each waits on.",
            discussion: "Without -n, every workflow; with -n, those of the namespace's clusters.",
            aliases: ["workflow", "wf"])

        @OptionGroup var scope: ScopeOptions
        @OptionGroup var at: AtOptions
        @OptionGroup var common: CommonOptions

        @OptionGroup var watch: WatchOptions

        func validate() throws { try watch.validate(at: at, format: common.output) }

        func run() async throws {
            try await showList(
                common, at: at, watch: watch, namespaced: false, empty: "No workflows found in \(common.dataDirectory).")
            { snapshot in
                let rows = try snapshot.workflows().map { WorkflowSummary($0) }
                    .filter { scope.namespace == nil || $0.namespace == scope.namespace }
                    .filter { scope.labelSelector.matches($0.labels) }
                return (rows, workflowTable(rows, now: snapshot.nowNanoseconds), rows.map { "workflow/\($0.id)" })
            }
        }
    }
}

/// A list, once (now or `--at`), or with `--watch` again after every commit.
func showList<T: Encodable>(
    _ common: CommonOptions, at: AtOptions, watch: WatchOptions, namespaced: Bool, empty: String,
    _ rows: @escaping (FleetSnapshot) throws -> (value: T, table: Table, names: [String])
) async throws {
    try await reportingFailures {
        guard watch.watch else {
            let (value, table, names) = try rows(try FleetSnapshot.open(common.dataDirectory, at: at.at))
            return try emit(value, format: common.output, table: { table }, names: { names }, empty: empty)
        }
        try await LiveWatch.run(common.dataDirectory, format: common.output) { snapshot in
            let (value, table, names) = try rows(snapshot)
            var frame = tableFrame(
                table, names: names, namespaced: namespaced, wide: common.output == .wide, empty: empty,
                json: common.output == .json ? try jsonText(value, pretty: false) : nil)
            if common.output == .name {
                frame.header = nil
                for index in frame.lines.indices { frame.lines[index].text = names[index] }
            }
            return frame
        }
    }
}

/// kubectl's "No resources found in default namespace." for `what`.
func noneFound(_ what: String, _ scope: ScopeOptions) -> String {
    if let namespace = scope.namespaceFilter { return "No \(what) found in namespace \(namespace)." }
    return "No \(what) found."
}

func clusterTable(_ clusters: [ClusterSummary], showNamespace: Bool) -> Table {
    var table = Table(
        (showNamespace ? ["namespace"] : []) + ["name", "control plane", "desired", "installed", "workers"],
        wide: ["catalog", "paused", "worker versions"])
    for cluster in clusters {
        let desired = cluster.deployments.reduce(0) { $0 + $1.replicas }
        let ready = cluster.deployments.reduce(0) { $0 + $1.readyMachines }
        var versions: [String: Int] = [:]
        for deployment in cluster.deployments { versions.merge(deployment.versions, uniquingKeysWith: +) }
        table.append(
            (showNamespace ? [cluster.namespace] : []) + [
                cluster.name, cluster.controlPlane.status ?? "NotObserved",
                cluster.controlPlane.desiredVersion?.description ?? "-", cluster.controlPlane.installedVersion?.description ?? "-",
                "\(ready)/\(desired)", cluster.versionCatalog, cluster.paused ? "true" : "false", versionCounts(versions),
            ])
    }
    return table
}

/// `v1.33.4×2 v1.34.2×1`, or `-`.
func versionCounts(_ versions: [String: Int]) -> String {
    versions.isEmpty ? "-" : versions.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
}

/// A MachineDeployment row of `get machinedeployments` (its JSON and YAML form too).
struct MachineDeploymentRow: Encodable {
    var namespace: String
    var cluster: String
    var name: String
    var labels: [String: String]
    var desiredVersion: String?
    var replicas: Int
    var machines: Int
    var readyMachines: Int
    /// Observed machines by version.
    var versions: [String: Int]

    static func rows(_ cluster: ClusterSummary) -> [MachineDeploymentRow] {
        cluster.deployments.map { deployment in
            var labels = deployment.labels
            labels["cluster.x-k8s.io/cluster-name"] = cluster.name
            return MachineDeploymentRow(
                namespace: cluster.namespace, cluster: cluster.name, name: deployment.name, labels: labels,
                desiredVersion: deployment.desiredVersion?.description, replicas: deployment.replicas,
                machines: deployment.machines, readyMachines: deployment.readyMachines, versions: deployment.versions)
        }
    }
}

func machineDeploymentTable(_ rows: [MachineDeploymentRow], showNamespace: Bool) -> Table {
    var table = Table(
        (showNamespace ? ["namespace"] : []) + ["name", "cluster", "replicas", "ready", "version"], wide: ["machines", "versions"])
    for row in rows {
        table.append(
            (showNamespace ? [row.namespace] : []) + [
                row.name, row.cluster, "\(row.replicas)", "\(row.readyMachines)", row.desiredVersion ?? "-", "\(row.machines)",
                versionCounts(row.versions),
            ])
    }
    return table
}

/// A machine row of `get machines`.
struct MachineRow: Encodable {
    var namespace: String
    var cluster: String
    var deployment: String
    var name: String
    var labels: [String: String]
    var phase: String
    var version: String?
    var conditions: [String: ObservedCluster.Condition]

    var ready: String { conditions["Ready"]?.status ?? "Unknown" }

    static func rows(_ cluster: ClusterSummary) -> [MachineRow] {
        cluster.machines.map { machine in
            MachineRow(
                namespace: cluster.namespace, cluster: cluster.name, deployment: machine.deployment, name: machine.name,
                labels: ["cluster.x-k8s.io/cluster-name": cluster.name, "cluster.x-k8s.io/deployment-name": machine.deployment],
                phase: machine.phase, version: machine.version?.description, conditions: machine.conditions)
        }
    }
}

func machineTable(_ rows: [MachineRow], showNamespace: Bool) -> Table {
    var table = Table(
        (showNamespace ? ["namespace"] : []) + ["name", "cluster", "deployment", "phase", "ready", "version"],
        wide: ["conditions"])
    for row in rows {
        let conditions = row.conditions.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value.status)\($0.value.reason.map { "(\($0))" } ?? "")" }.joined(separator: ",")
        table.append(
            (showNamespace ? [row.namespace] : []) + [
                row.name, row.cluster, row.deployment.isEmpty ? "-" : row.deployment, row.phase, row.ready,
                row.version ?? "-", conditions.isEmpty ? "-" : conditions,
            ])
    }
    return table
}

/// A workflow run as the lists show it (its JSON and YAML form too).
struct WorkflowSummary: Encodable {
    var id: String
    var type: String
    /// running, paused, completed, failed, cancelled, quarantined, continuedAsNew.
    var status: String
    var run: Int
    var namespace: String?
    var cluster: String?
    var parentID: String?
    var labels: [String: String]
    var waitingOn: String
    /// When it last moved (its latest event), RFC 3339.
    var since: String
    var sinceNanoseconds: Int64
    var attempt: Int?
    var nextRetryAt: String?
    var lastError: String?
    /// The type's progress view, when it has one.
    var progress: ManifestValue?

    init(_ report: WorkflowStatusReport) {
        let record = report.record
        id = record.workflowID
        type = record.type
        status = record.paused && report.view.status == .running ? "paused" : report.view.status.rawValue
        run = record.runNumber
        let cluster = workflowCluster(record)
        namespace = cluster?.namespace
        self.cluster = cluster?.name
        parentID = record.parentID
        var labels = ["capstan.dev/type": type, "capstan.dev/status": status]
        if let cluster { labels["cluster.x-k8s.io/cluster-name"] = cluster.name }
        self.labels = labels
        waitingOn = report.view.waitingOn
        since = rfc3339(nanoseconds: report.view.since.nanoseconds)
        sinceNanoseconds = report.view.since.nanoseconds
        attempt = report.view.attempt
        nextRetryAt = report.view.nextRetryAt.map { rfc3339(nanoseconds: $0.nanoseconds) }
        lastError = report.view.lastError
        progress = report.progress.flatMap { try? JSONDecoder().decode(ManifestValue.self, from: Data($0.utf8)) }
    }
}

func workflowTable(_ rows: [WorkflowSummary], now: Int64) -> Table {
    var table = Table(["id", "type", "status", "cluster", "waiting on", "age"], wide: ["attempt", "next retry", "last error"])
    for row in rows {
        table.append([
            row.id, row.type, row.status, row.cluster.map { "\(row.namespace ?? "")/\($0)" } ?? "-", row.waitingOn,
            ageText(row.sinceNanoseconds, now: now), row.attempt.map(String.init) ?? "-", row.nextRetryAt ?? "-",
            row.lastError ?? "-",
        ])
    }
    return table
}
