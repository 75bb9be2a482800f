public import Engine

/// The status of a Kubernetes condition.
public enum ConditionStatus: String, Hashable, Sendable, Codable, CaseIterable {
    case `true` = "True"
    case `false` = "False"
    case unknown = "Unknown"
}

/// A Node condition as the health check reads it.
public struct NodeCondition: Hashable, Sendable, Codable {
    public var type: String
    public var status: ConditionStatus
    public var lastTransitionTime: Timestamp

    public init(type: String, status: ConditionStatus, lastTransitionTime: Timestamp) {
        self.type = type
        self.status = status
        self.lastTransitionTime = lastTransitionTime
    }
}

/// One `unhealthyNodeConditions` entry: the Node is unhealthy once `type` has been `status`
/// for longer than `timeout`.
public struct UnhealthyCondition: Hashable, Sendable, Codable {
    public var type: String
    public var status: ConditionStatus
    public var timeout: GoDuration

    public init(type: String, status: ConditionStatus, timeout: GoDuration) {
        self.type = type
        self.status = status
        self.timeout = timeout
    }
}

/// When remediation may go ahead, by how many targets are unhealthy.
public enum RemediationTrigger: Hashable, Sendable, Codable {
    /// `maxUnhealthy` (v1beta1) / `triggerIf.unhealthyLessThanOrEqualTo` (v1beta2): at most this
    /// many of the expected machines (a percentage rounds down). CAPI's default is 100%.
    case unhealthyAtMost(IntOrPercent)
    /// `unhealthyRange` (v1beta1) / `triggerIf.unhealthyInRange` (v1beta2), `[min-max]`: wins over the former.
    case unhealthyInRange(min: Int, max: Int)

    /// Parses `[1-3]`.
    ///
    /// - Throws: ``DomainError`` with code `invalidRange`.
    public static func range(parsing text: String) throws -> RemediationTrigger {
        let invalid = DomainError(.invalidRange, "range \"\(text)\" is not [min-max] with whole numbers and min ≤ max (for example [1-3])")
        guard text.hasPrefix("["), text.hasSuffix("]") else { throw invalid }
        let bounds = text.dropFirst().dropLast().split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count == 2,
            bounds.allSatisfy({ !$0.isEmpty && $0.count <= 9 && $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }),
            let low = Int(bounds[0]), let high = Int(bounds[1]), low <= high
        else { throw invalid }
        return .unhealthyInRange(min: low, max: high)
    }
}

/// A MachineHealthCheck's rules, one model for both API versions.
public struct HealthCheckSpec: Hashable, Sendable, Codable {
    public var unhealthyNodeConditions: [UnhealthyCondition]
    /// No Node after this long counts as unhealthy; `nil` disables it (CAPI: 0).
    public var nodeStartupTimeout: GoDuration?
    public var trigger: RemediationTrigger

    /// CAPI's default node start-up timeout, 10 minutes.
    public static let defaultNodeStartupTimeout = GoDuration(seconds: 600)

    public init(
        unhealthyNodeConditions: [UnhealthyCondition], nodeStartupTimeout: GoDuration? = HealthCheckSpec.defaultNodeStartupTimeout,
        trigger: RemediationTrigger = .unhealthyAtMost(.percent(100))
    ) {
        self.unhealthyNodeConditions = unhealthyNodeConditions
        self.nodeStartupTimeout = nodeStartupTimeout.flatMap { $0.nanoseconds == 0 ? nil : $0 }
        self.trigger = trigger
    }

    /// From `cluster.x-k8s.io/v1beta1` fields: `unhealthyConditions[].timeout` and
    /// `nodeStartupTimeout` are Go durations, `maxUnhealthy` int-or-percent, `unhealthyRange` `[min-max]`.
    ///
    /// - Throws: ``DomainError`` for a bad duration, percentage or range.
    public static func v1beta1(
        unhealthyConditions: [(type: String, status: ConditionStatus, timeout: String)], nodeStartupTimeout: String?,
        maxUnhealthy: IntOrPercent?, unhealthyRange: String?
    ) throws -> HealthCheckSpec {
        let conditions = try unhealthyConditions.map {
            UnhealthyCondition(type: $0.type, status: $0.status, timeout: try GoDuration(parsing: $0.timeout))
        }
        let startup = try nodeStartupTimeout.map { try GoDuration(parsing: $0) } ?? defaultNodeStartupTimeout
        let trigger = try unhealthyRange.map(RemediationTrigger.range(parsing:)) ?? .unhealthyAtMost(maxUnhealthy ?? .percent(100))
        return HealthCheckSpec(unhealthyNodeConditions: conditions, nodeStartupTimeout: startup, trigger: trigger)
    }

