// ControlPlaneUpgradeStep: one step of a chained upgrade, run as a child workflow: set the
// TenantControlPlane's `spec.kubernetes.version`, then wait until Kamaji reports that version
// installed and the control plane Ready (Kamaji copies the installed version into status only
// once Ready, so both together mean the step is done).
//
// The input and output field names are a stored format; add optional fields only.
public import Engine

/// Moves a control plane to one version and waits for it.
public enum ControlPlaneUpgradeStep: Workflow {
    public static let type = "ControlPlaneUpgradeStep"
    public static let version = 1

    public struct Input: Codable, Hashable, Sendable {
        public var cluster: Activities.ClusterRef
        /// As Kamaji spells it, `v1.35.3`.
        public var version: String
        /// How long the control plane may take to be Ready at `version`; 0 waits for ever.
        public var timeoutSeconds: Int
        public var pollIntervalMilliseconds: Int

        public init(cluster: Activities.ClusterRef, version: String, timeoutSeconds: Int = 1800, pollIntervalMilliseconds: Int = 2000) {
            self.cluster = cluster
            self.version = version
            self.timeoutSeconds = timeoutSeconds
            self.pollIntervalMilliseconds = pollIntervalMilliseconds
        }
    }

    public struct Output: Codable, Hashable, Sendable {
        public var installedVersion: String
        public init(installedVersion: String) { self.installedVersion = installedVersion }
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
                "set-version", Activities.setControlPlaneVersion,
                Activities.ControlPlaneVersionInput(cluster: input.cluster, version: input.version),
                as: Activities.ControlPlaneVersionSet.self)
            let expired = input.timeoutSeconds > 0 && script.timer("deadline", after: .seconds(input.timeoutSeconds))
            let observed = script.poll(
                "observe", Activities.readControlPlane, input.cluster, as: Activities.ControlPlaneObservation.self,
                every: .milliseconds(input.pollIntervalMilliseconds)
            ) { $0.isRunning(version: input.version) }
            if case .waiting = observed.step, expired {
                throw .failed(
                    "control plane \(input.cluster.namespace)/\(input.cluster.controlPlane) not Ready at \(input.version) "
                        + "within \(input.timeoutSeconds)s (last: \(describe(observed.last)))")
            }
            let done = try observed.step.get()
            return .complete(with: Output(installedVersion: done.installedVersion ?? input.version))
        }
    }

    static func describe(_ observation: Activities.ControlPlaneObservation?) -> String {
        guard let observation else { return "not read" }
        guard observation.exists else { return "TenantControlPlane absent" }
        return "installed \(observation.installedVersion ?? "none"), status \(observation.status ?? "unreported")"
    }
}
