// The fleet controller's decision: given one cluster's desired state, what was observed of it
// and the lifecycle workflows running for it, which workflow closes the gap. Pure: the same
// inputs always give the same starts, with the same ids, so a crash and restart re-derive the
// id of a change already acted on and the engine refuses it (`workflowExists`,
// `alreadyRunning`); the unique key `cluster/<ns>/<name>` keeps one lifecycle workflow per
// cluster at a time.
//
// Workflow ids (stored format: they name the workflows' streams):
//   create/<ns>/<name>/r<rev>           CreateCluster, rev = the Cluster's creation
//   delete/<ns>/<name>/r<rev>           DeleteCluster, rev = the Cluster's deletion
//   upgrade/<ns>/<name>/r<rev>          ChainedUpgrade, rev = the change that set the desired version
//   scale/<ns>/<name>/<md>/r<rev>       ScaleMachineDeployment, rev = the MachineDeployment's last change
//   rollout/<ns>/<name>/<md>/r<rev>     RollingUpdate or InPlaceUpgrade of a worker version change;
//                                       RollingUpdate of a template change, rev = the later of the
//                                       MachineDeployment's and its templates' last change
// where rev is the revision of the namespace's `fleet/desired/<ns>` stream.
import Engine
public import Fleet

/// Plans the lifecycle workflows of the fleet, one cluster at a time.
public enum FleetController {
    /// A workflow to start.
    public struct Start: Hashable, Sendable {
        public var workflowID: String
        public var type: String
        public var input: String
        public var uniqueKey: String
        /// Why (recorded in the cluster's audit timeline).
        public var reason: String
    }

    /// The observed control plane's status when no TenantControlPlane exists.
    public static let absent = "Absent"

    /// Timing of the workflows the controller starts (short in tests, the workflows' own
    /// defaults otherwise).
    public struct Tuning: Hashable, Sendable {
        public var pollIntervalMilliseconds: Int
        public var stepRetryDelaySeconds: Int
        public var controlPlaneTimeoutSeconds: Int
        public var drainTimeoutSeconds: Int

        public init(
            pollIntervalMilliseconds: Int = 2000, stepRetryDelaySeconds: Int = 30, controlPlaneTimeoutSeconds: Int = 1800,
            drainTimeoutSeconds: Int = 600
        ) {
            self.pollIntervalMilliseconds = pollIntervalMilliseconds
            self.stepRetryDelaySeconds = stepRetryDelaySeconds
            self.controlPlaneTimeoutSeconds = controlPlaneTimeoutSeconds
            self.drainTimeoutSeconds = drainTimeoutSeconds
        }
    }

    /// One lifecycle workflow per cluster at a time.
    public static func uniqueKey(namespace: String, name: String) -> String { "cluster/\(namespace)/\(name)" }

    static let verbs = ["create", "delete", "upgrade", "scale", "rollout", HealthCheckRemediation.verb]

    /// Whether `workflowID` (or a child of it, whose id starts with its parent's) is one of the
    /// controller's lifecycle workflows of cluster `namespace/name`.
    public static func belongs(_ workflowID: String, namespace: String, name: String) -> Bool {
        verbs.contains { workflowID.hasPrefix("\($0)/\(namespace)/\(name)/") }
    }

    /// Whether `workflowID` is a lifecycle workflow the controller starts (not a child of one).
    public static func isTopLevel(_ workflowID: String) -> Bool {
        let parts = workflowID.split(separator: "/", omittingEmptySubsequences: false)
        // `remediate/<ns>/<name>/<machine>`: named after the machine it replaces.
        if parts.first.map(String.init) == HealthCheckRemediation.verb { return parts.count == 4 }
        guard let verb = parts.first, let last = parts.last, last.hasPrefix("r"), UInt64(last.dropFirst()) != nil else { return false }
        switch verb {
        case "create", "delete", "upgrade": return parts.count == 4
        case "scale", "rollout": return parts.count == 5
        default: return false
        }
    }