    /// From `cluster.x-k8s.io/v1beta2` fields: `checks.unhealthyNodeConditions[].timeoutSeconds`,
    /// `checks.nodeStartupTimeoutSeconds`, `remediation.triggerIf.{unhealthyLessThanOrEqualTo, unhealthyInRange}`.
    ///
    /// - Throws: ``DomainError`` for a negative number of seconds or a bad range.
    public static func v1beta2(
        unhealthyNodeConditions: [(type: String, status: ConditionStatus, timeoutSeconds: Int)], nodeStartupTimeoutSeconds: Int?,
        unhealthyLessThanOrEqualTo: IntOrPercent?, unhealthyInRange: String?
    ) throws -> HealthCheckSpec {
        func seconds(_ value: Int, _ what: String) throws -> GoDuration {
            guard value >= 0 else { throw DomainError(.invalidDuration, "\(what) \(value) is negative") }
            return GoDuration(seconds: Int64(value))
        }
        let conditions = try unhealthyNodeConditions.map {
            UnhealthyCondition(type: $0.type, status: $0.status, timeout: try seconds($0.timeoutSeconds, "timeoutSeconds"))
        }
        let startup = try nodeStartupTimeoutSeconds.map { try seconds($0, "nodeStartupTimeoutSeconds") } ?? defaultNodeStartupTimeout
        let trigger =
            try unhealthyInRange.map(RemediationTrigger.range(parsing:)) ?? .unhealthyAtMost(unhealthyLessThanOrEqualTo ?? .percent(100))
        return HealthCheckSpec(unhealthyNodeConditions: conditions, nodeStartupTimeout: startup, trigger: trigger)
    }
}

/// One machine a health check covers, with what is known of its Node.
public struct HealthCheckTarget: Hashable, Sendable, Codable {
    public enum NodeState: Hashable, Sendable, Codable {
        /// No Node has joined for this machine yet.
        case notJoined
        /// The Node exists, with these conditions.
        case joined(conditions: [NodeCondition])
        /// The machine had a Node (`nodeRef`) and it is gone.
        case missing
    }

    public var machine: String
    public var createdAt: Timestamp
    /// When the machine's infrastructure (its VM) became ready, if it has.
    public var infrastructureReadyAt: Timestamp?
    public var node: NodeState
    /// `cluster.x-k8s.io/remediate-machine`: remediate now.
    public var hasRemediateAnnotation: Bool
    /// `cluster.x-k8s.io/skip-remediation`, or the machine is paused: never judged.
    public var isSkipped: Bool
    public var isDeleting: Bool

    public init(
        machine: String, createdAt: Timestamp, infrastructureReadyAt: Timestamp? = nil, node: NodeState,
        hasRemediateAnnotation: Bool = false, isSkipped: Bool = false, isDeleting: Bool = false
    ) {
        self.machine = machine
        self.createdAt = createdAt
        self.infrastructureReadyAt = infrastructureReadyAt
        self.node = node
        self.hasRemediateAnnotation = hasRemediateAnnotation
        self.isSkipped = isSkipped
        self.isDeleting = isDeleting
    }
}

/// Why a target is unhealthy (CAPI's `HealthCheckSucceeded=False` reasons). Stored format.
public enum UnhealthyReason: String, Hashable, Sendable, Codable {
    case remediateAnnotation = "HasRemediateAnnotation"
    case nodeDeleted = "NodeDeleted"
    case nodeStartupTimeout = "NodeStartupTimeout"
    case unhealthyNode = "UnhealthyNode"
}

/// The outcome of evaluating a health check at one instant.
public struct HealthCheckVerdict: Hashable, Sendable, Codable {
    public struct Finding: Hashable, Sendable, Codable {
        public var machine: String
        public var reason: UnhealthyReason
        public var message: String
    }

