// ChainedUpgrade: a cluster from the version it runs to a target, several minors away.
//
// It first reads what the control plane runs, then computes the plan once (Fleet's
// ``ChainedUpgradePlan``: the control plane one minor per step through the newest catalog
// patch, the exact target last; workers in one leap at the end, or earlier where the kubelet
// skew requires) and keeps it in its state, so a restart never changes it. Each control-plane
// step is a ControlPlaneUpgradeStep child; each worker step rolls each named
// MachineDeployment, one after another, with a RollingUpdate child whose new machines join at
// the version the control plane runs then (kubeadm join needs the control plane's minor).
//
// Between steps: `pause` / `resume` (the engine also pauses the running child), `approve`
// (when the input asks for approval, before every step), `retry-step` (a Stuck step tries
// again). A step whose child fails is tried again after a delay, up to `stepAttemptsMax`
// times; then the chain is Stuck: it waits, with the reason in its progress, for
// `retry-step` or a cancel. The plan is folded from the recorded observation of the control
// plane, so every replay makes the same one.
// Nothing goes down: the plan never does, and a step runs only above what the last one left.
//
// The input, output and progress field names are a stored format; add optional fields only.
public import Engine
public import Fleet

/// Upgrades a cluster through a chain of versions.
public enum ChainedUpgrade: Workflow {
    public static let type = "ChainedUpgrade"
    public static let version = 1

    /// Signal names this workflow acts on (payload: an optional 1-based step number; empty
    /// means the step waiting now).
    public enum Signal {
        public static let approve = EngineSignal.approve
        /// Not the engine's `retry` (which re-runs one failed activity): this re-runs a Stuck step.
        public static let retryStep = "retry-step"
        public static let pause = EngineSignal.pause
        public static let resume = EngineSignal.resume
    }

    public struct Deployment: Codable, Hashable, Sendable {
        public var name: String
        /// The version its machines run now.
        public var version: String
        /// Its machines now, in the order they are replaced.
        public var machines: [String]
        public var replicas: Int
        public var maxSurge: IntOrPercent
        public var maxUnavailable: IntOrPercent
        public var cpuCores: Int
        public var memory: String
        /// The MachineDeployment's templates (VM and bootstrap); nil for the default VM.
        public var template: Activities.MachineTemplate?

        public init(
            name: String, version: String, machines: [String], replicas: Int? = nil, maxSurge: IntOrPercent = .count(1),
            maxUnavailable: IntOrPercent = .count(0), cpuCores: Int = 2, memory: String = "4Gi", template: Activities.MachineTemplate? = nil
        ) {
            self.name = name
            self.version = version
            self.machines = machines
            self.replicas = replicas ?? machines.count
            self.maxSurge = maxSurge
            self.maxUnavailable = maxUnavailable
            self.cpuCores = cpuCores
            self.memory = memory
            self.template = template
        }
    }

    public struct Input: Codable, Hashable, Sendable {
        public var runID: String
        public var cluster: Activities.ClusterRef
        public var target: String
        public var catalog: VersionCatalog
        public var deployments: [Deployment]
        /// Wait for an `approve` signal before every step.
        public var approveEachStep: Bool
        public var stepAttemptsMax: Int
        public var stepRetryDelaySeconds: Int
        public var stepTimeoutSeconds: Int
        public var drainTimeoutSeconds: Int
        public var nodeStartupTimeoutSeconds: Int
        public var pollIntervalMilliseconds: Int

        public init(
            runID: String, cluster: Activities.ClusterRef, target: String, catalog: VersionCatalog, deployments: [Deployment],
            approveEachStep: Bool = false, stepAttemptsMax: Int = 3, stepRetryDelaySeconds: Int = 30,
            stepTimeoutSeconds: Int = 1800, drainTimeoutSeconds: Int = 600, nodeStartupTimeoutSeconds: Int = 600,
            pollIntervalMilliseconds: Int = 2000
        ) {
            self.runID = runID
            self.cluster = cluster
            self.target = target
            self.catalog = catalog
            self.deployments = deployments
            self.approveEachStep = approveEachStep
            self.stepAttemptsMax = stepAttemptsMax
            self.stepRetryDelaySeconds = stepRetryDelaySeconds
            self.stepTimeoutSeconds = stepTimeoutSeconds
            self.drainTimeoutSeconds = drainTimeoutSeconds
            self.nodeStartupTimeoutSeconds = nodeStartupTimeoutSeconds
            self.pollIntervalMilliseconds = pollIntervalMilliseconds
        }
    }

