// InPlaceUpgrade: move a MachineDeployment's machines to a new patch release without
// replacing them, through the update extension: ask `CanUpdateMachine`, then apply with
// `UpdateMachine` and poll it (its `retryAfterSeconds` sets the pace) until done. When the
// extension declines or the update fails, the machine is replaced instead (a new machine,
// Ready, then the old one drained and deleted), where the strategy allows, with the reason
// recorded in the output. CAPI has no such fallback: a failed in-place update waits for a
// health check or a person there.
//
// A minor release is never asked for: the kubelet skew policy says in-place minor kubelet
// upgrades are not supported, so such a machine is replaced at once. A machine being
// updated in place counts as unavailable, so at most `maxUnavailable` (at least one) are in
// flight together.
//
// The input and output field names are a stored format; add optional fields only.
public import Engine
public import Fleet

/// Upgrades machines in place, replacing those the extension cannot update.
public enum InPlaceUpgrade: Workflow {
    public static let type = "InPlaceUpgrade"
    public static let version = 1

    public struct Input: Codable, Hashable, Sendable {
        public var runID: String
        public var cluster: Activities.ClusterRef
        public var deployment: String
        public var fromVersion: String
        public var toVersion: String
        public var machines: [String]
        public var maxUnavailable: IntOrPercent
        /// False under `OnDelete` (nothing is replaced without a person): a decline then fails the run.
        public var replaceOnFallback: Bool
        public var image: String?
        public var cpuCores: Int
        public var memory: String
        /// The MachineDeployment's templates (VM and bootstrap); nil for the default VM.
        public var template: Activities.MachineTemplate?
        public var drainTimeoutSeconds: Int
        public var nodeStartupTimeoutSeconds: Int
        public var pollIntervalMilliseconds: Int

        public init(
            runID: String, cluster: Activities.ClusterRef, deployment: String, fromVersion: String, toVersion: String,
            machines: [String], maxUnavailable: IntOrPercent = .count(1), replaceOnFallback: Bool = true,
            image: String? = nil, cpuCores: Int = 2, memory: String = "4Gi", template: Activities.MachineTemplate? = nil, drainTimeoutSeconds: Int = 600,
            nodeStartupTimeoutSeconds: Int = 600, pollIntervalMilliseconds: Int = 2000
        ) {
            self.runID = runID
            self.cluster = cluster
            self.deployment = deployment
            self.fromVersion = fromVersion
            self.toVersion = toVersion
            self.machines = machines
            self.maxUnavailable = maxUnavailable
            self.replaceOnFallback = replaceOnFallback
            self.image = image
            self.cpuCores = cpuCores
            self.memory = memory
            self.template = template
            self.drainTimeoutSeconds = drainTimeoutSeconds
            self.nodeStartupTimeoutSeconds = nodeStartupTimeoutSeconds
            self.pollIntervalMilliseconds = pollIntervalMilliseconds
        }
    }

    /// What happened to one machine.
    public struct MachineResult: Codable, Hashable, Sendable {
        public enum Outcome: String, Codable, Hashable, Sendable {
            case inPlace, replaced
        }
        public var machine: String
        public var outcome: Outcome
        /// Why it was replaced (the extension's words, or the skew rule).
        public var reason: String?
        /// The machine that took its place.
        public var replacement: String?
    }

    public struct Output: Codable, Hashable, Sendable {
        public var results: [MachineResult]
        /// The deployment's machines now.
        public var machines: [String]
    }

    public typealias State = RunState<Input>

    public static var initial: State { State() }

    public static func evolve(_ state: State, _ event: WorkflowEvent, at _: Timestamp) -> State {
        var next = state
        next.apply(event)
        return next
    }

    public static func decide(_ state: State) -> [WorkflowCommand] {
        state.decide { input, script throws(Suspension) in
            let slots = max(1, input.maxUnavailable.scaled(against: input.machines.count, rounding: .down))
            var inFlight = 0
            var results: [MachineResult] = []
            var failures: [String] = []
            for index in input.machines.indices {
                let started = script.ledger.activities[activityID(input, index, "can-update")] != nil
                    || script.ledger.children[replacementID(input, index, "provision")] != nil
                if !started && (inFlight >= slots || !failures.isEmpty) { break }
                switch machineStep(input, index, &script) {
                case .waiting: inFlight += 1
                case .done(let result): results.append(result)
                case .failed(let reason): failures.append(reason)
                }
            }
            if !failures.isEmpty, inFlight == 0 {
                throw .failed("\(failures.count) machine(s) not upgraded: " + failures.joined(separator: "; "))
            }
            guard results.count == input.machines.count else { throw .waiting }
            return .complete(
                with: Output(results: results, machines: results.map { $0.replacement ?? $0.machine }))
        }
    }