    /// Targets judged (skipped ones excluded): CAPI's `expectedMachines`.
    public var expected: Int
    public var healthy: [String]
    public var unhealthy: [Finding]
    /// Not healthy yet not unhealthy: a matching condition or a missing Node still inside its timeout.
    public var pending: [String]
    /// Whether remediation may go ahead; false means short-circuited (``shortCircuitReason``).
    public var remediationAllowed: Bool
    /// `TooManyUnhealthy` when the trigger refuses remediation.
    public var shortCircuitReason: String?
    /// How many more remediations the trigger allows (CAPI `status.remediationsAllowed`).
    public var remediationsAllowed: Int
    /// The earliest instant a verdict could change with no new observation (a timeout
    /// running out), so a workflow can set a timer; `nil` when only a new observation can.
    public var nextEvaluation: Timestamp?

    /// The machines to remediate now: the unhealthy ones, unless short-circuited.
    public var toRemediate: [String] { remediationAllowed ? unhealthy.map(\.machine) : [] }
}

/// MachineHealthCheck evaluation (cluster-api `internal/controllers/machinehealthcheck`).
public enum HealthCheck {
    /// The reason a short-circuited check reports.
    public static let tooManyUnhealthy = "TooManyUnhealthy"

    /// Evaluates `targets` at `now`.
    ///
    /// A target is unhealthy, in this order, when it carries `remediate-machine`, when its
    /// Node is gone, when (the cluster being up) it has had no Node for longer than the
    /// start-up timeout counted from the latest of machine creation, machine infrastructure
    /// ready, control plane initialized and cluster infrastructure ready, or when a listed
    /// condition has held its status for longer than its timeout since `lastTransitionTime`.
    /// Timeouts are strict (past, not at), and a pending target is due again one second
    /// after its deadline, as CAPI requeues. Nothing but the first two is judged before the
    /// control plane is initialized and the cluster infrastructure ready; Capstan's control
    /// plane (Kamaji) has no machines, so CAPI's exception for control-plane machines never applies.
    /// Skipped targets are left out; deleting ones count as expected but never healthy.
    ///
    /// - Parameters:
    ///   - controlPlaneInitializedAt: when the control plane first became available, or `nil`.
    ///   - infrastructureReadyAt: when the cluster's infrastructure became ready, or `nil`.
    public static func evaluate(
        _ spec: HealthCheckSpec, targets: [HealthCheckTarget], controlPlaneInitializedAt: Timestamp?,
        infrastructureReadyAt: Timestamp?, now: Timestamp
    ) -> HealthCheckVerdict {
        var healthy: [String] = []
        var unhealthy: [HealthCheckVerdict.Finding] = []
        var pending: [String] = []
        var deadlines: [Timestamp] = []
        let judged = targets.filter { !$0.isSkipped }.sorted { $0.machine < $1.machine }
        for target in judged {
            switch judge(spec, target, controlPlaneInitializedAt: controlPlaneInitializedAt, infrastructureReadyAt: infrastructureReadyAt, now: now) {
            case .unhealthy(let reason, let message):
                unhealthy.append(.init(machine: target.machine, reason: reason, message: message))
            case .pending(let deadline):
                pending.append(target.machine)
                deadlines.append(deadline + .seconds(1))
            case .healthy:
                if !target.isDeleting, case .joined = target.node { healthy.append(target.machine) }
            }
        }
        let unhealthyCount = judged.count - healthy.count
        let allowed: Bool
        let remaining: Int
        switch spec.trigger {
        case .unhealthyAtMost(let limit):
            let most = limit.scaled(against: judged.count, rounding: .down)
            allowed = unhealthyCount <= most
            remaining = most - unhealthyCount
        case .unhealthyInRange(let low, let high):
            allowed = unhealthyCount >= low && unhealthyCount <= high
            remaining = high - unhealthyCount
        }
        return HealthCheckVerdict(
            expected: judged.count, healthy: healthy, unhealthy: unhealthy, pending: pending, remediationAllowed: allowed,
            shortCircuitReason: allowed ? nil : tooManyUnhealthy, remediationsAllowed: allowed ? max(0, remaining) : 0,
            nextEvaluation: deadlines.min())
    }

    private enum Judgement {
        case healthy
        case pending(deadline: Timestamp)
        case unhealthy(UnhealthyReason, String)
    }

