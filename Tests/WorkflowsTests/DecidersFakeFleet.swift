// A fake management cluster for decider simulations: machines come up after a few reads, a
// control plane reaches a requested version after a few reads, drains finish, and every
// effect is counted so a test can check "created once".
import Engine
@testable import Workflows

final class FakeFleet {
    struct Machine {
        var vmReads = 0
        var nodeReads = 0
        var providerID: String?
        var kubeletVersion: String
        var cordoned = false
        var deleted = false
    }

    /// Reads before a VM reports ready, and before its Node exists and is Ready.
    var vmReadsToReady = 2
    var nodeReadsToReady = 2
    /// Reads of the control plane after a version change before it is Ready at it.
    var controlPlaneReadsToReady = 2
    /// Versions the control plane refuses (as Kamaji's webhook refuses a bad jump).
    var refusedVersions: Set<String> = []
    /// Machines whose Node never becomes Ready.
    var neverReady: Set<String> = []

    /// Machines the update extension declines, and those whose in-place update fails.
    var inPlaceDeclined: Set<String> = []
    var inPlaceFailing: Set<String> = []
    /// UpdateMachine polls answered "in progress" before "done".
    var updatePollsInProgress = 1
    private var updatePolls: [String: Int] = [:]

    private(set) var machines: [String: Machine] = [:]
    private(set) var effects: [String] = []
    var controlPlaneExists = false
    var controlPlaneVersion: String?
    var installedVersion: String?
    var controlPlaneReads = 0