    /// The workflows to start for `desired`, given what was `observed` (fresh: read after
    /// `running` was taken) and the ids of the cluster's lifecycle workflows running now.
    /// At most one: the first gap in the order delete, create, control-plane upgrade, replicas,
    /// worker template (machines made from another template than the current one: rolled),
    /// worker version. Nothing while a lifecycle workflow runs (its effects are half done, so
    /// the observation is not a level to act on), nothing for a paused cluster, nothing that
    /// would downgrade.
    public static func plan(
        desired: DesiredCluster, observed: ObservedCluster, running: [String], tuning: Tuning = Tuning()
    ) -> [Start] {
        let key = uniqueKey(namespace: desired.namespace, name: desired.name)
        let base = "\(desired.namespace)/\(desired.name)"
        func start<Input: Encodable>(_ verb: String, _ suffix: String, _ type: String, _ make: (String) -> Input, _ reason: String)
            -> Start
        {
            let id = "\(verb)/\(base)/\(suffix)"
            return Start(workflowID: id, type: type, input: Activities.encode(make(id)), uniqueKey: key, reason: reason)
        }
        let controlPlane = observed.controlPlane
        let controlPlaneExists = controlPlane.map { $0.status != absent } ?? false
        if desired.deleted {
            guard let revision = desired.deletedRevision, controlPlaneExists || !observed.machines.isEmpty else { return [] }
            return [start("delete", "r\(revision)", DeleteCluster.type, { id in
                DeleteCluster.Input(runID: id, cluster: desired.ref, machines: observed.machines.keys.sorted())
            }, "the Cluster was deleted (desired revision \(revision))")]
        }
        guard !desired.paused, running.isEmpty, let version = desired.version else { return [] }
        guard controlPlaneExists, let controlPlane else {
            // Machines without a control plane are not a level to create over: leave them to a person.
            guard observed.machines.isEmpty else { return [] }
            return [start("create", "r\(desired.createdRevision)", CreateCluster.type, { id in
                CreateCluster.Input(
                    runID: id, cluster: desired.ref, version: version.description,
                    controlPlaneReplicas: desired.controlPlaneReplicas,
                    deployments: desired.deployments.map {
                        // Workers at their MachineDeployment's version, as CAPI creates them
                        // (apply refuses one newer than the control plane; min() keeps the rule).
                        let workers = min($0.version ?? version, version)
                        return CreateCluster.Deployment(
                            name: $0.name, replicas: $0.replicas, image: desired.catalog?.machineImage(for: workers),
                            template: $0.template, version: workers.description)
                    },
                    nodeStartupTimeoutSeconds: desired.nodeStartupTimeoutSeconds,
                    controlPlaneTimeoutSeconds: tuning.controlPlaneTimeoutSeconds,
                    pollIntervalMilliseconds: tuning.pollIntervalMilliseconds)
            }, "new cluster at \(version) (desired revision \(desired.createdRevision))")]
        }
        guard controlPlane.ready, let installed = controlPlane.installedVersion else { return [] }
        let machines = machinesByDeployment(observed)
        if version > installed {
            guard let catalog = desired.catalog else { return [] }
            return [start("upgrade", "r\(desired.versionRevision)", ChainedUpgrade.type, { id in
                ChainedUpgrade.Input(
                    runID: id, cluster: desired.ref, target: version.description, catalog: catalog,
                    deployments: desired.deployments.map { deployment in
                        let own = machines[deployment.name] ?? []
                        let running = own.compactMap(\.version).min() ?? min(deployment.version ?? installed, installed)
                        return ChainedUpgrade.Deployment(
                            name: deployment.name, version: running.description, machines: own.map(\.name),
                            replicas: deployment.replicas, maxSurge: deployment.maxSurge, maxUnavailable: deployment.maxUnavailable,
                            template: deployment.template)
                    },
                    stepRetryDelaySeconds: tuning.stepRetryDelaySeconds, drainTimeoutSeconds: tuning.drainTimeoutSeconds,
                    nodeStartupTimeoutSeconds: desired.nodeStartupTimeoutSeconds,
                    pollIntervalMilliseconds: tuning.pollIntervalMilliseconds)
            }, "control plane \(installed) → \(version) (desired revision \(desired.versionRevision))")]
        }
        // The control plane is at (or, never downgraded, above) the desired version: workers.
        for deployment in desired.deployments {
            let own = machines[deployment.name] ?? []
            guard own.count != deployment.replicas else { continue }
            return [start("scale", "\(deployment.name)/r\(deployment.revision)", ScaleMachineDeployment.type, { id in
                ScaleMachineDeployment.Input(
                    runID: id, cluster: desired.ref, deployment: deployment.name, replicas: deployment.replicas,
                    version: installed.description, image: desired.catalog?.machineImage(for: installed), template: deployment.template,
                    machines: own.map { machine in
                        RolloutMachine(
                            name: machine.name,
                            isUpToDate: machine.version == (deployment.version ?? installed)
                                && !deployment.isTemplateOutOfDate(machine.templateDigest),
                            isReady: machine.ready, createdAt: Timestamp(nanoseconds: Int64(machine.ordinal)))
                    },
                    strategy: deployment.strategy, deletionOrder: deployment.deletionOrder, seed: deployment.revision,
                    drainTimeoutSeconds: tuning.drainTimeoutSeconds, nodeStartupTimeoutSeconds: desired.nodeStartupTimeoutSeconds,
                    pollIntervalMilliseconds: tuning.pollIntervalMilliseconds)
            }, "MachineDeployment \(deployment.name): \(own.count) → \(deployment.replicas) machines (desired revision \(deployment.revision))")]
        }
        for deployment in desired.deployments {
            // Never newer than the control plane (the kubelet skew rule), never down.
            if let target = deployment.version, target > installed { continue }
            let own = machines[deployment.name] ?? []
            // A machine that has not reported its version yet: wait for it.
            guard !own.isEmpty, own.allSatisfy({ $0.version != nil }) else { continue }
            // Machines made from another template than the current one (CAPI's rollout on any
            // template change). OnDelete: a person deletes them; replacements are made new.
            let stale = own.filter { deployment.isTemplateOutOfDate($0.templateDigest) }
            if !stale.isEmpty, case .rollingUpdate = deployment.strategy {
                // At the deployment's version, never below a machine's (no downgrade), never
                // above the control plane.
                let newest = own.compactMap(\.version).max()!
                let version = min(installed, max(deployment.version ?? newest, newest))
                let revision = max(deployment.revision, deployment.templateRevision)
                var reason = "MachineDeployment \(deployment.name): template changed, \(stale.count) of \(own.count) machines out of date"
                if let from = own.compactMap(\.version).min(), from < version { reason += ", workers \(from) → \(version)" }
                return [start("rollout", "\(deployment.name)/r\(revision)", RollingUpdate.type, { id in
                    RollingUpdate.Input(
                        runID: id, cluster: desired.ref, deployment: deployment.name, version: version.description,
                        image: desired.catalog?.machineImage(for: version), template: deployment.template, replicas: deployment.replicas,
                        maxSurge: deployment.maxSurge, maxUnavailable: deployment.maxUnavailable, machines: own.map(\.name),
                        drainTimeoutSeconds: tuning.drainTimeoutSeconds, nodeStartupTimeoutSeconds: desired.nodeStartupTimeoutSeconds,
                        pollIntervalMilliseconds: tuning.pollIntervalMilliseconds)
                }, reason + " (desired revision \(revision)), rolling")]
            }
            guard let target = deployment.version else { continue }
            let old = own.filter { $0.version! < target }
            guard let from = old.compactMap(\.version).min() else { continue }
            let reason = "MachineDeployment \(deployment.name): workers \(from) → \(target) (desired revision \(deployment.revision))"
            let suffix = "\(deployment.name)/r\(deployment.revision)"
            if InPlaceEligibility.refusal(from: from, to: target, strategy: deployment.strategy) == nil,
                old.allSatisfy({ $0.version!.minorLine == target.minorLine })
            {
                return [start("rollout", suffix, InPlaceUpgrade.type, { id in
                    InPlaceUpgrade.Input(
                        runID: id, cluster: desired.ref, deployment: deployment.name, fromVersion: from.description,
                        toVersion: target.description, machines: old.map(\.name), maxUnavailable: deployment.maxUnavailable,
                        replaceOnFallback: InPlaceEligibility.allowsReplacementFallback(deployment.strategy),
                        image: desired.catalog?.machineImage(for: target), template: deployment.template, drainTimeoutSeconds: tuning.drainTimeoutSeconds,
                        nodeStartupTimeoutSeconds: desired.nodeStartupTimeoutSeconds,
                        pollIntervalMilliseconds: tuning.pollIntervalMilliseconds)
                }, reason + ", in place")]
            }
            guard case .rollingUpdate = deployment.strategy else { continue }  // OnDelete: a person deletes machines
            return [start("rollout", suffix, RollingUpdate.type, { id in
                RollingUpdate.Input(
                    runID: id, cluster: desired.ref, deployment: deployment.name, version: target.description,
                    image: desired.catalog?.machineImage(for: target), template: deployment.template, replicas: deployment.replicas,
                    maxSurge: deployment.maxSurge, maxUnavailable: deployment.maxUnavailable, machines: own.map(\.name),
                    drainTimeoutSeconds: tuning.drainTimeoutSeconds, nodeStartupTimeoutSeconds: desired.nodeStartupTimeoutSeconds,
                    pollIntervalMilliseconds: tuning.pollIntervalMilliseconds)
            }, reason + ", rolling")]
        }
        return []
    }

    struct SeenMachine {
        var name: String
        var ordinal: Int
        var version: KubernetesVersion?
        var ready: Bool
        /// The template digest it was made from (nil: not recorded, counts as current).
        var templateDigest: String?
    }

    /// The observed machines of each deployment that are not being deleted, oldest (lowest
    /// ordinal) first.
    static func machinesByDeployment(_ observed: ObservedCluster) -> [String: [SeenMachine]] {
        var result: [String: [SeenMachine]] = [:]
        for (name, machine) in observed.machines where machine.phase != "Deleting" {
            let ordinal = MachineNaming.ordinal(of: name, deployment: machine.deployment) ?? 0
            result[machine.deployment, default: []].append(
                SeenMachine(name: name, ordinal: ordinal, version: machine.version,
                            ready: machine.conditions["Ready"]?.status == "True", templateDigest: machine.templateDigest))
        }
        return result.mapValues { $0.sorted { ($0.ordinal, $0.name) < ($1.ordinal, $1.name) } }
    }
}
