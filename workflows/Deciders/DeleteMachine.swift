// DeleteMachine: CAPI's machine deletion order: cordon and drain the Node by eviction (the
// executor retries PDB 429s pass by pass and skips DaemonSet pods; after the drain timeout it
// gives up evicting, as `nodeDrainTimeout` does), then delete the VirtualMachine (and its
// userdata Secret), then the Node.
//
// The input and output field names are a stored format; add optional fields only.
public import Engine

/// Removes one machine.
public enum DeleteMachine: Workflow {
    public static let type = "DeleteMachine"
    public static let version = 1

    public struct Input: Codable, Hashable, Sendable {
        public var cluster: Activities.ClusterRef
        public var machine: String
        /// False when the whole cluster goes (nothing to move pods to).
        public var drain: Bool
        /// CAPI's `nodeDrainTimeout`; 0 drains for ever.
        public var drainTimeoutSeconds: Int

        public init(cluster: Activities.ClusterRef, machine: String, drain: Bool = true, drainTimeoutSeconds: Int = 600) {
            self.cluster = cluster
            self.machine = machine
            self.drain = drain
            self.drainTimeoutSeconds = drainTimeoutSeconds
        }
    }

    public struct Output: Codable, Hashable, Sendable {
        public var machine: String
        public var drained: Bool
        /// The drain timeout passed with pods left; deletion went ahead, as CAPI's does.
        public var drainTimedOut: Bool
        /// Pods a budget still protected when the drain gave up.
        public var blocked: [String]

        public init(machine: String, drained: Bool, drainTimedOut: Bool, blocked: [String]) {
            self.machine = machine
            self.drained = drained
            self.drainTimedOut = drainTimedOut
            self.blocked = blocked
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
            let ref = Activities.MachineRef(cluster: input.cluster, machine: input.machine)
            var drain = Activities.DrainOutput(drained: false, timedOut: false)
            if input.drain {
                drain = try script.activity(
                    "drain", Activities.drainNode,
                    Activities.DrainInput(cluster: input.cluster, machine: input.machine, timeoutSeconds: input.drainTimeoutSeconds),
                    as: Activities.DrainOutput.self, retry: DeciderRetry.drain, timeout: .seconds(120))
            }
            _ = try script.activity("vm-delete", Activities.deleteVirtualMachine, ref, as: Activities.Deleted.self)
            _ = try script.activity("node-delete", Activities.deleteNode, ref, as: Activities.Deleted.self)
            return .complete(
                with: Output(machine: input.machine, drained: drain.drained, drainTimedOut: drain.timedOut, blocked: drain.blocked))
        }
    }
}
