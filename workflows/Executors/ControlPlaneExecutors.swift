import Engine
import Providers

extension FleetExecutors {
    func createControlPlane(
        _ input: Activities.ControlPlaneInput, key: IdempotencyKey
    ) async throws -> Activities.ControlPlaneCreated {
        let outcome = try await KamajiProvider(client: management).ensureControlPlane(
            name: input.cluster.controlPlane, namespace: input.cluster.namespace, version: input.version,
            replicas: input.replicas, key: key)
        return Activities.ControlPlaneCreated(created: outcome.wasCreatedNow)
    }

    /// Server-side applies `spec.kubernetes.version`; Kamaji refuses a downgrade or a skipped
    /// minor (403), which is final.
    func setControlPlaneVersion(
        _ input: Activities.ControlPlaneVersionInput, key: IdempotencyKey
    ) async throws -> Activities.ControlPlaneVersionSet {
        let controlPlane = try await KamajiProvider(client: management).setVersion(
            input.version, name: input.cluster.controlPlane, namespace: input.cluster.namespace, key: key)
        return Activities.ControlPlaneVersionSet(requested: controlPlane.spec?.kubernetes.version ?? input.version)
    }

    func readControlPlane(_ input: Activities.ClusterRef) async throws -> Activities.ControlPlaneObservation {
        guard
            let controlPlane = try await KamajiProvider(client: management).controlPlane(
                name: input.controlPlane, namespace: input.namespace)
        else { return Activities.ControlPlaneObservation(exists: false) }
        return Activities.ControlPlaneObservation(
            exists: true, installedVersion: controlPlane.installedVersion, status: controlPlane.versionStatus,
            requestedVersion: controlPlane.spec?.kubernetes.version,
            adminKubeconfigSecretName: controlPlane.adminKubeconfigSecretName,
            endpoint: controlPlane.status?.controlPlaneEndpoint)
    }

    /// Reads and parses the admin kubeconfig into the in-memory client cache; records only the
    /// Secret's name.
    func readAdminKubeconfig(_ input: Activities.ClusterRef) async throws -> Activities.AdminKubeconfig {
        guard
            let controlPlane = try await KamajiProvider(client: management).controlPlane(
                name: input.controlPlane, namespace: input.namespace),
            let secretName = controlPlane.adminKubeconfigSecretName
        else {
            throw ActivityFailure(
                kind: Activities.FailureKind.notReady,
                message: "TenantControlPlane \(input.namespace)/\(input.controlPlane) names no admin kubeconfig Secret yet")
        }
        await workloads.forget(input)
        _ = try await workloads.client(for: input)
        return Activities.AdminKubeconfig(secretName: secretName)
    }

    func deleteControlPlane(_ input: Activities.ClusterRef) async throws -> Activities.Deleted {
        let outcome = try await KamajiProvider(client: management).deleteControlPlane(
            name: input.controlPlane, namespace: input.namespace)
        await workloads.forget(input)
        return Activities.Deleted(alreadyGone: outcome == .alreadyGone)
    }
}