    public struct Output: Codable, Hashable, Sendable {
        public var controlPlaneVersion: String
        /// Each deployment's machines at the end.
        public var machines: [String: [String]]
        public var steps: Int
    }

    /// Where the chain stands: for operators and `capstan get`.
    public struct Progress: Codable, Hashable, Sendable {
        public enum Phase: String, Codable, Hashable, Sendable {
            case reading, running, paused, awaitingApproval, retryWait, stuck, done, failed
        }
        public var phase: Phase
        /// 1-based; 0 before the plan.
        public var step: Int
        public var steps: Int
        /// `control plane → v1.35.3`, `workers [md-0] → v1.36.1`.
        public var description: String
        /// What it waits on: a child workflow id, a signal name, a timer.
        public var waitingOn: String
        public var attempt: Int
        /// The control plane's version as far as the chain knows.
        public var controlPlaneVersion: String?
        /// Why it is stuck or failed (or why the last attempt failed).
        public var reason: String?
        /// When the chain last moved (the recorded time of its latest event).
        public var since: Timestamp?
    }

    public struct State: Codable, Equatable, Sendable {
        public var run = RunState<Input>()
        /// The plan, once made.
        public var plan: ChainedUpgradePlan?
        /// Why there is no plan.
        public var planError: String?
        /// Steps (0-based) approved.
        public var approved: Set<Int> = []
        /// Extra rounds of attempts granted per step (0-based) by `retry`.
        public var retryGrants: [Int: Int] = [:]
        public var paused = false
        public var since: Timestamp?
        public init() {}
    }

    public static var initial: State { State() }

    /// The domain event holding the plan.
    public static let planRecorded = "UpgradePlanned"

    public static func evolve(_ state: State, _ event: WorkflowEvent, at _: Timestamp) -> State {
        var next = state
        next.run.apply(event)
        next.since = next.run.ledger.latestTime
        switch event {
        case .activityCompleted(let activityID, _, let output) where activityID == sourceID:
            // Computed once, from what the control plane ran when the chain began (the
            // recorded observation), so a restart folds the same plan.
            guard let input = next.run.input, next.plan == nil else { break }
            switch (try? Activities.decode(Activities.ControlPlaneObservation.self, from: output)).map({ makePlan(input, $0) }) {
            case .success(let plan)?: next.plan = plan
            case .failure(let refusal)?: next.planError = refusal.reason
            case nil: next.planError = "the control plane's observation does not decode"
            }
        case .signalReceived(let name, let payload):
            let current = walk(state).progress.step - 1
            let step = Int(payload.trimmingCharacters(in: .whitespaces)).map { $0 - 1 } ?? current
            switch name {
            case Signal.approve: next.approved.insert(step)
            case Signal.retryStep: next.retryGrants[step, default: 0] += 1
            case Signal.pause: next.paused = true
            case Signal.resume: next.paused = false
            default: break
            }
        default:
            break
        }
        return next
    }

    public static func decide(_ state: State) -> [WorkflowCommand] { walk(state).commands }

    /// Where the run stands (pure; the same walk `decide` takes).
    public static func progress(_ state: State) -> Progress? { walk(state).progress }

    /// The plan of a run (nil before the control plane was read).
    public static func plan(_ state: State) -> ChainedUpgradePlan? { state.plan }

    /// Why no plan could be made.
    public struct PlanRefusal: Error, Equatable, Sendable {
        public var reason: String
    }

