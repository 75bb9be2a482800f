// Remediate: replace one unhealthy machine of a MachineDeployment, as a MachineHealthCheck
// decided (Fleet's ``HealthChecks/evaluate(cluster:check:now:recentRemediations:annotations:rateLimit:)``
// judges; this workflow acts). Where the deployment's `maxSurge` leaves room, the replacement
// comes first (a ProvisionMachine child, healthy only once its Node is Ready), then the
// unhealthy machine goes (a DeleteMachine child: cordon, drain by eviction within the drain
// timeout, delete the VM and the Node), so capacity never drops. With `maxSurge` 0 the
// unhealthy machine goes first, as CAPI's MachineSet remediates (delete, then scale up).
// The decision and each step are recorded as domain events (`RemediationStarted` with the
// check's reason and the order chosen and why, `ReplacementReady`, `UnhealthyMachineDeleted`),
// so `history` shows why a machine was replaced. A replacement that fails leaves the
// unhealthy machine in place and fails the run with the child's reason.
//
// The input, output and domain-event field names are a stored format; add optional fields only.
public import Engine
public import Fleet

/// Replaces one unhealthy machine.
public enum Remediate: Workflow {
    public static let type = "Remediate"
    public static let version = 1

    public struct Input: Codable, Hashable, Sendable {
        public var runID: String
        public var cluster: Activities.ClusterRef
        public var deployment: String
        /// The MachineHealthCheck that judged it.
        public var check: String
        public var machine: String
        /// ``UnhealthyReason`` raw value (`UnhealthyNode`, `NodeStartupTimeout`, …) and its message.
        public var reason: String
        public var message: String
        /// The version the replacement joins at: the control plane's minor (kubeadm join).
        public var version: String
        public var image: String?
        public var cpuCores: Int
        public var memory: String
        /// The MachineDeployment's templates (VM and bootstrap); nil for the default VM.
        public var template: Activities.MachineTemplate?
        /// The deployment's desired replicas and its machines now (the unhealthy one included).
        public var replicas: Int
        public var machines: [String]
        public var maxSurge: IntOrPercent
        public var drainTimeoutSeconds: Int
        public var nodeStartupTimeoutSeconds: Int
        public var pollIntervalMilliseconds: Int

        public init(
            runID: String, cluster: Activities.ClusterRef, deployment: String, check: String, machine: String, reason: String,
            message: String, version: String, image: String? = nil, cpuCores: Int = 2, memory: String = "4Gi", template: Activities.MachineTemplate? = nil, replicas: Int,
            machines: [String], maxSurge: IntOrPercent = .count(1), drainTimeoutSeconds: Int = 600,
            nodeStartupTimeoutSeconds: Int = 600, pollIntervalMilliseconds: Int = 2000
        ) {
            self.runID = runID
            self.cluster = cluster
            self.deployment = deployment
            self.check = check
            self.machine = machine
            self.reason = reason
            self.message = message
            self.version = version
            self.image = image
            self.cpuCores = cpuCores
            self.memory = memory
            self.template = template
            self.replicas = replicas
            self.machines = machines
            self.maxSurge = maxSurge
            self.drainTimeoutSeconds = drainTimeoutSeconds
            self.nodeStartupTimeoutSeconds = nodeStartupTimeoutSeconds
            self.pollIntervalMilliseconds = pollIntervalMilliseconds
        }
    }

    /// Which goes first.
    public enum Order: String, Codable, Hashable, Sendable {
        case replacementFirst
        case deleteFirst
    }

    /// Domain event ``started``: what is replaced, by what, why, and in which order.
    public struct Started: Codable, Hashable, Sendable {
        public var check: String
        public var machine: String
        public var reason: String
        public var message: String
        public var replacement: String
        public var order: Order
        /// Why that order (the surge arithmetic).
        public var orderReason: String
    }

    /// Domain event ``replacementReady``.
    public struct ReplacementReady: Codable, Hashable, Sendable {
        public var replacement: String
        public var providerID: String
    }

    /// Domain event ``machineDeleted``.
    public struct MachineDeleted: Codable, Hashable, Sendable {
        public var machine: String
        public var drained: Bool
        public var drainTimedOut: Bool
        public var blocked: [String]
    }

    public struct Output: Codable, Hashable, Sendable {
        public var machine: String
        public var replacement: String
        public var order: Order
        public var drained: Bool
        public var drainTimedOut: Bool
        /// The deployment's machines now.
        public var machines: [String]
    }

    public static let started = "RemediationStarted"
    public static let replacementReady = "ReplacementReady"
    public static let machineDeleted = "UnhealthyMachineDeleted"

    public struct State: Codable, Equatable, Sendable {
        public var run = RunState<Input>()
        /// Domain event ids the engine has recorded.
        public var recorded: Set<String> = []
        public init() {}
    }

    public static var initial: State { State() }

