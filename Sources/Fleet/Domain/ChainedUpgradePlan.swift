/// The route a cluster takes from what it runs to a target Kubernetes version, worked out
/// once and recorded as an event so a restart never changes it.
///
/// Rules (cluster-api `exp/topology/desiredstate/upgrade_plan.go`, reference §1–2):
/// - the control plane moves one minor per step, through the **newest catalog patch** of
///   each minor in between, and ends at the exact target (the current version is left out);
/// - workers (each MachineDeployment) go in one leap to the target after the last
///   control-plane step, unless the kubelet skew window would break first: then, just before
///   the control-plane step that would break it, the lagging deployments step up to the
///   version the control plane runs at that moment. Taking each worker step as late as
///   possible gives the fewest worker rollouts; from 1.30 to 1.36 it yields CAPI's default
///   worker plan (workers to 1.33 midway, then to 1.36);
/// - nothing ever goes down, and the plan is refused, with the reason, when the target is not
///   in the catalog, a minor in between has no catalog release, or the cluster already breaks
///   the skew policy.
///
/// Stored format: the field names and `Step.Kind` raw values below are recorded in the log;
/// change them only with an upcaster.
public struct ChainedUpgradePlan: Hashable, Sendable, Codable {
    public struct Step: Hashable, Sendable, Codable, CustomStringConvertible {
        public enum Kind: String, Hashable, Sendable, Codable {
            case controlPlane
            case workers
        }

        public var kind: Kind
        public var version: KubernetesVersion
        /// For a worker step, the MachineDeployments it upgrades (sorted); empty for the control plane.
        public var machineDeployments: [String]

        public init(kind: Kind, version: KubernetesVersion, machineDeployments: [String] = []) {
            precondition(kind == .workers || machineDeployments.isEmpty, "a control-plane step names no MachineDeployments")
            self.kind = kind
            self.version = version
            self.machineDeployments = machineDeployments
        }

        public static func controlPlane(_ version: KubernetesVersion) -> Step { Step(kind: .controlPlane, version: version) }

        public static func workers(_ version: KubernetesVersion, _ machineDeployments: [String]) -> Step {
            Step(kind: .workers, version: version, machineDeployments: machineDeployments.sorted())
        }

        /// `control plane → v1.34.3` or `workers [md-a, md-b] → v1.33.5`.
        public var description: String {
            switch kind {
            case .controlPlane: "control plane → \(version)"
            case .workers: "workers [\(machineDeployments.joined(separator: ", "))] → \(version)"
            }
        }
    }

    /// The control plane's version when the plan was made.
    public var controlPlaneSource: KubernetesVersion
    /// Each MachineDeployment's version when the plan was made, by name.
    public var workerSources: [String: KubernetesVersion]
    public var target: KubernetesVersion
    /// The steps in the order they run; empty when everything is already at the target.
    public var steps: [Step]

    /// The control plane's versions, in order.
    public var controlPlaneVersions: [KubernetesVersion] { steps.filter { $0.kind == .controlPlane }.map(\.version) }

    /// The distinct versions workers step through, in order (CAPI's `workersUpgrades`).
    public var workerVersions: [KubernetesVersion] {
        var result: [KubernetesVersion] = []
        for step in steps where step.kind == .workers && result.last != step.version { result.append(step.version) }
        return result
    }

