// RollingUpdate: replace a MachineDeployment's machines by machines at a new version, within
// `maxSurge` / `maxUnavailable` (Fleet's ``Rollout/next(desired:strategy:machines:deletionOrder:seed:)``:
// CAPI's fenceposts, surge rounding up, unavailable down, both 0 becoming unavailable 1). A new machine is a ProvisionMachine child, healthy only once
// its Node is Ready; an old one goes through DeleteMachine (cordon, drain by eviction, delete
// the VM, then the Node). Each decide recomputes, from what has completed, how many machines
// may be created and how many old ones may go, so "new machine, then drain and delete an old
// one, health between machines" falls out of the limits (with the defaults 1/0: one at a time).
//
// The input and output field names are a stored format; add optional fields only.
public import Engine
public import Fleet

/// Replaces a MachineDeployment's machines.
public enum RollingUpdate: Workflow {
    public static let type = "RollingUpdate"
    public static let version = 1

    public struct Input: Codable, Hashable, Sendable {
        public var runID: String
        public var cluster: Activities.ClusterRef
        public var deployment: String
        /// The version the new machines join at (`v1.36.1`).
        public var version: String
        public var image: String?
        public var cpuCores: Int
        public var memory: String
        /// The MachineDeployment's templates (VM and bootstrap); nil for the default VM.
        public var template: Activities.MachineTemplate?
        /// Desired replicas.
        public var replicas: Int
        public var maxSurge: IntOrPercent
        public var maxUnavailable: IntOrPercent
        /// The machines to replace, in the order they go (the caller's deletion order).
        public var machines: [String]
        public var drainTimeoutSeconds: Int
        public var nodeStartupTimeoutSeconds: Int
        public var pollIntervalMilliseconds: Int

        public init(
            runID: String, cluster: Activities.ClusterRef, deployment: String, version: String, image: String? = nil,
            cpuCores: Int = 2, memory: String = "4Gi", template: Activities.MachineTemplate? = nil, replicas: Int, maxSurge: IntOrPercent = .count(1),
            maxUnavailable: IntOrPercent = .count(0), machines: [String], drainTimeoutSeconds: Int = 600,
            nodeStartupTimeoutSeconds: Int = 600, pollIntervalMilliseconds: Int = 2000
        ) {
            self.runID = runID
            self.cluster = cluster
            self.deployment = deployment
            self.version = version
            self.image = image
            self.cpuCores = cpuCores
            self.memory = memory
            self.template = template
            self.replicas = replicas
            self.maxSurge = maxSurge
            self.maxUnavailable = maxUnavailable
            self.machines = machines
            self.drainTimeoutSeconds = drainTimeoutSeconds
            self.nodeStartupTimeoutSeconds = nodeStartupTimeoutSeconds
            self.pollIntervalMilliseconds = pollIntervalMilliseconds
        }
    }

    public struct Output: Codable, Hashable, Sendable {
        /// The deployment's machines now, all at the new version.
        public var machines: [String]
        public var deleted: [String]

        public init(machines: [String], deleted: [String]) {
            self.machines = machines
            self.deleted = deleted
        }
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
            let fenceposts = RolloutFenceposts(
                maxSurge: input.maxSurge, maxUnavailable: input.maxUnavailable, replicas: input.replicas)
            let newNames = newMachineNames(input)
            // Where each machine stands, from the children's answers so far, as Fleet's rollout
            // arithmetic sees it: old machines in the caller's deletion order (their creation
            // times are their places in it, so Oldest picks them in that order).
            var machines: [RolloutMachine] = []
            var created = 0, ready = 0, deleted = 0
            for name in newNames {
                guard let status = script.ledger.children[provisionID(input, name)] else { break }
                created += 1
                switch status {
                case .started: break
                case .completed: ready += 1
                case .failed(let reason): throw .failed("new machine \(name) failed: \(reason)")
                }
                machines.append(
                    RolloutMachine(
                        name: name, isUpToDate: true, isReady: status != .started,
                        createdAt: Timestamp(nanoseconds: Int64(input.machines.count + created))))
            }
            for (place, name) in input.machines.enumerated() {
                let status = script.ledger.children[deleteID(input, name)]
                switch status {
                case nil, .started?: break
                case .completed?: deleted += 1; continue
                case .failed(let reason)?: throw .failed("old machine \(name) not deleted: \(reason)")
                }
                machines.append(
                    RolloutMachine(
                        name: name, isUpToDate: false, isReady: status == nil, isDeleting: status != nil,
                        createdAt: Timestamp(nanoseconds: Int64(place))))
            }
            let next = Rollout.next(
                desired: input.replicas,
                strategy: .rollingUpdate(maxSurge: input.maxSurge, maxUnavailable: input.maxUnavailable),
                machines: machines, deletionOrder: .oldest)
            for name in newNames.dropFirst(created).prefix(next.create) {
                _ = script.childStep(
                    provisionID(input, name), type: ProvisionMachine.type,
                    ProvisionMachine.Input(
                        cluster: input.cluster, deployment: input.deployment, machine: name, kubeletVersion: input.version,
                        image: input.image, cpuCores: input.cpuCores, memory: input.memory, template: input.template,
                        nodeStartupTimeoutSeconds: input.nodeStartupTimeoutSeconds,
                        pollIntervalMilliseconds: input.pollIntervalMilliseconds),
                    as: ProvisionMachine.Output.self)
            }
            for name in next.delete where input.machines.contains(name) {
                _ = script.childStep(
                    deleteID(input, name), type: DeleteMachine.type,
                    DeleteMachine.Input(
                        cluster: input.cluster, machine: name, drain: true, drainTimeoutSeconds: input.drainTimeoutSeconds),
                    as: DeleteMachine.Output.self)
            }
            guard ready == input.replicas, deleted == input.machines.count else { throw .waiting }
            return .complete(with: Output(machines: newNames, deleted: input.machines))
        }
    }

    /// The names of the machines a run creates: the next ordinals after the ones it replaces.
    public static func newMachineNames(_ input: Input) -> [String] {
        let first = MachineNaming.nextOrdinal(after: input.machines, deployment: input.deployment)
        return (0..<max(0, input.replicas)).map { MachineNaming.name(deployment: input.deployment, ordinal: first + $0) }
    }

    static func provisionID(_ input: Input, _ machine: String) -> String {
        MachineNaming.childID(runID: input.runID, verb: "provision", machine: machine)
    }

    static func deleteID(_ input: Input, _ machine: String) -> String {
        MachineNaming.childID(runID: input.runID, verb: "delete", machine: machine)
    }
}
