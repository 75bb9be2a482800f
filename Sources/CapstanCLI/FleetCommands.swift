import ArgumentParser
import EventLog
import Fleet
import Foundation

// `capstan apply`, `delete` and `upgrade`: desired state in (the queries are in GetCommands.swift).
// Writes go to the main log directly when its writer lock is free, else through the inbox
// to the running `capstan serve` (FleetInbox), which records the same events.

/// Exit code of a refused input (nothing written).
let invalidInputExit = ExitCode(1)

/// Who is applying: the user and host recorded with every desired-state change.
func changeSource() -> ChangeSource {
    let environment = ProcessInfo.processInfo.environment
    let user = environment["USER"].flatMap { $0.isEmpty ? nil : $0 } ?? ProcessInfo.processInfo.userName
    let host = ProcessInfo.processInfo.hostName
    return ChangeSource(user: user, host: host, atNanoseconds: Int64(Date().timeIntervalSince1970 * 1_000_000_000))
}

/// Reads `-f` arguments as kubectl does: a file, a directory's .yaml/.yml/.json files
/// (sorted, not recursive), or `-` for standard input.
func readManifestFiles(_ paths: [String]) throws -> [ManifestFile] {
    var files: [ManifestFile] = []
    for path in paths {
        if path == "-" {
            let data = FileHandle.standardInput.readDataToEndOfFile()
            files.append(ManifestFile(name: "-", text: String(decoding: data, as: UTF8.self)))
            continue
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CommandFailure("\(path): no such file or directory")
        }
        let members: [String]
        if isDirectory.boolValue {
            members = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
                .filter { name in [".yaml", ".yml", ".json"].contains { name.hasSuffix($0) } }
                .map { (path as NSString).appendingPathComponent($0) }
            if members.isEmpty { throw CommandFailure("\(path): no .yaml, .yml or .json files in the directory") }
        } else {
            members = [path]
        }
        for member in members {
            guard let data = FileManager.default.contents(atPath: member) else { throw CommandFailure("\(member): cannot be read") }
            guard let text = String(data: data, encoding: .utf8) else { throw CommandFailure("\(member): not UTF-8 text") }
            files.append(ManifestFile(name: member, text: text))
        }
    }
    return files
}

/// What apply, delete and upgrade print with `-o json`.
struct ChangeOutput: Encodable {
    struct Object: Encodable {
        var kind: String
        var namespace: String
        var name: String
        var change: String
        var file: String?
        var notActedOn: [String]?
    }
    var dryRun: Bool
    /// `log` (recorded directly) or `inbox` (recorded by the running `capstan serve`).
    var via: String?
    var objects: [Object]
    var errors: [String]
}

/// Prints a refusal (every problem) and exits 1; nothing was written.
func refuse(_ errors: [String], output: OutputFormat, dryRun: Bool) throws -> Never {
    if output == .json {
        try printJSON(ChangeOutput(dryRun: dryRun, via: nil, objects: [], errors: errors))
    } else {
        for error in errors { printError("error: \(error)") }
        printError("error: nothing was written (\(errors.count) problem\(errors.count == 1 ? "" : "s"))")
    }
    throw invalidInputExit
}

