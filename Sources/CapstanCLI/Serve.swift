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
            are served at /metrics and a health check at /healthz; the address actually bound is \
            printed on standard output as `capstan serve: metrics on http://HOST:PORT`.
            """)

    @OptionGroup var common: CommonOptions

    @Option(help: ArgumentHelp("The management cluster's kubeconfig.", valueName: "file"))
    var kubeconfig: String

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
        do { connection = try Kubeconfig.load(path: kubeconfig).connection(context: context) } catch {
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
        let store = MeteredStore(try await EventLogStore.open(log: log, logger: logger))
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
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: engine, successTerminationBehavior: .gracefullyShutdownGroup),
            .init(service: EngineGauges(engine: engine)),
        ]
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
            services.append(.init(service: Self.httpEndpoints(address, registry: registry, engine: engine, logger: logger)))
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

    /// `/metrics` (Prometheus text format) and `/healthz` (200 while the engine runs).
    private static func httpEndpoints(
        _ address: MetricsAddress, registry: PrometheusCollectorRegistry, engine: WorkflowEngine, logger: Logger
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
            let running = await engine.runningCount
            var buffer = ByteBuffer()
            buffer.writeString("ok: \(running) workflows running\n")
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: buffer))
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

/// The engine's store with each append timed (`capstan_log_append_duration_seconds`).
final class MeteredStore: EngineStore {
    private let base: EventLogStore
    private let appendLatency = Metrics.Timer(label: "capstan_log_append_duration_seconds", preferredDisplayUnit: .seconds)
    private let appendedEvents = Counter(label: "capstan_log_appended_events_total")

    init(_ base: EventLogStore) { self.base = base }

    func append(_ streams: [StreamAppend], stateWrites: [StateWrite]) async throws -> AppendResult {
        let began = ContinuousClock.now
        let result = try await base.append(streams, stateWrites: stateWrites)
        let (seconds, attoseconds) = (ContinuousClock.now - began).components
        appendLatency.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        appendedEvents.increment(by: streams.reduce(0) { $0 + $1.events.count })
        return result
    }
    func readStream(_ stream: StreamID) throws -> [RecordedEvent] { try base.readStream(stream) }
    func streamExists(_ stream: StreamID) throws -> Bool { try base.streamExists(stream) }
    func state(forKey key: String) throws -> [UInt8]? { try base.state(forKey: key) }
    func stateEntries(withPrefix prefix: String) throws -> [(key: String, value: [UInt8])] {
        try base.stateEntries(withPrefix: prefix)
    }
    func tail(_ stream: StreamID, after: LogPosition) -> AsyncThrowingStream<RecordedEvent, any Error> {
        base.tail(stream, after: after)
    }
}

/// Publishes the engine's running workflows and in-flight attempts as gauges once a second.
struct EngineGauges: Service {
    let engine: WorkflowEngine

    func run() async throws {
        let running = Gauge(label: "capstan_workflows", dimensions: [("state", "running")])
        let inFlight = Gauge(label: "capstan_activities_in_flight")
        let commits = Gauge(label: "capstan_engine_commits")
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            running.record(await engine.runningCount)
            inFlight.record(await engine.inFlightCount)
            commits.record(await engine.commitCount)
            try? await Task.sleep(for: .seconds(1))
        }
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