    /// The plan from what the control plane runs and the input, or why there is none.
    static func makePlan(_ input: Input, _ observed: Activities.ControlPlaneObservation) -> Result<ChainedUpgradePlan, PlanRefusal> {
        guard observed.exists, let installed = observed.installedVersion else {
            return .failure(PlanRefusal(reason:
                "the TenantControlPlane \(input.cluster.namespace)/\(input.cluster.controlPlane) "
                    + (observed.exists ? "reports no installed version yet" : "does not exist")))
        }
        do {
            var workers: [String: KubernetesVersion] = [:]
            for deployment in input.deployments { workers[deployment.name] = try KubernetesVersion(parsing: deployment.version) }
            return .success(
                try ChainedUpgradePlan(
                    controlPlane: try KubernetesVersion(parsing: installed), workers: workers,
                    target: try KubernetesVersion(parsing: input.target), catalog: input.catalog))
        } catch {
            return .failure(PlanRefusal(reason: "\(error)"))
        }
    }

    static let sourceID = "source"

    static func walk(_ state: State) -> (commands: [WorkflowCommand], progress: Progress) {
        var progress = Progress(
            phase: .reading, step: 0, steps: state.plan?.steps.count ?? 0, description: "read the control plane's version",
            waitingOn: sourceID, attempt: 1)
        let commands = state.run.decide { input, script throws(Suspension) in
            try walkSteps(state, input, &script, &progress)
        }
        progress.since = state.since
        if state.run.ledger.finished, progress.phase != .failed { progress.phase = .done }
        for case .fail(let reason) in commands {
            progress.phase = .failed
            progress.reason = reason
        }
        return (commands, progress)
    }

    private static func walkSteps(
        _ state: State, _ input: Input, _ script: inout Script, _ progress: inout Progress
    ) throws(Suspension) -> WorkflowCommand {
        _ = try script.activity(sourceID, Activities.readControlPlane, input.cluster, as: Activities.ControlPlaneObservation.self)
        if let planError = state.planError { throw .failed("no upgrade plan: \(planError)") }
        guard let plan = state.plan else { throw .failed("no upgrade plan") }
        var controlPlane = plan.controlPlaneSource
        var machines = Dictionary(input.deployments.map { ($0.name, $0.machines) }, uniquingKeysWith: { first, _ in first })
        progress.controlPlaneVersion = controlPlane.description
        for (index, step) in plan.steps.enumerated() {
            progress.step = index + 1
            progress.description = step.description
            progress.phase = .running
            progress.attempt = 1
            progress.reason = nil
            let parts = step.kind == .controlPlane ? ["controlplane"] : step.machineDeployments
            if let first = parts.first, script.ledger.children[childID(input, index, first, attempt: 1)] == nil {
                try gate(state, input, index, &script, &progress)
            }
            switch step.kind {
            case .controlPlane:
                // The plan only goes up; this guards the walk against a plan that would not.
                guard step.version > controlPlane else {
                    throw .failed("refusing step \(index + 1) (\(step)): the control plane is at \(controlPlane); Capstan never downgrades")
                }
                let child = ControlPlaneUpgradeStep.Input(
                    cluster: input.cluster, version: step.version.description, timeoutSeconds: input.stepTimeoutSeconds,
                    pollIntervalMilliseconds: input.pollIntervalMilliseconds)
                _ = try attempts(state, input, index, part: "controlplane", &script, &progress) { id, _, script in
                    script.childStep(id, type: ControlPlaneUpgradeStep.type, child, as: ControlPlaneUpgradeStep.Output.self)
                }
                controlPlane = step.version
                progress.controlPlaneVersion = controlPlane.description
            case .workers:
                guard step.version <= controlPlane else {
                    throw .failed("refusing step \(index + 1) (\(step)): workers may not be newer than the control plane's \(controlPlane)")
                }
                for name in step.machineDeployments {
                    guard let deployment = input.deployments.first(where: { $0.name == name }) else {
                        throw .failed("the plan names MachineDeployment \(name), which the input does not list")
                    }
                    let current = machines[name] ?? []
                    let output = try attempts(state, input, index, part: name, &script, &progress) { id, attempt, script in
                        let child = rollingInput(input, deployment, step.version, machines: current, index: index, attempt: attempt)
                        return script.childStep(id, type: RollingUpdate.type, child, as: RollingUpdate.Output.self)
                    }
                    machines[name] = output.machines
                }
            }
        }
        progress.phase = .done
        progress.waitingOn = ""
        return .complete(with: Output(controlPlaneVersion: controlPlane.description, machines: machines, steps: plan.steps.count))
    }