    /// Works out the plan.
    ///
    /// - Parameters:
    ///   - controlPlane: the version the control plane runs (its installed version).
    ///   - workers: each MachineDeployment's current version, by name.
    ///   - target: the version the whole cluster should end at.
    ///   - catalog: the releases the chain may step through; must list `target`.
    /// - Throws: ``DomainError``: `versionNotInCatalog` (target absent), `downgrade` (target
    ///   older than the control plane or a worker), `missingMinor` (no catalog release of a
    ///   minor in between), `versionSkew` (a worker newer than the control plane or already
    ///   outside the kubelet window).
    public init(
        controlPlane: KubernetesVersion, workers: [String: KubernetesVersion], target: KubernetesVersion,
        catalog: VersionCatalog
    ) throws {
        guard catalog.contains(target) else {
            let known = catalog.versions.map(\.description).joined(separator: ", ")
            throw DomainError(
                .versionNotInCatalog, "target \(target) is not in the version catalog (it lists: \(known.isEmpty ? "nothing" : known))")
        }
        if target < controlPlane {
            throw DomainError(.downgrade, "target \(target) is older than the control plane's \(controlPlane); Capstan never downgrades")
        }
        guard target.major == controlPlane.major else {
            throw DomainError(.versionSkew, "target \(target) is another major than the control plane's \(controlPlane)")
        }
        for name in workers.keys.sorted() {
            let version = workers[name]!
            if target < version {
                throw DomainError(
                    .downgrade, "target \(target) is older than MachineDeployment \(name)'s \(version); Capstan never downgrades")
            }
            do {
                try VersionSkew.checkKubelet(version, apiServer: controlPlane)
            } catch let error as DomainError {
                throw DomainError(error.code, "MachineDeployment \(name): \(error.message)")
            }
        }

        // The control plane: the newest catalog patch of every minor after the current one, the exact target last.
        var controlPlaneSteps: [KubernetesVersion] = []
        var minor = controlPlane.minorLine.next
        while minor < target.minorLine {
            guard let newest = catalog.newestPatch(of: minor) else {
                throw DomainError(
                    .missingMinor,
                    "the version catalog has no release of \(minor), which the control plane must pass through from "
                        + "\(controlPlane) to \(target) (one minor per step)")
            }
            controlPlaneSteps.append(newest)
            minor = minor.next
        }
        if target != controlPlane { controlPlaneSteps.append(target) }

        // Workers: as late as the kubelet window allows.
        var steps: [Step] = []
        var running = controlPlane
        var workerVersions = workers
        for next in controlPlaneSteps {
            let lagging = workerVersions.keys.sorted().filter { name in
                !VersionSkew.allowsKubelet(workerVersions[name]!.minorLine, apiServer: next.minorLine)
            }
            if !lagging.isEmpty {
                steps.append(.workers(running, lagging))
                for name in lagging { workerVersions[name] = running }
            }
            steps.append(.controlPlane(next))
            running = next
        }
        let behind = workerVersions.keys.sorted().filter { workerVersions[$0] != target }
        if !behind.isEmpty { steps.append(.workers(target, behind)) }

        self.controlPlaneSource = controlPlane
        self.workerSources = workers
        self.target = target
        self.steps = steps
        if let broken = violations().first { preconditionFailure("planner produced an invalid plan: \(broken)") }
    }

    /// Every rule the steps break, walking them in order from the sources: a control-plane
    /// step that goes down or skips a minor, a worker step that goes down, names an unknown
    /// deployment or lands outside the window, a kubelet left outside the window by a
    /// control-plane step, or an end short of the target. Empty for a valid plan.
    public func violations() -> [String] {
        var problems: [String] = []
        var controlPlane = controlPlaneSource
        var workers = workerSources
        for (index, step) in steps.enumerated() {
            switch step.kind {
            case .controlPlane:
                do { try VersionSkew.checkControlPlaneStep(from: controlPlane, to: step.version) } catch let error as DomainError {
                    problems.append("step \(index): \(error.message)")
                } catch { problems.append("step \(index): \(error)") }
                if step.version == controlPlane { problems.append("step \(index): control plane is already at \(controlPlane)") }
                controlPlane = step.version
                for name in workers.keys.sorted() where !VersionSkew.allowsKubelet(workers[name]!.minorLine, apiServer: controlPlane.minorLine) {
                    problems.append("step \(index): MachineDeployment \(name) at \(workers[name]!) is outside the window of \(controlPlane)")
                }
            case .workers:
                for name in step.machineDeployments {
                    guard let current = workers[name] else {
                        problems.append("step \(index): unknown MachineDeployment \(name)")
                        continue
                    }
                    if step.version <= current { problems.append("step \(index): MachineDeployment \(name) would not go up from \(current)") }
                    if !VersionSkew.allowsKubelet(step.version.minorLine, apiServer: controlPlane.minorLine) {
                        problems.append("step \(index): workers at \(step.version) would break the window of \(controlPlane)")
                    }
                    workers[name] = step.version
                }
            }
        }
        if controlPlane != target { problems.append("the control plane ends at \(controlPlane), not \(target)") }
        for name in workers.keys.sorted() where workers[name] != target {
            problems.append("MachineDeployment \(name) ends at \(workers[name]!), not \(target)")
        }
        return problems
    }
}