/// Runs `operation`: plans it (dry run), records it on the log, or hands it to the running
/// engine when `capstan serve` holds the log; then prints one line per object.
func perform(_ operation: FleetOperation, common: CommonOptions, dryRun: Bool, notActedOn: [String: [String]] = [:]) async throws {
    let directory = common.dataDirectory
    var items: [(kind: String, namespace: String, name: String, change: DesiredChange, file: String?)] = []
    var via: String?
    do {
        if dryRun {
            let plan: DesiredStatePlan
            if FileManager.default.fileExists(atPath: directory + "/data.mdb") {
                plan = try operation.plan(reader: try openReader(directory))
            } else {
                plan = try operation.plan(DesiredSnapshot())
            }
            items = plan.items.map { ($0.key.kind, $0.key.namespace, $0.key.name, $0.change, $0.file) }
        } else {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            do {
                let log = try EventLog(directory: directory)
                let outcome: FleetRecorder.Outcome
                do { outcome = try await FleetRecorder.perform(operation, on: log) } catch {
                    await log.close()
                    throw error
                }
                await log.close()
                items = outcome.plan.items.map { ($0.key.kind, $0.key.namespace, $0.key.name, $0.change, $0.file) }
                via = "log"
            } catch let error as EventLogError where error.code == .writerLocked {
                // `capstan serve` holds the log: check here first, so a bad input is refused at once.
                _ = try operation.plan(reader: try openReader(directory))
                let requestID = String(UInt64.random(in: 0...UInt64.max), radix: 16)
                try await FleetInbox.send(operation, requestID: requestID, dataDirectory: directory)
                let reader = try openReader(directory)
                let deadline = ContinuousClock.now + .seconds(60)
                var answer: FleetInbox.Result?
                while answer == nil {
                    answer = try FleetInbox.result(reader, requestID: requestID)
                    if answer != nil { break }
                    guard ContinuousClock.now < deadline else {
                        throw CommandFailure(
                            "the request is queued in \(directory)/inbox, but the running capstan serve (pid "
                                + "\(error.holderPID.map(String.init) ?? "?")) has not recorded it within 60 s")
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
                if let answer, !answer.errors.isEmpty { try refuse(answer.errors, output: common.output, dryRun: false) }
                items = (answer?.items ?? []).map { ($0.kind, $0.namespace, $0.name, $0.change, nil) }
                via = "inbox"
            }
        }
    } catch let errors as ManifestErrors {
        try refuse(errors.errors.map(\.description), output: common.output, dryRun: dryRun)
    }
    if common.output == .json {
        try printJSON(ChangeOutput(
            dryRun: dryRun, via: via,
            objects: items.map {
                .init(kind: $0.kind, namespace: $0.namespace, name: $0.name, change: $0.change.rawValue, file: $0.file,
                      notActedOn: notActedOn["\($0.kind)/\($0.namespace)/\($0.name)"])
            }, errors: []))
        return
    }
    for item in items {
        print("\(item.kind)/\(item.name) \(item.change.rawValue)\(dryRun ? " (dry run)" : "")")
    }
    for item in items {
        if let fields = notActedOn["\(item.kind)/\(item.namespace)/\(item.name)"], !fields.isEmpty {
            printError("warning: \(item.kind)/\(item.name): accepted but not acted on by Capstan: \(fields.joined(separator: ", "))")
        }
    }
}

struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record the desired state of clusters from Cluster API manifests.",
        discussion: """
            Reads Cluster, KamajiControlPlane, MachineDeployment, MachineHealthCheck, KubevirtCluster, \
            KubevirtMachineTemplate, KubeadmConfigTemplate and VersionCatalog manifests, checks every \
            document before writing anything, and records each changed object with who applied it and \
            the file's digest. Prints `Kind/name created|configured|unchanged`; applying the same files \
            again appends nothing. Exit code 1: the input was refused and nothing was written.
            """)

    @Option(name: [.customShort("f"), .customLong("filename")],
            help: ArgumentHelp("A manifest file, a directory of them, or - for standard input.", valueName: "path"))
    var filenames: [String] = []

    @Flag(help: "Print what would change; write nothing.")
    var dryRun = false

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard !filenames.isEmpty else { throw ValidationError("give at least one -f FILE|DIR|-") }
    }

    func run() async throws {
        try await reportingFailures {
            let files = try readManifestFiles(filenames)
            let (manifests, _) = DesiredStatePlanner.read(files)
            let notActedOn = Dictionary(
                manifests.map { ("\($0.kind.kind)/\($0.namespace)/\($0.name)", $0.notActedOn) }, uniquingKeysWith: { a, _ in a })
            try await perform(FleetOperation(.apply(files: files), source: changeSource()), common: common, dryRun: dryRun,
                              notActedOn: notActedOn)
        }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record that objects, or a whole cluster, are to be torn down.",
        discussion: """
            `capstan delete -f FILE` records the deletion of the objects the file names; \
            `capstan delete cluster NAME` records the teardown of the cluster and what it owns \
            (health checks and MachineDeployments, then the control plane and infrastructure, the Cluster last).
            """)

    @Argument(help: ArgumentHelp("`cluster NAME`, or nothing with -f.", valueName: "cluster name"))
    var target: [String] = []

    @Option(name: [.customShort("f"), .customLong("filename")],
            help: ArgumentHelp("A manifest file, a directory of them, or -.", valueName: "path"))
    var filenames: [String] = []

    @Option(help: ArgumentHelp("The cluster's namespace.", valueName: "namespace"))
    var namespace = ManifestReader.defaultNamespace

    @Flag(help: "Print what would be deleted; write nothing.")
    var dryRun = false

    @OptionGroup var common: CommonOptions

    func validate() throws {
        if filenames.isEmpty {
            guard target.count == 2, target[0] == "cluster" else {
                throw ValidationError("use `capstan delete -f FILE` or `capstan delete cluster NAME`")
            }
        } else if !target.isEmpty {
            throw ValidationError("give either -f FILE or `cluster NAME`, not both")
        }
    }

    func run() async throws {
        try await reportingFailures {
            let action: FleetOperation.Action
            if filenames.isEmpty {
                action = .deleteCluster(namespace: namespace, name: target[1])
            } else {
                let files = try readManifestFiles(filenames)
                let (_, errors) = DesiredStatePlanner.read(files)
                if !errors.isEmpty { try refuse(errors.map(\.description), output: common.output, dryRun: dryRun) }
                action = .delete(files: files)
            }
            try await perform(FleetOperation(action, source: changeSource()), common: common, dryRun: dryRun)
        }
    }
}

struct Upgrade: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record that a cluster is to be upgraded to a Kubernetes version.",
        discussion: """
            The version must be in the cluster's VersionCatalog and not older than its control plane. \
            The engine's chained upgrade takes the control plane there one minor at a time, then the workers.
            """)

    @Argument(help: ArgumentHelp("The cluster.", valueName: "name"))
    var name: String

    @Option(help: ArgumentHelp("The cluster's namespace.", valueName: "namespace"))
    var namespace = ManifestReader.defaultNamespace

    @Option(name: .customLong("to"), help: ArgumentHelp("The target version (v1.36.1 or 1.36.1).", valueName: "version"))
    var version: String

    @Flag(help: "Check and print the intent; write nothing.")
    var dryRun = false

    @OptionGroup var common: CommonOptions

    func run() async throws {
        try await reportingFailures {
            let target: KubernetesVersion
            do { target = try KubernetesVersion(parsing: version) } catch {
                try refuse(["--to \(version): \(error)"], output: common.output, dryRun: dryRun)
            }
            try requireLogDirectory(common.dataDirectory)
            try await perform(
                FleetOperation(.upgrade(namespace: namespace, cluster: name, version: target), source: changeSource()),
                common: common, dryRun: dryRun)
        }
    }
}
