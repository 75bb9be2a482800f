public import Logging

/// Control planes as Kamaji TenantControlPlanes on the management cluster.
public struct KamajiProvider: Sendable {
    public let client: KubernetesClient

    public init(client: KubernetesClient) { self.client = client }

    /// Creates the TenantControlPlane once under `key` at `version` (`v1.33.4`).
    @discardableResult
    public func ensureControlPlane(
        name: String, namespace: String, version: String, replicas: Int = 2, key: IdempotencyKey
    ) async throws -> CreateOutcome<TenantControlPlane> {
        let controlPlane = TenantControlPlane(
            metadata: ObjectMeta(name: name, namespace: namespace),
            spec: TenantControlPlane.Spec(
                kubernetes: TenantControlPlane.Kubernetes(version: version),
                controlPlane: TenantControlPlane.ControlPlane(replicas: replicas)))
        return try await client.createOnce(.tenantControlPlanes, controlPlane, key: key, as: TenantControlPlane.self)
    }

    /// The control plane now, or nil when absent.
    public func controlPlane(name: String, namespace: String) async throws -> TenantControlPlane? {
        try await client.getIfPresent(.tenantControlPlanes, name: name, namespace: namespace, as: TenantControlPlane.self)
    }

    /// Asks for `version` (server-side apply of `spec.kubernetes.version`; safe to repeat).
    ///
    /// Kamaji refuses a downgrade or a jump of more than one minor (403 from its webhook):
    /// step one minor at a time and wait for `isRunning(version:)` between steps.
    public func setVersion(
        _ version: String, name: String, namespace: String, key: IdempotencyKey
    ) async throws -> TenantControlPlane {
        let patch = RawObject(
            apiVersion: ResourceType.tenantControlPlanes.apiVersion, kind: "TenantControlPlane",
            metadata: ObjectMeta(name: name, namespace: namespace),
            fields: ["spec": ["kubernetes": ["version": .string(version)]]])
        return try await client.applyOnce(.tenantControlPlanes, patch, key: key, as: TenantControlPlane.self)
    }

    /// Deletes the control plane; absent is success.
    public func deleteControlPlane(name: String, namespace: String) async throws -> DeleteOutcome {
        try await client.deleteOnce(.tenantControlPlanes, name: name, namespace: namespace)
    }

    /// A client for the workload cluster, from the admin kubeconfig Kamaji stores in the Secret
    /// named by `status.kubeconfig.admin.secretName`, key `admin.conf`.
    ///
    /// The kubeconfig is parsed in memory and never written anywhere; its token stays redacted.
    /// - Throws: `KubernetesError` `.notFound` when the control plane is not ready yet (no
    ///   Secret named), `KubeconfigError` when the kubeconfig is unusable.
    public func workloadClient(
        name: String, namespace: String, logger: Logger = Logger(label: "capstan.providers.workload")
    ) async throws -> KubernetesClient {
        guard let controlPlane = try await controlPlane(name: name, namespace: namespace),
            let secretName = controlPlane.adminKubeconfigSecretName
        else {
            throw KubernetesError(
                code: .notFound, operation: "workload client \(namespace)/\(name)",
                detail: "the TenantControlPlane names no admin kubeconfig Secret yet")
        }
        let secret = try await client.get(.secrets, name: secretName, namespace: namespace, as: Secret.self)
        let source = "Secret \(namespace)/\(secretName) key admin.conf"
        guard let bytes = secret.data?["admin.conf"] else {
            throw KubeconfigError(code: .missingField, file: source, fieldPath: "", reason: "the Secret has no key admin.conf")
        }
        let kubeconfig = try Kubeconfig.parse(bytes.exposedString, source: source, baseDirectory: nil)
        return KubernetesClient(
            connection: try kubeconfig.connection(), transport: client.transport, retryPolicy: client.retryPolicy,
            timeouts: client.timeouts, logger: logger)
    }
}