    private static func judge(
        _ spec: HealthCheckSpec, _ target: HealthCheckTarget, controlPlaneInitializedAt: Timestamp?, infrastructureReadyAt: Timestamp?,
        now: Timestamp
    ) -> Judgement {
        if target.hasRemediateAnnotation {
            return .unhealthy(.remediateAnnotation, "marked for remediation with the cluster.x-k8s.io/remediate-machine annotation")
        }
        if target.node == .missing {
            return .unhealthy(.nodeDeleted, "the Node of machine \(target.machine) has been deleted")
        }
        guard let controlPlaneInitializedAt, let infrastructureReadyAt else { return .healthy }
        switch target.node {
        case .missing:
            preconditionFailure("handled above")
        case .notJoined:
            guard let timeout = spec.nodeStartupTimeout else { return .healthy }
            let start = [target.createdAt, target.infrastructureReadyAt, controlPlaneInitializedAt, infrastructureReadyAt].compactMap { $0 }.max()!
            let deadline = start + timeout.duration
            if deadline < now { return .unhealthy(.nodeStartupTimeout, "the Node failed to report start-up in \(timeout)") }
            return .pending(deadline: deadline)
        case .joined(let conditions):
            var earliest: Timestamp?
            for rule in spec.unhealthyNodeConditions {
                guard let condition = conditions.first(where: { $0.type == rule.type }), condition.status == rule.status else { continue }
                let deadline = condition.lastTransitionTime + rule.timeout.duration
                if deadline < now {
                    return .unhealthy(
                        .unhealthyNode, "condition \(rule.type) on the Node has been \(rule.status.rawValue) for more than \(rule.timeout)")
                }
                earliest = min(earliest ?? deadline, deadline)
            }
            return earliest.map { .pending(deadline: $0) } ?? .healthy
        }
    }
}

// MARK: - A cluster's health check, as the fleet controller applies it

/// One MachineHealthCheck resolved against the fleet: its rules and the MachineDeployments
/// whose machines its selector matches (machines carry their deployment's template labels
/// and `cluster.x-k8s.io/{cluster,deployment}-name`, as CAPI's do).
public struct MachineHealthCheck: Hashable, Sendable, Codable {
    public var namespace: String
    public var name: String
    public var clusterName: String
    public var deployments: [String]
    public var spec: HealthCheckSpec

    public init(namespace: String, name: String, clusterName: String, deployments: [String], spec: HealthCheckSpec) {
        self.namespace = namespace
        self.name = name
        self.clusterName = clusterName
        self.deployments = deployments.sorted()
        self.spec = spec
    }
}

extension HealthCheckSpec {
    /// The model of an applied MachineHealthCheck (either API version, already read by Fleet's
    /// manifests; `apply` refused bad values, so a failure here means a damaged projection).
    ///
    /// - Throws: ``DomainError`` naming the condition status or range that does not read.
    public init(_ desired: DesiredSpec.HealthCheck) throws {
        let conditions = try desired.unhealthyNodeConditions.map { condition in
            guard let status = ConditionStatus(rawValue: condition.status) else {
                throw DomainError(
                    .invalidConditionStatus, "unhealthy condition \(condition.type): status \"\(condition.status)\" is not True, False or Unknown")
            }
            return UnhealthyCondition(type: condition.type, status: status, timeout: condition.timeout)
        }
        let trigger =
            try desired.unhealthyRange.map(RemediationTrigger.range(parsing:)) ?? .unhealthyAtMost(desired.maxUnhealthy ?? .percent(100))
        self.init(
            unhealthyNodeConditions: conditions, nodeStartupTimeout: desired.nodeStartupTimeout ?? HealthCheckSpec.defaultNodeStartupTimeout,
            trigger: trigger)
    }
}

/// A per-cluster limit on remediations: at most `maxRemediations` started in any trailing
/// `windowSeconds` (CAPI has `maxInFlight` on the MachineDeployment and `maxRetry` /
/// `retryPeriod` on KCP; Capstan bounds a cluster's replacements in time instead, so a
/// flapping network cannot replace a whole fleet).
public struct RemediationRateLimit: Hashable, Sendable, Codable {
    public var maxRemediations: Int
    public var windowSeconds: Int64

