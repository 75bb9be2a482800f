import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The simulated controllers: Kamaji (TenantControlPlane → workload cluster), KubeVirt
/// (VirtualMachine → running), the kubelet (VM → Node joining its cluster by the kubeadm
/// rules), and their admission rules.
///
/// Level-based like real controllers: a change to an object schedules a reconcile that,
/// after its delay, reads the current state again and acts on that.
final class Controllers: Service {
    let simulation: Simulation
    let logger: Logger
    private let changes: AsyncStream<StoreChange>
    private let changesInput: AsyncStream<StoreChange>.Continuation
    /// VMs waiting for their cloud-init Secret, by `<namespace>/<secret>`.
    let waitingForSecret = Mutex<[String: Set<String>]>([:])
    /// Ready VMs (`<namespace>/<name>`) whose kubeadm join names an endpoint nothing listens at
    /// yet, by that `host:port`.
    let waitingForCluster = Mutex<[String: Set<String>]>([:])

    static let kubeletVersionAnnotation = "kube-sim.capstan.dev/kubelet-version"

    init(simulation: Simulation, logger: Logger) {
        self.simulation = simulation
        self.logger = logger
        (changes, changesInput) = AsyncStream.makeStream()
        let input = changesInput
        simulation.management.setOnChange { change in input.yield(change) }
        simulation.management.setAdmission { attempt in try Admission.management(attempt) }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for await change in self.changes {
                    self.dispatch(change, into: &group)
                }
            }
        }
    }

    private func dispatch(_ change: StoreChange, into group: inout DiscardingTaskGroup) {
        let object = change.new ?? change.old!
        let namespace = object.namespace ?? ""
        let name = object.name ?? ""
        let specChanged = change.old == nil || change.new == nil || change.old!.specContent != change.new!.specContent
            || change.old!.labels != change.new!.labels
        switch change.resource {
        case .tenantControlPlanes:
            if change.new == nil {
                group.addTask { await self.tearDownCluster(change.old!) }
            } else if specChanged {
                group.addTask { await self.reconcileControlPlane(namespace: namespace, name: name) }
            }
        case .virtualMachines:
            if change.new == nil {
                group.addTask { self.removeNode(of: change.old!) }
            } else if specChanged {
                group.addTask { await self.reconcileVirtualMachine(namespace: namespace, name: name) }
            }
        case .secrets where change.old == nil:
            // VMs waiting for this cloud-init Secret can start now.
            let waiting = waitingForSecret.withLock { $0.removeValue(forKey: "\(namespace)/\(name)") } ?? []
            for vmName in waiting.sorted() {
                group.addTask { await self.reconcileVirtualMachine(namespace: namespace, name: vmName) }
            }
        default:
            break
        }
    }

    /// Sleeps a controller delay, stretched by the jitter drawn from the seed.
    func pause(_ delay: KeyPath<ControllerDelays, Duration>) async throws {
        let delays = simulation.delays.withLock { $0 }
        let base = Double(delays[keyPath: delay].milliseconds)
        guard base > 0 else { return }
        try await Task.sleep(for: .milliseconds(base * (1 + delays.jitter * simulation.random.unit())))
    }

    func logFailure(_ error: any Error, _ what: String) {
        logger.warning("controller write failed", metadata: ["kube-sim.work": "\(what)", "kube-sim.error": "\(error)"])
    }
}

/// The admission rules a real management or workload cluster enforces on writes.
enum Admission {
    static let webhookPrefix = "admission webhook \"vtenantcontrolplane.kb.io\" denied the request: "

    static func management(_ attempt: AdmissionAttempt) throws {
        guard attempt.resource == .tenantControlPlanes, !attempt.options.actor.hasPrefix("controller/") else { return }
        let newText = attempt.new["spec"]?["kubernetes"]?["version"]?.stringValue
        guard let newText, let new = KubeVersion(newText) else {
            throw APIError.invalid(
                .tenantControlPlanes, kind: "TenantControlPlane", name: attempt.new.name ?? "",
                causes: [("spec.kubernetes.version", "Invalid value: \"\(newText ?? "")\": must be a version like v1.33.0")])
        }
        if new.major != 1 || new.minor > ControlPlaneRules.maxMinor {
            throw APIError.forbidden(
                webhookPrefix + "unable to create a TenantControlPlane with a Kubernetes version greater than the supported one, actually v1.\(ControlPlaneRules.maxMinor)")
        }
        guard let oldText = attempt.old?["spec"]?["kubernetes"]?["version"]?.stringValue, let old = KubeVersion(oldText),
            old != new
        else { return }
        if new < old {
            throw APIError.forbidden(webhookPrefix + "unable to downgrade a TenantControlPlane from \(old) to \(new)")
        }
        if new.minorsAbove(old) > 1 {
            throw APIError.forbidden(
                webhookPrefix + "unable to upgrade a TenantControlPlane from \(old) to \(new): the upgrade can be performed only to the next minor version, \(old.minorText) to v\(old.major).\(old.minor + 1)")
        }
    }

    static func workload(_ attempt: AdmissionAttempt) throws {
        guard attempt.resource == .nodes, let old = attempt.old else { return }
        let before = old["spec"]?["providerID"]?.stringValue ?? ""
        let after = attempt.new["spec"]?["providerID"]?.stringValue ?? ""
        if !before.isEmpty, before != after {
            throw APIError.invalid(
                .nodes, kind: "Node", name: attempt.new.name ?? "",
                causes: [("spec.providerID", "Forbidden: node updates may not change providerID except from \"\" to valid")])
        }
    }
}

enum ControlPlaneRules {
    /// The newest minor Kamaji's built-in kubeadm supports (v1.36 in the reference snapshot).
    static let maxMinor = 36
}