    /// One machine's walk: in place when possible, else replaced.
    static func machineStep(_ input: Input, _ index: Int, _ script: inout Script) -> Step<MachineResult> {
        let machine = input.machines[index]
        let change = Activities.InPlaceInput(
            cluster: input.cluster, machine: machine, fromVersion: input.fromVersion, toVersion: input.toVersion)
        let isPatch: Bool
        do {
            isPatch = try KubernetesVersion(parsing: input.fromVersion).isPatchChange(
                to: try KubernetesVersion(parsing: input.toVersion))
        } catch {
            return .failed("machine \(machine): \(error)")
        }
        guard isPatch else {
            return replace(input, index, reason: "\(input.fromVersion) → \(input.toVersion) is not a patch change; "
                + "a minor kubelet upgrade is never done in place", &script)
        }
        let answer: Activities.CanUpdateOutput
        switch script.activityStep(
            activityID(input, index, "can-update"), Activities.canUpdateMachine, change, as: Activities.CanUpdateOutput.self)
        {
        case .waiting: return .waiting
        case .failed(let reason): return replace(input, index, reason: "CanUpdateMachine failed: \(reason)", &script)
        case .done(let output): answer = output
        }
        guard answer.inPlace else {
            return replace(input, index, reason: "the update extension declined: \(answer.message)", &script)
        }
        // UpdateMachine: start, then poll at the pace it asks for.
        var n = 1
        while true {
            switch script.activityStep(
                activityID(input, index, "update-\(n)"), Activities.updateMachine, change, as: Activities.UpdateOutput.self)
            {
            case .waiting:
                return .waiting
            case .failed(let reason):
                return replace(input, index, reason: "UpdateMachine failed: \(reason)", &script)
            case .done(let update):
                switch update.state {
                case .done:
                    return .done(MachineResult(machine: machine, outcome: .inPlace, reason: nil, replacement: nil))
                case .failed:
                    return replace(input, index, reason: "the in-place update failed: \(update.message)", &script)
                case .inProgress:
                    let pause = max(Duration.seconds(update.retryAfterSeconds), .milliseconds(input.pollIntervalMilliseconds))
                    if !script.timer(activityID(input, index, "update-wait-\(n)"), after: pause) { return .waiting }
                    n += 1
                }
            }
        }
    }

    /// Replaces machine `index`: its replacement Ready first, then it is drained and deleted.
    static func replace(_ input: Input, _ index: Int, reason: String, _ script: inout Script) -> Step<MachineResult> {
        let machine = input.machines[index]
        guard input.replaceOnFallback else {
            return .failed("machine \(machine): \(reason); the strategy (OnDelete) allows no replacement")
        }
        let base = MachineNaming.nextOrdinal(after: input.machines, deployment: input.deployment)
        let replacement = MachineNaming.name(deployment: input.deployment, ordinal: base + index)
        let provision = ProvisionMachine.Input(
            cluster: input.cluster, deployment: input.deployment, machine: replacement, kubeletVersion: input.toVersion,
            image: input.image, cpuCores: input.cpuCores, memory: input.memory, template: input.template,
            nodeStartupTimeoutSeconds: input.nodeStartupTimeoutSeconds, pollIntervalMilliseconds: input.pollIntervalMilliseconds)
        switch script.childStep(replacementID(input, index, "provision"), type: ProvisionMachine.type, provision, as: ProvisionMachine.Output.self) {
        case .waiting: return .waiting
        case .failed(let why): return .failed("machine \(machine): \(reason); its replacement failed: \(why)")
        case .done: break
        }
        let delete = DeleteMachine.Input(
            cluster: input.cluster, machine: machine, drain: true, drainTimeoutSeconds: input.drainTimeoutSeconds)
        switch script.childStep(replacementID(input, index, "delete"), type: DeleteMachine.type, delete, as: DeleteMachine.Output.self) {
        case .waiting: return .waiting
        case .failed(let why): return .failed("machine \(machine): replaced by \(replacement) but not deleted: \(why)")
        case .done: return .done(MachineResult(machine: machine, outcome: .replaced, reason: reason, replacement: replacement))
        }
    }

    static func activityID(_ input: Input, _ index: Int, _ step: String) -> String { "\(input.machines[index])/\(step)" }

    static func replacementID(_ input: Input, _ index: Int, _ verb: String) -> String {
        MachineNaming.childID(runID: input.runID, verb: verb, machine: input.machines[index])
    }
}
