// ScaleMachineDeployment: bring a MachineDeployment to its desired replica count. Up: new
// machines (ProvisionMachine children, all at once) at the deployment's version. Down: CAPI's
// deletion order from Fleet's ``Rollout/next(desired:strategy:machines:deletionOrder:seed:)``
// (already deleting, then the `delete-machine` annotation, then in-place updates, then
// unhealthy machines, then `deletion.order` Random (seeded) / Newest / Oldest), each victim
// drained and deleted by a DeleteMachine child. The action is computed once from the input,
// so a restart never picks other victims.
//
// The input and output field names are a stored format; add optional fields only.
public import Engine
public import Fleet

/// Scales a MachineDeployment.
public enum ScaleMachineDeployment: Workflow {
    public static let type = "ScaleMachineDeployment"
    public static let version = 1

    public struct Input: Codable, Hashable, Sendable {
        public var runID: String
        public var cluster: Activities.ClusterRef
        public var deployment: String
        public var replicas: Int
        /// The version new machines join at: the control plane's minor (kubeadm join).
        public var version: String
        public var image: String?
        public var cpuCores: Int
        public var memory: String
        /// The MachineDeployment's templates (VM and bootstrap); nil for the default VM.
        public var template: Activities.MachineTemplate?
        public var machines: [RolloutMachine]
        public var strategy: RolloutStrategy
        public var deletionOrder: DeletionOrder
        /// Orders `Random` deletion reproducibly.
        public var seed: UInt64
        public var drainTimeoutSeconds: Int
        public var nodeStartupTimeoutSeconds: Int
        public var pollIntervalMilliseconds: Int

        public init(
            runID: String, cluster: Activities.ClusterRef, deployment: String, replicas: Int, version: String,
            image: String? = nil, cpuCores: Int = 2, memory: String = "4Gi", template: Activities.MachineTemplate? = nil, machines: [RolloutMachine],
            strategy: RolloutStrategy = .default, deletionOrder: DeletionOrder = .random, seed: UInt64 = 0,
            drainTimeoutSeconds: Int = 600, nodeStartupTimeoutSeconds: Int = 600, pollIntervalMilliseconds: Int = 2000
        ) {
            self.runID = runID
            self.cluster = cluster
            self.deployment = deployment
            self.replicas = replicas
            self.version = version
            self.image = image
            self.cpuCores = cpuCores
            self.memory = memory
            self.template = template
            self.machines = machines
            self.strategy = strategy
            self.deletionOrder = deletionOrder
            self.seed = seed
            self.drainTimeoutSeconds = drainTimeoutSeconds
            self.nodeStartupTimeoutSeconds = nodeStartupTimeoutSeconds
            self.pollIntervalMilliseconds = pollIntervalMilliseconds
        }
    }

    public struct Output: Codable, Hashable, Sendable {
        public var created: [String]
        public var deleted: [String]
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

    /// What the run does: the machines it creates and the ones it deletes, in deletion order.
    public static func action(_ input: Input) -> (create: [String], delete: [String]) {
        let next = Rollout.next(
            desired: input.replicas, strategy: input.strategy, machines: input.machines, deletionOrder: input.deletionOrder,
            seed: input.seed)
        let first = MachineNaming.nextOrdinal(after: input.machines.map(\.name), deployment: input.deployment)
        let create = (0..<next.create).map { MachineNaming.name(deployment: input.deployment, ordinal: first + $0) }
        return (create, next.delete)
    }

    public static func decide(_ state: State) -> [WorkflowCommand] {
        state.decide { input, script throws(Suspension) in
            guard input.replicas >= 0 else {
                throw .failed("MachineDeployment \(input.deployment): replicas \(input.replicas) is negative")
            }
            let (create, delete) = action(input)
            var waiting = false
            var failures: [String] = []
            for machine in create {
                let step = script.childStep(
                    MachineNaming.childID(runID: input.runID, verb: "provision", machine: machine), type: ProvisionMachine.type,
                    ProvisionMachine.Input(
                        cluster: input.cluster, deployment: input.deployment, machine: machine, kubeletVersion: input.version,
                        image: input.image, cpuCores: input.cpuCores, memory: input.memory, template: input.template,
                        nodeStartupTimeoutSeconds: input.nodeStartupTimeoutSeconds,
                        pollIntervalMilliseconds: input.pollIntervalMilliseconds),
                    as: ProvisionMachine.Output.self)
                if case .waiting = step { waiting = true }
                if case .failed(let reason) = step { failures.append(reason) }
            }
            for machine in delete {
                let step = script.childStep(
                    MachineNaming.childID(runID: input.runID, verb: "delete", machine: machine), type: DeleteMachine.type,
                    DeleteMachine.Input(cluster: input.cluster, machine: machine, drain: true, drainTimeoutSeconds: input.drainTimeoutSeconds),
                    as: DeleteMachine.Output.self)
                if case .waiting = step { waiting = true }
                if case .failed(let reason) = step { failures.append(reason) }
            }
            if waiting { throw .waiting }
            if !failures.isEmpty { throw .failed("\(failures.count) machine(s) failed: " + failures.joined(separator: "; ")) }
            let remaining = input.machines.map(\.name).filter { !delete.contains($0) } + create
            return .complete(with: Output(created: create, deleted: delete, machines: remaining.sorted()))
        }
    }
}