    public init(maxRemediations: Int, windowSeconds: Int64) {
        self.maxRemediations = maxRemediations
        self.windowSeconds = windowSeconds
    }

    /// Three an hour.
    public static let `default` = RemediationRateLimit(maxRemediations: 3, windowSeconds: 3600)
}

/// What the health checks decide for one cluster at one instant.
public struct HealthCheckDecision: Hashable, Sendable, Codable {
    /// Why nothing at all was judged.
    public enum NotJudged: String, Hashable, Sendable, Codable {
        /// `Cluster.spec.paused` (CAPI's MHC reconciler skips a paused cluster).
        case clusterPaused = "ClusterPaused"
    }

    public var check: String
    public var notJudged: NotJudged?
    /// The evaluator's verdict over the check's machines.
    public var verdict: HealthCheckVerdict
    /// Machines to replace now: unhealthy, allowed by the trigger and the rate limit, not
    /// already being deleted, `remediate-machine` first then newest first (CAPI's
    /// MachineSet `sortMachinesToRemediate`).
    public var remediate: [HealthCheckVerdict.Finding]
    /// Unhealthy and allowed, held back by the per-cluster rate limit.
    public var rateLimited: [HealthCheckVerdict.Finding]
    /// Left out by `cluster.x-k8s.io/skip-remediation` or `cluster.x-k8s.io/paused`.
    public var skipped: [String]
    /// True when machines are unhealthy and the trigger refuses remediation: the audit's
    /// `RemediationSkipped` with reason ``HealthCheck/tooManyUnhealthy``.
    public var shortCircuited: Bool
    /// When to evaluate again with no new observation (a timeout or the rate-limit window
    /// running out); nil when only a new observation can change the decision.
    public var nextEvaluation: Timestamp?
}

/// The fleet controller's health-check step: a cluster's observed machines against its
/// MachineHealthChecks, through ``HealthCheck/evaluate(_:targets:controlPlaneInitializedAt:infrastructureReadyAt:now:)``.
///
/// Conventions of the observed state it reads (``ClusterSummary``, recorded by
/// ``conditionChanges(namespace:cluster:machine:previous:node:at:)``): a machine with no
/// conditions has no Node yet; a `Ready` condition with reason ``nodeNotFoundReason`` means
/// its Node is gone; phase `Deleting` means it is on its way out.
public enum HealthChecks {
    public static let skipRemediationAnnotation = "cluster.x-k8s.io/skip-remediation"
    public static let remediateMachineAnnotation = "cluster.x-k8s.io/remediate-machine"
    public static let pausedAnnotation = "cluster.x-k8s.io/paused"
    /// The reason recorded on `Ready` when a machine's Node disappeared (CAPI's `NodeNotFound`).
    public static let nodeNotFoundReason = "NodeNotFound"
    public static let deletingPhase = "Deleting"