    /// Pause and approval hold a step before it starts (never in the middle of one).
    private static func gate(
        _ state: State, _ input: Input, _ index: Int, _ script: inout Script, _ progress: inout Progress
    ) throws(Suspension) {
        if state.paused {
            progress.phase = .paused
            progress.waitingOn = Signal.resume
            throw script.waitForSignal(Signal.resume)
        }
        if input.approveEachStep && !state.approved.contains(index) {
            progress.phase = .awaitingApproval
            progress.waitingOn = Signal.approve
            throw script.waitForSignal(Signal.approve)
        }
    }

    /// Runs one part of step `index` as child attempts, a failed one tried again after the
    /// retry delay; after the attempts allowed the chain is Stuck until a `retry` signal.
    private static func attempts<Output>(
        _ state: State, _ input: Input, _ index: Int, part: String, _ script: inout Script, _ progress: inout Progress,
        child: (_ id: String, _ attempt: Int, _ script: inout Script) -> Step<Output>
    ) throws(Suspension) -> Output {
        let allowed = max(1, input.stepAttemptsMax) * (1 + (state.retryGrants[index] ?? 0))
        var attempt = 1
        // Bounded: each turn consumes a recorded failure and a fired retry timer.
        while true {
            let id = childID(input, index, part, attempt: attempt)
            progress.attempt = attempt
            progress.waitingOn = id
            switch child(id, attempt, &script) {
            case .done(let output):
                return output
            case .waiting:
                throw .waiting
            case .failed(let reason):
                progress.reason = reason
                if attempt >= allowed {
                    progress.phase = .stuck
                    progress.waitingOn = Signal.retryStep
                    throw script.waitForSignal(Signal.retryStep)
                }
                let delay = "\(id)/retry-delay"
                progress.phase = .retryWait
                progress.waitingOn = delay
                try script.sleep(delay, for: .seconds(input.stepRetryDelaySeconds))
                progress.phase = .running
                attempt += 1
            }
        }
    }

    static func childID(_ input: Input, _ index: Int, _ part: String, attempt: Int) -> String {
        "\(input.runID)/step-\(index + 1)/\(part)/\(attempt)"
    }

    /// The RollingUpdate input of an attempt: a later attempt also replaces the machines an
    /// earlier one may have created (their names are deterministic), so none is left behind.
    static func rollingInput(
        _ input: Input, _ deployment: Deployment, _ version: KubernetesVersion, machines: [String], index: Int, attempt: Int
    ) -> RollingUpdate.Input {
        var child = RollingUpdate.Input(
            runID: childID(input, index, deployment.name, attempt: 1), cluster: input.cluster, deployment: deployment.name,
            version: version.description, image: input.catalog.machineImage(for: version), cpuCores: deployment.cpuCores,
            memory: deployment.memory, template: deployment.template, replicas: deployment.replicas, maxSurge: deployment.maxSurge,
            maxUnavailable: deployment.maxUnavailable, machines: machines, drainTimeoutSeconds: input.drainTimeoutSeconds,
            nodeStartupTimeoutSeconds: input.nodeStartupTimeoutSeconds, pollIntervalMilliseconds: input.pollIntervalMilliseconds)
        for later in stride(from: 2, through: attempt, by: 1) {
            child.machines += RollingUpdate.newMachineNames(child)
            child.runID = childID(input, index, deployment.name, attempt: later)
        }
        return child
    }
}
