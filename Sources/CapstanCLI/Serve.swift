import ArgumentParser
import Engine
import EventLog
import Fleet
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import Providers
import ServiceLifecycle
import Workflows

/// `capstan serve`: the engine, the executors and the HTTP endpoints against one management cluster.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the lifecycle engine against a management cluster.",
        discussion: """
            Opens (or creates) the log in the data directory as its only writer, recovers the \
            unfinished workflows, and runs them: their activities call the management cluster of \
            the kubeconfig (KubeVirt, Kamaji) and the workload clusters it serves. Requests from \
            other commands (signals, starts) arrive through the data directory's inbox.

            SIGTERM (or SIGINT) stops cleanly: no new attempts start, running ones report, and \
            everything decided is committed before the process exits. A second `serve` on the \
            same data directory refuses to start and names the process holding it.

            Logs go to standard error at --log-level. With --metrics-address, Prometheus metrics \
            are served at /metrics (workflows by state, activity latency, retries and failures, \
            append latency) and a health check at /healthz: 200 while the engine runs and the \
            management cluster's API answers a probe (GET /readyz every few seconds), else 503 \
            with a JSON reason. The address actually bound is printed on standard output as \
            `capstan serve: metrics on http://HOST:PORT`.
            """)

    @OptionGroup var common: CommonOptions

    @Option(
        help: ArgumentHelp(
            "The management cluster's kubeconfig (default: the files of KUBECONFIG, merged as kubectl merges them, else ~/.kube/config).",
            valueName: "file"))
    var kubeconfig: String?

    @Option(help: ArgumentHelp("The kubeconfig context (default: its current context).", valueName: "name"))
    var context: String?

    @Option(
        name: .customLong("metrics-address"),
        help: ArgumentHelp("Serve /metrics and /healthz on HOST:PORT (port 0 picks a free one).", valueName: "host:port"))
    var metricsAddress: String?

    @Option(
        name: .customLong("update-extension-url"),
        help: ArgumentHelp(
            "Base URL of the in-place update extension (trusted with the kubeconfig's CA and token).",
            valueName: "url"))
    var updateExtensionURL: String?

    @Option(
        name: .customLong("update-extension-handler"),
        help: ArgumentHelp("The extension's handler name for the in-place hooks.", valueName: "name"))
    var updateExtensionHandler: String = "kube-sim"

    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error.", valueName: "level"))
    var logLevel: String = "info"

    @Option(help: ArgumentHelp("Activities running at once, in all.", valueName: "n"))
    var concurrency: Int = 256

    @Option(
        name: .customLong("poll-interval"),
        help: ArgumentHelp(
            "Milliseconds between two reconciles of the fleet, and between two reads of a workflow waiting on the cluster.",
            valueName: "ms"))
    var pollInterval: Int = 2000

    @Option(
        name: .customLong("step-retry-delay"),
        help: ArgumentHelp("Seconds before a failed step of a chained upgrade is tried again.", valueName: "seconds"))
    var stepRetryDelay: Int = 30

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level \(logLevel): expected one of trace, debug, info, notice, warning, error")
        }
        if let metricsAddress, MetricsAddress(metricsAddress) == nil {
            throw ValidationError("--metrics-address \(metricsAddress): expected HOST:PORT, such as 127.0.0.1:9464")
        }
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard pollInterval >= 1 else { throw ValidationError("--poll-interval must be at least 1 (milliseconds)") }
        guard stepRetryDelay >= 0 else { throw ValidationError("--step-retry-delay must not be negative") }
    }

    func run() async throws {
        try await reportingFailures {
            var logger = Logger(label: "capstan.serve")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            try await serve(logger: logger)
        }
    }

    private func serve(logger: Logger) async throws {
        // Everything that can be refused is checked before the log is opened: nothing is written.
        let connection: ClusterConnection
        do {
            let config = try kubeconfig.map { try Kubeconfig.load(path: $0) } ?? Kubeconfig.loadDefault()
            connection = try config.connection(context: context)
        } catch {
            throw CommandFailure("\(error)")
        }
        let management = KubernetesClient(connection: connection, logger: logger.labelled("capstan.providers"))
        let updateExtension = updateExtensionURL.map { url in
            var extensionConnection = connection
            extensionConnection.server = url
            return UpdateExtensionClient(connection: extensionConnection, handlerName: updateExtensionHandler)
        }
        let registry = PrometheusCollectorRegistry()
        if metricsAddress != nil { MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry)) }

        let directory = common.dataDirectory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let log: EventLog
        do { log = try EventLog(directory: directory, logger: logger) } catch let error as EventLogError
            where error.code == .writerLocked
        {
            let holder = error.holderPID.map { "process \($0)" } ?? "another process"
            throw CommandFailure(
                "data directory \(directory) is in use: \(holder) holds its writer lock (another `capstan serve`?); "
                    + "stop it or choose another --data-dir")
        }
        let finished = FinishedWorkflows()
        let store = MeteredStore(try await EventLogStore.open(log: log, logger: logger), finished: finished)
        let clock = WallClock()
        let executors = FleetExecutors(
            management: management, updateExtension: updateExtension, clock: clock,
            tokenGenerator: {
                var generator = SystemRandomNumberGenerator()
                return BootstrapToken.generate(using: &generator)
            }, logger: logger.labelled("capstan.executors"))
        let engine: WorkflowEngine
        do {
            engine = try WorkflowEngine(
                store: store, workflows: FleetRuntime.workflows, executors: FleetRuntime.metered(executors.registry()),
                clock: clock,
                options: EngineCore.Options(globalConcurrency: concurrency, perKeyConcurrency: 8, seed: UInt64(getpid()), actor: "capstan-serve"),
                logger: logger.labelled("capstan.engine"))
        } catch {
            await log.close()
            throw error
        }
        let liveness = EngineLiveness()
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: LivenessTracked(base: engine, liveness: liveness), successTerminationBehavior: .gracefullyShutdownGroup)
        ]
        if metricsAddress != nil {
            // The finished workflows so far (then each commit's): `capstan_workflows{state}`.
            finished.load(try store.stateEntries(withPrefix: StateKey.finishedPrefix))
            services.append(.init(service: EngineGauges(engine: engine, finished: finished)))
        }
        // Desired-state requests (`apply`, `delete`, `upgrade`) that arrive while serve holds
        // the log; EventLogStore.open created the inbox log.
        let fleetInbox = try EventLogReader(directory: EventLogStore.inboxDirectory(of: directory), logger: logger)
        services.append(.init(service: FleetInboxService(log: log, inbox: fleetInbox), successTerminationBehavior: .gracefullyShutdownGroup))
        // The fleet controller: desired state in, lifecycle workflows out.
        let tuning = FleetController.Tuning(pollIntervalMilliseconds: pollInterval, stepRetryDelaySeconds: stepRetryDelay)
        let controller = FleetControllerService(
            log: log, engine: engine, observer: FleetObserver(executors: executors), clock: clock,
            options: FleetControllerService.Options(interval: .milliseconds(pollInterval), tuning: tuning),
            healthChecks: HealthCheckRemediation.seam(log: log, tuning: tuning), logger: logger.labelled("capstan.controller"))
        services.append(.init(service: controller, successTerminationBehavior: .gracefullyShutdownGroup))
        if let metricsAddress, let address = MetricsAddress(metricsAddress) {
            let probe = ManagementProbe(connection: connection, logger: logger.labelled("capstan.health"))
            services.append(.init(service: probe))
            services.append(
                .init(service: Self.httpEndpoints(
                    address, registry: registry, engine: engine, liveness: liveness, probe: probe, logger: logger)))
        }
        logger.info(
            "serve.started",
            metadata: [
                "data.directory": "\(directory)", "kubernetes.server": "\(connection.server)",
                "engine.recovered": "\(engine.recoveredWorkflows)",
            ])
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do { try await group.run() } catch {
            await log.close()
            throw error
        }
        await log.close()
        logger.info("serve.stopped", metadata: ["data.directory": "\(directory)"])
    }

    /// `/metrics` (Prometheus text format) and `/healthz` (``ServeHealth``: 200 while the
    /// engine runs and the management cluster's API answers its probe, else 503 and why).
    private static func httpEndpoints(
        _ address: MetricsAddress, registry: PrometheusCollectorRegistry, engine: WorkflowEngine, liveness: EngineLiveness,
        probe: ManagementProbe, logger: Logger
    ) -> some Service {
        let router = Router()
        router.get("metrics") { _, _ -> Response in
            var buffer = ByteBuffer()
            buffer.writeBytes(registry.emitToBuffer())
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: buffer))
        }
        router.get("healthz") { _, _ -> Response in
            let answer = ServeHealth.answer(
                engineRunning: liveness.isRunning, probe: probe.result, now: .now, staleAfter: probe.staleAfter,
                workflowsRunning: await engine.runningCount)
            var buffer = ByteBuffer()
            buffer.writeString(answer.body)
            return Response(
                status: answer.status == 200 ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: buffer))
        }
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: "capstan"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? address.port
                // One write(2) to standard output, unbuffered, so a supervisor reading it sees the line at once.
                FileHandle.standardOutput.write(Data("capstan serve: metrics on http://\(address.host):\(port)\n".utf8))
            },
            logger: logger.labelled("capstan.http"))
    }
}

/// `HOST:PORT` of `--metrics-address`.
struct MetricsAddress {
    var host: String
    var port: Int

    init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port)
        else { return nil }
        host = String(text[..<colon])
        self.port = port
        if host.isEmpty { return nil }
    }
}

extension Logger {
    /// The same handler and level under another label.
    fileprivate func labelled(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = logLevel
        return logger
    }
}
