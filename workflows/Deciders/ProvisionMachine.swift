// ProvisionMachine: one worker machine, as CAPI + CABPK + CAPK make it: a bootstrap token and
// userdata Secret, the VirtualMachine, wait for it to run, wait for its Node to join and be
// Ready within the start-up timeout, then `spec.providerID` `kubevirt://<machine>` on the Node
// (CAPK patches it itself because a tenant cluster has no cloud provider).
//
// The input and output field names are a stored format (recorded in the start and completion
// events); add optional fields only.
public import Engine

/// Provisions one machine of a MachineDeployment.
public enum ProvisionMachine: Workflow {
    public static let type = "ProvisionMachine"
    public static let version = 1

    public struct Input: Codable, Hashable, Sendable {
        public var cluster: Activities.ClusterRef
        public var deployment: String
        /// The VM's and the Node's name: deterministic, chosen by the caller.
        public var machine: String
        /// The kubelet to join with: the control plane's minor (kubeadm join requires it).
        public var kubeletVersion: String
        /// The containerDisk image (the catalog's `machineImage`), nil for the template's.
        public var image: String?
        public var cpuCores: Int
        public var memory: String
        /// The MachineDeployment's templates (VM and bootstrap); nil for the default VM.
        public var template: Activities.MachineTemplate?
        /// How long the VM and its Node may take to run and be Ready (MHC's
        /// `nodeStartupTimeout`, counted from the VM's creation); 0 waits for ever.
        public var nodeStartupTimeoutSeconds: Int
        /// The pause between two reads while waiting.
        public var pollIntervalMilliseconds: Int

        public init(
            cluster: Activities.ClusterRef, deployment: String, machine: String, kubeletVersion: String,
            image: String? = nil, cpuCores: Int = 2, memory: String = "4Gi", template: Activities.MachineTemplate? = nil,
            nodeStartupTimeoutSeconds: Int = 600, pollIntervalMilliseconds: Int = 2000
        ) {
            self.template = template
            self.cluster = cluster
            self.deployment = deployment
            self.machine = machine
            self.kubeletVersion = kubeletVersion
            self.image = image
            self.cpuCores = cpuCores
            self.memory = memory
            self.nodeStartupTimeoutSeconds = nodeStartupTimeoutSeconds
            self.pollIntervalMilliseconds = pollIntervalMilliseconds
        }
    }

    public struct Output: Codable, Hashable, Sendable {
        public var machine: String
        public var providerID: String
        /// As the Node reports it.
        public var kubeletVersion: String?

        public init(machine: String, providerID: String, kubeletVersion: String?) {
            self.machine = machine
            self.providerID = providerID
            self.kubeletVersion = kubeletVersion
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
            let interval = Duration.milliseconds(input.pollIntervalMilliseconds)
            let boot = try script.activity(
                "bootstrap", Activities.ensureBootstrap,
                Activities.BootstrapInput(
                    cluster: input.cluster, machine: input.machine, kubeletVersion: input.kubeletVersion,
                    bootstrap: input.template?.bootstrap),
                as: Activities.BootstrapOutput.self)
            _ = try script.activity(
                "vm-create", Activities.createVirtualMachine,
                Activities.VirtualMachineInput(
                    cluster: input.cluster, deployment: input.deployment, machine: input.machine,
                    userdataSecretName: boot.userdataSecretName, image: input.image, cpuCores: input.cpuCores,
                    memory: input.memory, virtualMachine: input.template?.virtualMachine,
                    templateDigest: Activities.MachineTemplate.digest(of: input.template)),
                as: Activities.VirtualMachineCreated.self)
            // The start-up clock runs from the VM's creation, as MHC's nodeStartupTimeout does.
            let expired =
                input.nodeStartupTimeoutSeconds > 0
                && script.timer("startup-deadline", after: .seconds(input.nodeStartupTimeoutSeconds))
            let vm = script.poll(
                "vm", Activities.readVirtualMachine, ref, as: Activities.VirtualMachineObservation.self, every: interval
            ) { $0.ready }
            if case .waiting = vm.step, expired {
                throw .failed(
                    "machine \(input.machine): VirtualMachine not ready within \(input.nodeStartupTimeoutSeconds)s "
                        + "(last status: \(vm.last.map { $0.exists ? ($0.printableStatus ?? "unknown") : "absent" } ?? "not read"))")
            }
            _ = try vm.step.get()
            let node = script.poll("node", Activities.readNode, ref, as: Activities.NodeObservation.self, every: interval) {
                $0.isReady
            }
            if case .waiting = node.step, expired {
                throw .failed(
                    "machine \(input.machine): Node did not join and become Ready within "
                        + "\(input.nodeStartupTimeoutSeconds)s (last: \(describe(node.last)))")
            }
            let ready = try node.step.get()
            let providerID = "kubevirt://\(input.machine)"
            if ready.providerID != providerID {
                _ = try script.activity("provider-id", Activities.setProviderID, ref, as: Activities.ProviderIDSet.self)
            }
            return .complete(with: Output(machine: input.machine, providerID: providerID, kubeletVersion: ready.kubeletVersion))
        }
    }

    static func describe(_ node: Activities.NodeObservation?) -> String {
        guard let node else { return "not read" }
        guard node.exists else { return "no Node" }
        return "Ready=\(node.ready ?? "unreported")" + (node.reason.map { " (\($0))" } ?? "")
    }
}