    func respond(_ call: DeciderSimulation.Call) -> Result<String, ActivityFailure> {
        let request = call.request
        do {
            switch request.name {
            case Activities.ensureBootstrap:
                let input = try Activities.decode(Activities.BootstrapInput.self, from: request.input)
                effects.append("bootstrap \(input.machine) \(input.kubeletVersion)")
                machines[input.machine, default: Machine(kubeletVersion: input.kubeletVersion)].kubeletVersion =
                    input.kubeletVersion
                return ok(Activities.BootstrapOutput(userdataSecretName: "\(input.machine)-userdata", tokenID: "abcdef"))
            case Activities.createVirtualMachine:
                let input = try Activities.decode(Activities.VirtualMachineInput.self, from: request.input)
                effects.append("vm.create \(input.machine)")
                return ok(Activities.VirtualMachineCreated(created: true))
            case Activities.readVirtualMachine:
                let ref = try Activities.decode(Activities.MachineRef.self, from: request.input)
                guard var machine = machines[ref.machine], !machine.deleted else {
                    return ok(Activities.VirtualMachineObservation(exists: false, ready: false))
                }
                machine.vmReads += 1
                machines[ref.machine] = machine
                let ready = machine.vmReads >= vmReadsToReady
                return ok(Activities.VirtualMachineObservation(exists: true, ready: ready, printableStatus: ready ? "Running" : "Starting"))
            case Activities.readNode:
                let ref = try Activities.decode(Activities.MachineRef.self, from: request.input)
                guard var machine = machines[ref.machine], !machine.deleted else {
                    return ok(Activities.NodeObservation(exists: false))
                }
                machine.nodeReads += 1
                machines[ref.machine] = machine
                if machine.nodeReads < nodeReadsToReady - 1 { return ok(Activities.NodeObservation(exists: false)) }
                let ready = machine.nodeReads >= nodeReadsToReady && !neverReady.contains(ref.machine)
                return ok(
                    Activities.NodeObservation(
                        exists: true, ready: ready ? "True" : "False", readySince: "2026-12-01T00:00:00Z",
                        reason: ready ? "KubeletReady" : "KubeletNotReady", kubeletVersion: machine.kubeletVersion,
                        providerID: machine.providerID, unschedulable: machine.cordoned))
            case Activities.setProviderID:
                let ref = try Activities.decode(Activities.MachineRef.self, from: request.input)
                effects.append("providerID \(ref.machine)")
                machines[ref.machine]?.providerID = "kubevirt://\(ref.machine)"
                return ok(Activities.ProviderIDSet(providerID: "kubevirt://\(ref.machine)"))
            case Activities.drainNode:
                let input = try Activities.decode(Activities.DrainInput.self, from: request.input)
                effects.append("drain \(input.machine)")
                machines[input.machine]?.cordoned = true
                return ok(Activities.DrainOutput(drained: true, timedOut: false))
            case Activities.deleteVirtualMachine:
                let ref = try Activities.decode(Activities.MachineRef.self, from: request.input)
                effects.append("vm.delete \(ref.machine)")
                let gone = machines[ref.machine]?.deleted ?? true
                machines[ref.machine]?.deleted = true
                return ok(Activities.Deleted(alreadyGone: gone))
            case Activities.deleteNode:
                let ref = try Activities.decode(Activities.MachineRef.self, from: request.input)
                effects.append("node.delete \(ref.machine)")
                return ok(Activities.Deleted(alreadyGone: false))
            case Activities.createControlPlane:
                let input = try Activities.decode(Activities.ControlPlaneInput.self, from: request.input)
                effects.append("controlPlane.create \(input.version)")
                controlPlaneExists = true
                controlPlaneVersion = input.version
                controlPlaneReads = 0
                return ok(Activities.ControlPlaneCreated(created: true))
            case Activities.setControlPlaneVersion:
                let input = try Activities.decode(Activities.ControlPlaneVersionInput.self, from: request.input)
                if refusedVersions.contains(input.version) {
                    return .failure(
                        ActivityFailure(kind: Activities.FailureKind.rejected, message: "webhook refused \(input.version)", retryable: false))
                }
                effects.append("controlPlane.setVersion \(input.version)")
                if controlPlaneVersion != input.version { controlPlaneReads = 0 }
                controlPlaneVersion = input.version
                return ok(Activities.ControlPlaneVersionSet(requested: input.version))
            case Activities.readControlPlane:
                guard controlPlaneExists else { return ok(Activities.ControlPlaneObservation(exists: false)) }
                controlPlaneReads += 1
                let ready = controlPlaneReads >= controlPlaneReadsToReady
                if ready { installedVersion = controlPlaneVersion }
                return ok(
                    Activities.ControlPlaneObservation(
                        exists: true, installedVersion: installedVersion, status: ready ? "Ready" : "Upgrading",
                        requestedVersion: controlPlaneVersion, adminKubeconfigSecretName: "admin-kubeconfig"))
            case Activities.canUpdateMachine:
                let input = try Activities.decode(Activities.InPlaceInput.self, from: request.input)
                let declined = inPlaceDeclined.contains(input.machine)
                return ok(Activities.CanUpdateOutput(inPlace: !declined, message: declined ? "image change needs a reboot" : "ok"))
            case Activities.updateMachine:
                let input = try Activities.decode(Activities.InPlaceInput.self, from: request.input)
                let polls = updatePolls[input.machine, default: 0]
                updatePolls[input.machine] = polls + 1
                if polls == 0 { effects.append("update \(input.machine) \(input.toVersion)") }
                if polls < updatePollsInProgress { return ok(Activities.UpdateOutput(state: .inProgress, retryAfterSeconds: 5)) }
                if inPlaceFailing.contains(input.machine) {
                    return ok(Activities.UpdateOutput(state: .failed, message: "kubelet did not restart"))
                }
                machines[input.machine]?.kubeletVersion = input.toVersion
                return ok(Activities.UpdateOutput(state: .done))
            case Activities.readAdminKubeconfig:
                return ok(Activities.AdminKubeconfig(secretName: "admin-kubeconfig"))
            case Activities.deleteControlPlane:
                effects.append("controlPlane.delete")
                let gone = !controlPlaneExists
                controlPlaneExists = false
                return ok(Activities.Deleted(alreadyGone: gone))
            default:
                return .failure(ActivityFailure(kind: "unknown", message: "fake fleet has no \(request.name)", retryable: false))
            }
        } catch {
            return .failure(ActivityFailure(kind: Activities.FailureKind.invalidInput, message: "\(error)", retryable: false))
        }
    }

    func count(_ prefix: String) -> Int { effects.filter { $0.hasPrefix(prefix) }.count }
}

extension DeciderSimulation {
    /// A simulation of `types` against `fleet`.
    convenience init(_ types: [any Workflow.Type], fleet: FakeFleet) {
        self.init(types) { fleet.respond($0) }
    }
}
