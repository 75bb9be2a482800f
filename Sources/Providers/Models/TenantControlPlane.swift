/// Kamaji `TenantControlPlane` (`kamaji.clastix.io/v1alpha1`), the fields Capstan sets and reads.
public struct TenantControlPlane: KubernetesObject, Hashable {
    public var apiVersion: String? = "kamaji.clastix.io/v1alpha1"
    public var kind: String? = "TenantControlPlane"
    public var metadata: ObjectMeta
    public var spec: Spec?
    public var status: Status?

    public init(metadata: ObjectMeta, spec: Spec) {
        self.metadata = metadata
        self.spec = spec
    }

    public struct Spec: Codable, Sendable, Hashable {
        public var kubernetes: Kubernetes
        public var controlPlane: ControlPlane?
        public init(kubernetes: Kubernetes, controlPlane: ControlPlane? = nil) {
            self.kubernetes = kubernetes
            self.controlPlane = controlPlane
        }
    }

    public struct Kubernetes: Codable, Sendable, Hashable {
        /// `v1.33.4` (Kamaji's spelling, with the `v`).
        public var version: String
        public init(version: String) { self.version = version }
    }

    public struct ControlPlane: Codable, Sendable, Hashable {
        public struct Deployment: Codable, Sendable, Hashable {
            public var replicas: Int?
        }
        public struct Service: Codable, Sendable, Hashable {
            public var serviceType: String?
        }
        public var deployment: Deployment?
        public var service: Service?
        public init(replicas: Int, serviceType: String = "ClusterIP") {
            self.deployment = Deployment(replicas: replicas)
            self.service = Service(serviceType: serviceType)
        }
    }

    public struct Status: Codable, Sendable, Hashable {
        public struct KubernetesResources: Codable, Sendable, Hashable {
            public var version: VersionStatus?
        }
        public struct VersionStatus: Codable, Sendable, Hashable {
            /// The installed version; copied from spec only once the rollout is Ready.
            public var version: String?
            /// `Provisioning | Upgrading | Ready | NotReady | Sleeping | …`
            public var status: String?
        }
        public struct KubeconfigStatus: Codable, Sendable, Hashable {
            public struct SecretReference: Codable, Sendable, Hashable {
                public var secretName: String?
            }
            public var admin: SecretReference?
        }
        public var kubernetesResources: KubernetesResources?
        public var kubeconfig: KubeconfigStatus?
        public var controlPlaneEndpoint: String?
    }

    /// `status.kubernetesResources.version.version`: what runs, not what was asked.
    public var installedVersion: String? { status?.kubernetesResources?.version?.version }
    /// `status.kubernetesResources.version.status`.
    public var versionStatus: String? { status?.kubernetesResources?.version?.status }
    /// `status.kubeconfig.admin.secretName`.
    public var adminKubeconfigSecretName: String? { status?.kubeconfig?.admin?.secretName }

    /// The upgrade (or creation) to `version` is done: installed equals it and status is Ready.
    public func isRunning(version: String) -> Bool {
        installedVersion == version && versionStatus == "Ready"
    }
}
