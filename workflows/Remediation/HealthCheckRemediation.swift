// The fleet controller's health-check step: when a cluster has nothing else to do, its
// MachineHealthChecks (read from the applied objects) are evaluated over what the controller
// observed (Fleet's ``HealthChecks/step(cluster:checks:now:annotations:rateLimit:)``, pure),
// and each machine to replace becomes a Remediate start, under the id
// `remediate/<ns>/<cluster>/<machine>` (a machine is remediated once: names are never reused)
// and the cluster's unique key. What to record comes with it: `RemediationSkipped`
// (TooManyUnhealthy) when a refusal begins, `RemediationAllowed` when it ends, and
// `RemediationDecided` once a start is accepted (it feeds the per-cluster rate limit).
public import Engine
public import EventLog
public import Fleet

/// What the health checks ask of the controller for one cluster.
public struct HealthCheckActions: Hashable, Sendable {
    public var starts: [FleetController.Start]
    /// To record now.
    public var facts: [FleetEvent]
    /// To record once the start of that workflow id is accepted.
    public var onStarted: [String: FleetEvent]

    public init(starts: [FleetController.Start] = [], facts: [FleetEvent] = [], onStarted: [String: FleetEvent] = [:]) {
        self.starts = starts
        self.facts = facts
        self.onStarted = onStarted
    }
}

public enum HealthCheckRemediation {
    public static let verb = "remediate"

    /// The controller's seam, reading the applied health checks from `log`.
    public static func seam(
        log: EventLog, tuning: FleetController.Tuning, rateLimit: RemediationRateLimit = .default
    ) -> FleetControllerService.HealthChecks {
        { cluster, observed, now in
            let checks: [MachineHealthCheck]
            do { checks = try FleetView.healthChecks(log.reader, namespace: cluster.namespace, cluster: cluster.name) } catch {
                return HealthCheckActions()  // a damaged projection: judge nothing rather than guess
            }
            return actions(cluster: cluster, observed: observed, checks: checks, now: now, tuning: tuning, rateLimit: rateLimit)
        }
    }

    /// What to start and record for `cluster` at `now` (pure). At most one start: the cluster's
    /// unique key admits one lifecycle workflow at a time, and the next pass sees the new level.
    public static func actions(
        cluster: DesiredCluster, observed: ObservedCluster, checks: [MachineHealthCheck], now: Timestamp,
        tuning: FleetController.Tuning, rateLimit: RemediationRateLimit = .default
    ) -> HealthCheckActions {
        guard !checks.isEmpty, let installed = observed.controlPlane?.installedVersion else { return HealthCheckActions() }
        let summary = ClusterSummary(namespace: cluster.namespace, name: cluster.name, paused: cluster.paused, observed: observed)
        let step = HealthChecks.step(cluster: summary, checks: checks, now: now, rateLimit: rateLimit)
        var result = HealthCheckActions(facts: step.audit)
        for remediation in step.remediations {
            guard let deployment = cluster.deployments.first(where: { $0.name == remediation.deployment }) else { continue }
            let machines = observed.machines.filter { $0.value.deployment == deployment.name && $0.value.phase != HealthChecks.deletingPhase }
                .keys.sorted()
            let input = Remediate.Input(
                runID: remediation.workflowID, cluster: cluster.ref, deployment: deployment.name, check: remediation.check,
                machine: remediation.finding.machine, reason: remediation.finding.reason.rawValue, message: remediation.finding.message,
                version: installed.description, image: cluster.catalog?.machineImage(for: installed), template: deployment.template, replicas: deployment.replicas,
                machines: machines, maxSurge: deployment.maxSurge, drainTimeoutSeconds: tuning.drainTimeoutSeconds,
                nodeStartupTimeoutSeconds: cluster.nodeStartupTimeoutSeconds, pollIntervalMilliseconds: tuning.pollIntervalMilliseconds)
            result.starts.append(
                FleetController.Start(
                    workflowID: remediation.workflowID, type: Remediate.type, input: Activities.encode(input),
                    uniqueKey: FleetController.uniqueKey(namespace: cluster.namespace, name: cluster.name),
                    reason: "MachineHealthCheck \(remediation.check): \(remediation.finding.machine) \(remediation.finding.reason.rawValue): \(remediation.finding.message)"))
            result.onStarted[remediation.workflowID] = HealthChecks.decided(remediation, cluster: summary, at: now)
            break
        }
        return result
    }
}