    public static func evolve(_ state: State, _ event: WorkflowEvent, at _: Timestamp) -> State {
        var next = state
        next.run.apply(event)
        if case .domainEvent(let recorded) = event { next.recorded.insert(recorded.id) }
        return next
    }

    /// The order for `input` and why: replacement first while `replicas + maxSurge` (surge
    /// rounds up, as CAPI rounds it) leaves room for one more machine.
    public static func order(_ input: Input) -> (Order, String) {
        let surge = input.maxSurge.scaled(against: max(0, input.replicas), rounding: .up)
        let limit = max(0, input.replicas) + surge
        if input.machines.count + 1 <= limit {
            return (.replacementFirst, "maxSurge \(input.maxSurge) allows \(limit) machines, \(input.machines.count) exist")
        }
        return (.deleteFirst, "maxSurge \(input.maxSurge) allows \(limit) machines and \(input.machines.count) exist: no room for a replacement first")
    }

    /// The replacement's name: the deployment's next ordinal (never an old machine's name).
    public static func replacement(_ input: Input) -> String {
        MachineNaming.name(deployment: input.deployment, ordinal: MachineNaming.nextOrdinal(after: input.machines + [input.machine], deployment: input.deployment))
    }

    static func provisionID(_ input: Input) -> String {
        MachineNaming.childID(runID: input.runID, verb: "provision", machine: replacement(input))
    }

    static func deleteID(_ input: Input) -> String { MachineNaming.childID(runID: input.runID, verb: "delete", machine: input.machine) }

    /// The facts the run has established so far, as domain events (recorded once each).
    static func facts(_ input: Input, _ ledger: Ledger) -> [DomainEvent] {
        let (order, why) = order(input)
        let replacement = replacement(input)
        var facts = [
            DomainEvent(
                id: "started", name: started,
                value: Started(
                    check: input.check, machine: input.machine, reason: input.reason, message: input.message, replacement: replacement,
                    order: order, orderReason: why))
        ]
        if case .completed(let text)? = ledger.children[provisionID(input)],
            let ready = try? Activities.decode(ProvisionMachine.Output.self, from: text)
        {
            facts.append(
                DomainEvent(id: "replacement-ready", name: replacementReady, value: ReplacementReady(replacement: replacement, providerID: ready.providerID)))
        }
        if case .completed(let text)? = ledger.children[deleteID(input)], let deleted = try? Activities.decode(DeleteMachine.Output.self, from: text) {
            facts.append(
                DomainEvent(
                    id: "deleted", name: machineDeleted,
                    value: MachineDeleted(machine: input.machine, drained: deleted.drained, drainTimedOut: deleted.drainTimedOut, blocked: deleted.blocked)))
        }
        return facts
    }

    public static func decide(_ state: State) -> [WorkflowCommand] {
        var pending: [DomainEvent] = []
        if let input = state.run.input, input.machines.contains(input.machine), !state.run.ledger.finished {
            pending = facts(input, state.run.ledger).filter { !state.recorded.contains($0.id) }
        }
        return pending.map { .recordEvent($0) } + state.run.decide { input, script throws(Suspension) in
            guard input.machines.contains(input.machine) else {
                throw .failed("machine \(input.machine) is not one of MachineDeployment \(input.deployment)'s machines")
            }
            let (order, _) = order(input)
            let replacement = replacement(input)
            func provision() throws(Suspension) -> ProvisionMachine.Output {
                try script.child(
                    provisionID(input), type: ProvisionMachine.type,
                    ProvisionMachine.Input(
                        cluster: input.cluster, deployment: input.deployment, machine: replacement, kubeletVersion: input.version,
                        image: input.image, cpuCores: input.cpuCores, memory: input.memory, template: input.template,
                        nodeStartupTimeoutSeconds: input.nodeStartupTimeoutSeconds, pollIntervalMilliseconds: input.pollIntervalMilliseconds),
                    as: ProvisionMachine.Output.self)
            }
            func delete() throws(Suspension) -> DeleteMachine.Output {
                try script.child(
                    deleteID(input), type: DeleteMachine.type,
                    DeleteMachine.Input(cluster: input.cluster, machine: input.machine, drain: true, drainTimeoutSeconds: input.drainTimeoutSeconds),
                    as: DeleteMachine.Output.self)
            }
            let deleted: DeleteMachine.Output
            switch order {
            case .replacementFirst:
                _ = try provision()
                deleted = try delete()
            case .deleteFirst:
                deleted = try delete()
                _ = try provision()
            }
            // Complete only once every fact is recorded, so the history reads in order.
            guard pending.isEmpty else { throw .waiting }
            let machines = (input.machines.filter { $0 != input.machine } + [replacement]).sorted()
            return .complete(
                with: Output(
                    machine: input.machine, replacement: replacement, order: order, drained: deleted.drained,
                    drainTimedOut: deleted.drainTimedOut, machines: machines))
        }
    }
}
