// DeleteCluster: tear down in order: every machine (VM, userdata Secret, Node; no drain, the
// whole cluster goes), then the TenantControlPlane.
//
// The input and output field names are a stored format; add optional fields only.
public import Engine

/// Deletes a workload cluster.
public enum DeleteCluster: Workflow {
    public static let type = "DeleteCluster"
    public static let version = 1

    public struct Input: Codable, Hashable, Sendable {
        public var runID: String
        public var cluster: Activities.ClusterRef
        /// Every machine of the cluster, as the fleet knows them.
        public var machines: [String]

        public init(runID: String, cluster: Activities.ClusterRef, machines: [String]) {
            self.runID = runID
            self.cluster = cluster
            self.machines = machines
        }
    }

    public struct Output: Codable, Hashable, Sendable {
        public var deletedMachines: [String]
        public init(deletedMachines: [String]) { self.deletedMachines = deletedMachines }
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
            var waiting = false
            var failures: [String] = []
            for machine in input.machines.sorted() {
                let step = script.childStep(
                    MachineNaming.childID(runID: input.runID, verb: "delete", machine: machine), type: DeleteMachine.type,
                    DeleteMachine.Input(cluster: input.cluster, machine: machine, drain: false, drainTimeoutSeconds: 0),
                    as: DeleteMachine.Output.self)
                switch step {
                case .waiting: waiting = true
                case .done: break
                case .failed(let reason): failures.append(reason)
                }
            }
            if waiting { throw .waiting }
            // The control plane stays while a machine could not be removed: its Node still needs it.
            if !failures.isEmpty { throw .failed("\(failures.count) machine(s) not deleted: " + failures.joined(separator: "; ")) }
            _ = try script.activity("controlplane-delete", Activities.deleteControlPlane, input.cluster, as: Activities.Deleted.self)
            return .complete(with: Output(deletedMachines: input.machines.sorted()))
        }
    }
}
