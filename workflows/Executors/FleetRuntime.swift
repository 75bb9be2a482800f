public import Engine
import Metrics

/// What `capstan serve` runs: every workflow type and every executor, with metrics.
public enum FleetRuntime {
    /// Every lifecycle workflow type the engine must know (children included).
    public static var workflows: [WorkflowDefinition] {
        [
            WorkflowDefinition(ProvisionMachine.self), WorkflowDefinition(ControlPlaneUpgradeStep.self),
            WorkflowDefinition(DeleteMachine.self), WorkflowDefinition(CreateCluster.self),
            WorkflowDefinition(DeleteCluster.self), WorkflowDefinition(RollingUpdate.self),
            WorkflowDefinition(InPlaceUpgrade.self), WorkflowDefinition(Remediate.self),
            WorkflowDefinition(ChainedUpgrade.self), WorkflowDefinition(ScaleMachineDeployment.self),
        ]
    }

    /// `executors` with each attempt measured through swift-metrics: latency per activity
    /// (`capstan_activity_duration_seconds`), attempts after the first
    /// (`capstan_activity_retries_total`) and failures by kind (`capstan_activity_failures_total`).
    public static func metered(_ executors: [String: ActivityExecutor]) -> [String: ActivityExecutor] {
        executors.reduce(into: [:]) { metered, entry in
            let (name, executor) = entry
            let latency = Metrics.Timer(
                label: "capstan_activity_duration_seconds", dimensions: [("activity", name)], preferredDisplayUnit: .seconds)
            let retries = Counter(label: "capstan_activity_retries_total", dimensions: [("activity", name)])
            metered[name] = { context in
                if context.attempt > 1 { retries.increment() }
                let began = ContinuousClock.now
                do {
                    let output = try await executor(context)
                    latency.recordInterval(since: began)
                    return output
                } catch {
                    latency.recordInterval(since: began)
                    let kind = (error as? ActivityFailure)?.kind ?? "error"
                    Counter(label: "capstan_activity_failures_total", dimensions: [("activity", name), ("kind", kind)])
                        .increment()
                    throw error
                }
            }
        }
    }
}

extension Metrics.Timer {
    fileprivate func recordInterval(since began: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - began
        let (seconds, attoseconds) = elapsed.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