    /// Evaluates `check` over `cluster`'s machines at `now`.
    ///
    /// - Parameters:
    ///   - recentRemediations: when this cluster's earlier remediations started (any check);
    ///     those inside the rate limit's window use up its allowance.
    ///   - annotations: each machine's annotations where they can be seen (its VirtualMachine).
    public static func evaluate(
        cluster: ClusterSummary, check: MachineHealthCheck, now: Timestamp, recentRemediations: [Timestamp],
        annotations: [String: [String: String]] = [:], rateLimit: RemediationRateLimit = .default
    ) -> HealthCheckDecision {
        let covered = cluster.machines.filter { check.deployments.contains($0.deployment) }
        var skipped: [String] = []
        var created: [String: Timestamp] = [:]
        let targets = covered.map { machine -> HealthCheckTarget in
            let marks = annotations[machine.name] ?? [:]
            let skip = marks[skipRemediationAnnotation] != nil || marks[pausedAnnotation] != nil
            if skip { skipped.append(machine.name) }
            let createdAt = machine.createdNanoseconds.map(Timestamp.init(nanoseconds:)) ?? now
            created[machine.name] = createdAt
            return HealthCheckTarget(
                machine: machine.name, createdAt: createdAt, node: nodeState(machine), hasRemediateAnnotation: marks[remediateMachineAnnotation] != nil,
                isSkipped: skip, isDeleting: machine.phase == deletingPhase)
        }
        let initialized = cluster.controlPlane.initializedNanoseconds.map(Timestamp.init(nanoseconds:))
        // Kamaji + CAPK: the KubevirtCluster is ready when the control plane's endpoint is, so
        // CAPI's "infrastructure ready" instant is the control plane's.
        let verdict = HealthCheck.evaluate(
            check.spec, targets: targets, controlPlaneInitializedAt: initialized, infrastructureReadyAt: initialized, now: now)
        guard !cluster.paused else {
            return HealthCheckDecision(
                check: check.name, notJudged: .clusterPaused, verdict: verdict, remediate: [], rateLimited: [], skipped: skipped.sorted(),
                shortCircuited: false, nextEvaluation: nil)
        }
        let deleting = Set(targets.filter(\.isDeleting).map(\.machine))
        let annotated = Set(targets.filter(\.hasRemediateAnnotation).map(\.machine))
        let candidates = verdict.toRemediate.isEmpty
            ? []
            : verdict.unhealthy.filter { !deleting.contains($0.machine) }.sorted { a, b in
                let (ma, mb) = (annotated.contains(a.machine), annotated.contains(b.machine))
                if ma != mb { return ma }
                let (ca, cb) = (created[a.machine]!, created[b.machine]!)
                return ca != cb ? ca > cb : a.machine < b.machine
            }
        let window = Duration.seconds(rateLimit.windowSeconds)
        let inWindow = recentRemediations.filter { $0 <= now && now.duration(since: $0) < window }.sorted()
        let room = max(0, rateLimit.maxRemediations - inWindow.count)
        let remediate = Array(candidates.prefix(room))
        let rateLimited = Array(candidates.dropFirst(room))
        var next = verdict.nextEvaluation
        if !rateLimited.isEmpty, let oldest = inWindow.first {
            let freed = oldest + window
            next = min(next ?? freed, freed)
        }
        return HealthCheckDecision(
            check: check.name, notJudged: nil, verdict: verdict, remediate: remediate, rateLimited: rateLimited,
            skipped: skipped.sorted(), shortCircuited: !verdict.remediationAllowed && !verdict.unhealthy.isEmpty, nextEvaluation: next)
    }

    static func nodeState(_ machine: ClusterSummary.Machine) -> HealthCheckTarget.NodeState {
        if machine.conditions["Ready"]?.reason == nodeNotFoundReason { return .missing }
        if machine.conditions.isEmpty { return .notJoined }
        return .joined(
            conditions: machine.conditions.sorted { $0.key < $1.key }.map {
                NodeCondition(
                    type: $0.key, status: ConditionStatus(rawValue: $0.value.status) ?? .unknown,
                    lastTransitionTime: Timestamp(nanoseconds: $0.value.lastTransitionNanoseconds))
            })
    }

    /// A Node as an observer read it: its conditions (type → status, reason, last transition).
    public struct ObservedNode: Hashable, Sendable {
        public var conditions: [String: ObservedCluster.Condition]
        public init(conditions: [String: ObservedCluster.Condition]) { self.conditions = conditions }
    }

    /// The `MachineConditionChanged` events one observation of a machine's Node makes against
    /// what was recorded (`previous`): one per condition whose status or last transition
    /// changed, none for an unchanged poll. A Node gone after one was recorded is `Ready`
    /// `Unknown` with reason ``nodeNotFoundReason``, once.
    public static func conditionChanges(
        namespace: String, cluster: String, machine: String, previous: [String: ObservedCluster.Condition], node: ObservedNode?,
        at: Timestamp
    ) -> [FleetEvent] {
        func changed(_ type: String, _ condition: ObservedCluster.Condition) -> FleetEvent {
            .machineConditionChanged(
                namespace: namespace, cluster: cluster, machine: machine, type: type, status: condition.status, reason: condition.reason,
                lastTransitionNanoseconds: condition.lastTransitionNanoseconds, atNanoseconds: at.nanoseconds)
        }
        guard let node else {
            guard !previous.isEmpty, previous["Ready"]?.reason != nodeNotFoundReason else { return [] }
            return [changed("Ready", .init(status: ConditionStatus.unknown.rawValue, reason: nodeNotFoundReason, lastTransitionNanoseconds: at.nanoseconds))]
        }
        return node.conditions.sorted { $0.key < $1.key }.compactMap { type, condition in
            let before = previous[type]
            if let before, before.status == condition.status, before.lastTransitionNanoseconds == condition.lastTransitionNanoseconds,
                before.reason != nodeNotFoundReason
            {
                return nil
            }
            return changed(type, condition)
        }
    }
}

