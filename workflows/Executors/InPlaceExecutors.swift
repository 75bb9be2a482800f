import Engine
import Providers

extension FleetExecutors {
    /// The Machine and KubevirtMachine the update extension sees (metadata and spec only, as
    /// CAPI sends them); `spec.clusterName` names the TenantControlPlane.
    static func machineObjects(_ input: Activities.InPlaceInput, version: String) -> InPlaceUpdate.MachineObjects {
        let metadata: JSONValue = ["name": .string(input.machine), "namespace": .string(input.cluster.namespace)]
        let providerID = JSONValue.string("kubevirt://\(input.machine)")
        let machine: JSONValue = [
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine", "metadata": metadata,
            "spec": [
                "clusterName": .string(input.cluster.controlPlane), "version": .string(version), "providerID": providerID,
                "infrastructureRef": [
                    "apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "KubevirtMachine", "name": .string(input.machine),
                ],
            ],
        ]
        let infrastructure: JSONValue = [
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "KubevirtMachine", "metadata": metadata,
            "spec": ["providerID": providerID],
        ]
        return InPlaceUpdate.MachineObjects(machine: machine, infrastructureMachine: infrastructure)
    }

    /// `CanUpdateMachine`: in place only when the extension covers the version change with a
    /// Machine patch. No extension, a decline or an explicit `Failure`: not in place, with why.
    func canUpdateMachine(_ input: Activities.InPlaceInput, key: IdempotencyKey) async throws -> Activities.CanUpdateOutput {
        guard let updateExtension else {
            return Activities.CanUpdateOutput(inPlace: false, message: "no in-place update extension is configured")
        }
        let request = InPlaceUpdate.CanUpdateMachineRequest(
            current: Self.machineObjects(input, version: input.fromVersion),
            desired: Self.machineObjects(input, version: input.toVersion))
        let response = try await updateExtension.canUpdateMachine(request, key: key)
        let message = response.message ?? ""
        if response.status != "Success" {
            return Activities.CanUpdateOutput(inPlace: false, message: "the extension failed: \(message)")
        }
        let covers = response.offersInPlaceUpdate && !(response.machinePatch?.isEmpty ?? true)
        return Activities.CanUpdateOutput(inPlace: covers, message: message)
    }

    /// `UpdateMachine`: starts or polls the update; the decider polls again after `retryAfterSeconds`.
    func updateMachine(_ input: Activities.InPlaceInput, key: IdempotencyKey) async throws -> Activities.UpdateOutput {
        guard let updateExtension else {
            throw ActivityFailure(
                kind: Activities.FailureKind.rejected, message: "no in-place update extension is configured",
                retryable: false)
        }
        let request = InPlaceUpdate.UpdateMachineRequest(desired: Self.machineObjects(input, version: input.toVersion))
        let response = try await updateExtension.updateMachine(request, key: key)
        let message = response.message ?? ""
        if response.isDone { return Activities.UpdateOutput(state: .done, message: message) }
        if response.isInProgress {
            return Activities.UpdateOutput(
                state: .inProgress, retryAfterSeconds: response.retryAfterSeconds ?? 1, message: message)
        }
        return Activities.UpdateOutput(state: .failed, message: message)
    }
}
