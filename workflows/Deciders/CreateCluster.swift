// CreateCluster: the TenantControlPlane, wait until it runs the version and is Ready, read the
// admin kubeconfig from its Secret (the executor keeps the kubeconfig in memory; the run
// records only the Secret's name), then every MachineDeployment's machines, each a
// ProvisionMachine child, all at once. Workers join at the control plane's version (kubeadm).
//
// The input and output field names are a stored format; add optional fields only.
public import Engine

/// Creates a workload cluster and its machines.
public enum CreateCluster: Workflow {
    public static let type = "CreateCluster"
    public static let version = 1

    /// One MachineDeployment's machines to create.
    public struct Deployment: Codable, Hashable, Sendable {
        public var name: String
        public var replicas: Int
        public var image: String?
        public var cpuCores: Int
        public var memory: String
        /// The MachineDeployment's templates (VM and bootstrap); nil for the default VM.
        public var template: Activities.MachineTemplate?
        /// The kubelet its machines join with: the MachineDeployment's `version` (never newer
        /// than the control plane); nil for the control plane's.
        public var version: String?

        public init(
            name: String, replicas: Int, image: String? = nil, cpuCores: Int = 2, memory: String = "4Gi",
            template: Activities.MachineTemplate? = nil, version: String? = nil
        ) {
            self.version = version
            self.name = name
            self.replicas = replicas
            self.image = image
            self.cpuCores = cpuCores
            self.memory = memory
            self.template = template
        }
    }

    public struct Input: Codable, Hashable, Sendable {
        /// The id this run was started under (child ids derive from it).
        public var runID: String
        public var cluster: Activities.ClusterRef
        /// As Kamaji spells it, `v1.33.4`.
        public var version: String
        public var controlPlaneReplicas: Int
        public var deployments: [Deployment]
        public var nodeStartupTimeoutSeconds: Int
        /// How long the control plane may take to be Ready.
        public var controlPlaneTimeoutSeconds: Int
        public var pollIntervalMilliseconds: Int

        public init(
            runID: String, cluster: Activities.ClusterRef, version: String, controlPlaneReplicas: Int = 2,
            deployments: [Deployment], nodeStartupTimeoutSeconds: Int = 600, controlPlaneTimeoutSeconds: Int = 1800,
            pollIntervalMilliseconds: Int = 2000
        ) {
            self.runID = runID
            self.cluster = cluster
            self.version = version
            self.controlPlaneReplicas = controlPlaneReplicas
            self.deployments = deployments
            self.nodeStartupTimeoutSeconds = nodeStartupTimeoutSeconds
            self.controlPlaneTimeoutSeconds = controlPlaneTimeoutSeconds
            self.pollIntervalMilliseconds = pollIntervalMilliseconds
        }
    }

    public struct Output: Codable, Hashable, Sendable {
        public var installedVersion: String
        public var adminKubeconfigSecretName: String
        public var machines: [ProvisionMachine.Output]

        public init(installedVersion: String, adminKubeconfigSecretName: String, machines: [ProvisionMachine.Output]) {
            self.installedVersion = installedVersion
            self.adminKubeconfigSecretName = adminKubeconfigSecretName
            self.machines = machines
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
            _ = try script.activity(
                "controlplane-create", Activities.createControlPlane,
                Activities.ControlPlaneInput(cluster: input.cluster, version: input.version, replicas: input.controlPlaneReplicas),
                as: Activities.ControlPlaneCreated.self)
            let expired =
                input.controlPlaneTimeoutSeconds > 0
                && script.timer("controlplane-deadline", after: .seconds(input.controlPlaneTimeoutSeconds))
            let observed = script.poll(
                "controlplane", Activities.readControlPlane, input.cluster, as: Activities.ControlPlaneObservation.self,
                every: .milliseconds(input.pollIntervalMilliseconds)
            ) { $0.isRunning(version: input.version) }
            if case .waiting = observed.step, expired {
                throw .failed(
                    "control plane \(input.cluster.namespace)/\(input.cluster.controlPlane) not Ready at \(input.version) "
                        + "within \(input.controlPlaneTimeoutSeconds)s (last: \(ControlPlaneUpgradeStep.describe(observed.last)))")
            }
            let running = try observed.step.get()
            let kubeconfig = try script.activity(
                "kubeconfig", Activities.readAdminKubeconfig, input.cluster, as: Activities.AdminKubeconfig.self)
            let machines = try provisionAll(input, script: &script)
            return .complete(
                with: Output(
                    installedVersion: running.installedVersion ?? input.version, adminKubeconfigSecretName: kubeconfig.secretName,
                    machines: machines))
        }
    }

    /// Starts every machine's ProvisionMachine child at once; done when all are, failed (naming
    /// each failure) once all have ended and any failed.
    static func provisionAll(_ input: Input, script: inout Script) throws(Suspension) -> [ProvisionMachine.Output] {
        var outputs: [ProvisionMachine.Output] = []
        var failures: [String] = []
        var waiting = false
        for deployment in input.deployments where deployment.replicas > 0 {
            for ordinal in 1...deployment.replicas {
                let machine = MachineNaming.name(deployment: deployment.name, ordinal: ordinal)
                let child = ProvisionMachine.Input(
                    cluster: input.cluster, deployment: deployment.name, machine: machine, kubeletVersion: deployment.version ?? input.version,
                    image: deployment.image, cpuCores: deployment.cpuCores, memory: deployment.memory, template: deployment.template,
                    nodeStartupTimeoutSeconds: input.nodeStartupTimeoutSeconds,
                    pollIntervalMilliseconds: input.pollIntervalMilliseconds)
                switch script.childStep(
                    MachineNaming.childID(runID: input.runID, verb: "provision", machine: machine), type: ProvisionMachine.type,
                    child, as: ProvisionMachine.Output.self)
                {
                case .waiting: waiting = true
                case .done(let output): outputs.append(output)
                case .failed(let reason): failures.append(reason)
                }
            }
        }
        if waiting { throw .waiting }
        if !failures.isEmpty { throw .failed("\(failures.count) machine(s) failed: " + failures.joined(separator: "; ")) }
        return outputs
    }
}

/// Deterministic machine names and child ids (one home for both).
public enum MachineNaming {
    /// `<deployment>-<ordinal>`: ordinals grow and are never reused within a deployment, so a
    /// replacement never takes an old machine's name (its VM, Node and Secrets).
    public static func name(deployment: String, ordinal: Int) -> String { "\(deployment)-\(ordinal)" }

    /// The ordinal of a machine named by ``name(deployment:ordinal:)``, nil for another name.
    public static func ordinal(of machine: String, deployment: String) -> Int? {
        guard machine.hasPrefix(deployment + "-") else { return nil }
        return Int(machine.dropFirst(deployment.count + 1))
    }

    /// The next unused ordinal after `machines` (names of the deployment's machines, past and present).
    public static func nextOrdinal(after machines: [String], deployment: String) -> Int {
        (machines.compactMap { ordinal(of: $0, deployment: deployment) }.max() ?? 0) + 1
    }

    /// A child workflow id, unique for ever given a unique `runID`.
    public static func childID(runID: String, verb: String, machine: String) -> String { "\(runID)/\(verb)/\(machine)" }
}