// MARK: - One reconcile step over all of a cluster's checks

/// What the health checks of one cluster decide at one instant, and what to record.
public struct HealthCheckStep: Hashable, Sendable {
    public struct Remediation: Hashable, Sendable {
        public var check: String
        public var deployment: String
        public var finding: HealthCheckVerdict.Finding
        /// The Remediate workflow's id: one per machine for ever (machine names are never reused).
        public var workflowID: String
    }

    public var decisions: [HealthCheckDecision]
    /// Machines to replace now, in order, within the rate limit across all checks.
    public var remediations: [Remediation]
    /// `RemediationSkipped` when a check's refusal begins, `RemediationAllowed` when it ends.
    public var audit: [FleetEvent]
    public var nextEvaluation: Timestamp?
}

extension HealthChecks {
    /// The Remediate workflow id for `machine`.
    public static func workflowID(namespace: String, cluster: String, machine: String) -> String {
        "remediate/\(namespace)/\(cluster)/\(machine)"
    }

    /// Evaluates every check of `cluster` (as ``FleetView/healthChecks(_:namespace:cluster:)``
    /// returns them) at `now`. The rate limit counts the cluster's recorded remediations and
    /// those this step decides; the audit events compare with the refusals already recorded.
    public static func step(
        cluster: ClusterSummary, checks: [MachineHealthCheck], now: Timestamp, annotations: [String: [String: String]] = [:],
        rateLimit: RemediationRateLimit = .default
    ) -> HealthCheckStep {
        var recent = (cluster.remediations ?? []).map { Timestamp(nanoseconds: $0.atNanoseconds) }
        let refusing = Set(cluster.shortCircuitedChecks ?? [])
        var decisions: [HealthCheckDecision] = []
        var remediations: [HealthCheckStep.Remediation] = []
        var audit: [FleetEvent] = []
        var chosen = Set<String>()
        for check in checks.sorted(by: { $0.name < $1.name }) {
            let decision = evaluate(
                cluster: cluster, check: check, now: now, recentRemediations: recent, annotations: annotations, rateLimit: rateLimit)
            decisions.append(decision)
            let deployments = Dictionary(cluster.machines.map { ($0.name, $0.deployment) }, uniquingKeysWith: { first, _ in first })
            for finding in decision.remediate where !chosen.contains(finding.machine) {
                chosen.insert(finding.machine)
                recent.append(now)
                remediations.append(
                    .init(
                        check: check.name, deployment: deployments[finding.machine] ?? "", finding: finding,
                        workflowID: workflowID(namespace: cluster.namespace, cluster: cluster.name, machine: finding.machine)))
            }
            guard decision.notJudged == nil else { continue }
            if decision.shortCircuited, !refusing.contains(check.name) {
                audit.append(
                    .remediationSkipped(
                        namespace: cluster.namespace, cluster: cluster.name, check: check.name,
                        reason: decision.verdict.shortCircuitReason ?? HealthCheck.tooManyUnhealthy,
                        unhealthy: decision.verdict.unhealthy.map(\.machine), expected: decision.verdict.expected,
                        atNanoseconds: now.nanoseconds))
            } else if !decision.shortCircuited, refusing.contains(check.name) {
                audit.append(.remediationAllowed(namespace: cluster.namespace, cluster: cluster.name, check: check.name, atNanoseconds: now.nanoseconds))
            }
        }
        let next = decisions.compactMap(\.nextEvaluation).min()
        return HealthCheckStep(decisions: decisions, remediations: remediations, audit: audit, nextEvaluation: next)
    }

    /// The audit fact for a remediation once its workflow was started.
    public static func decided(_ remediation: HealthCheckStep.Remediation, cluster: ClusterSummary, at: Timestamp) -> FleetEvent {
        .remediationDecided(
            namespace: cluster.namespace, cluster: cluster.name, check: remediation.check, machine: remediation.finding.machine,
            reason: remediation.finding.reason.rawValue, message: remediation.finding.message, workflowID: remediation.workflowID,
            atNanoseconds: at.nanoseconds)
    }
}
