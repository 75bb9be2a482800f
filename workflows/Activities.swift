// The activity contract between the deciders (workflows/Deciders) and the executors
// (workflows/Executors): each activity's registered name and its typed input and output,
// carried as JSON in `ActivityRequest.input` and the executor's output string.
//
// Case and field names are a stored format: they are recorded in `ActivityScheduled` and
// `ActivityCompleted` events, so rename only with an upcast.
public import Engine
import Fleet
import Foundation
public import Providers

/// Activity names and their inputs and outputs.
public enum Activities {
    // MARK: names

    /// ``BootstrapInput`` → ``BootstrapOutput``: the token Secret in the tenant's kube-system and
    /// the userdata Secret `<machine>-userdata` on the management cluster (crash-safe order).
    public static let ensureBootstrap = "bootstrap.ensure"
    /// ``VirtualMachineInput`` → ``VirtualMachineCreated``.
    public static let createVirtualMachine = "vm.create"
    /// ``MachineRef`` → ``VirtualMachineObservation``.
    public static let readVirtualMachine = "vm.read"
    /// ``MachineRef`` → ``Deleted``: the VM and its userdata Secret.
    public static let deleteVirtualMachine = "vm.delete"
    /// ``MachineRef`` → ``NodeObservation``.
    public static let readNode = "node.read"
    /// ``MachineRef`` → ``ProviderIDSet``: `spec.providerID` `kubevirt://<machine>`, as CAPK does.
    public static let setProviderID = "node.setProviderID"
    /// ``DrainInput`` → ``DrainOutput``: cordon, then evict (one pass per attempt; fails with the
    /// retryable kind ``FailureKind/drainPending`` while pods remain, until the timeout).
    public static let drainNode = "node.drain"
    /// ``MachineRef`` → ``Deleted``.
    public static let deleteNode = "node.delete"
    /// ``ControlPlaneInput`` → ``ControlPlaneCreated``.
    public static let createControlPlane = "controlPlane.create"
    /// ``ControlPlaneVersionInput`` → ``ControlPlaneVersionSet``.
    public static let setControlPlaneVersion = "controlPlane.setVersion"
    /// ``ClusterRef`` → ``ControlPlaneObservation``.
    public static let readControlPlane = "controlPlane.read"
    /// ``ClusterRef`` → ``AdminKubeconfig``: reads and parses the admin kubeconfig (kept in
    /// memory, never recorded; the output names only its Secret).
    public static let readAdminKubeconfig = "controlPlane.kubeconfig"
    /// ``ClusterRef`` → ``Deleted``.
    public static let deleteControlPlane = "controlPlane.delete"
    /// ``InPlaceInput`` → ``CanUpdateOutput``: the update extension's `CanUpdateMachine`.
    public static let canUpdateMachine = "machine.canUpdate"
    /// ``InPlaceInput`` → ``UpdateOutput``: the update extension's `UpdateMachine` (start or poll).
    public static let updateMachine = "machine.update"

    /// Every name above.
    public static let allNames: [String] = [
        ensureBootstrap, createVirtualMachine, readVirtualMachine, deleteVirtualMachine, readNode, setProviderID,
        drainNode, deleteNode, createControlPlane, setControlPlaneVersion, readControlPlane, readAdminKubeconfig,
        deleteControlPlane, canUpdateMachine, updateMachine,
    ]

    /// Stable `ActivityFailure.kind` values the executors report.
    public enum FailureKind {
        /// An object of the deterministic name exists under another idempotency key. Not retryable.
        public static let notOurs = "notOurs"
        /// The input did not decode or names something invalid. Not retryable.
        public static let invalidInput = "invalidInput"
        /// The server refused for good (403, 422, 400: for example a Kamaji downgrade). Not retryable.
        public static let rejected = "rejected"
        /// A needed object is missing (the control plane for a bootstrap). Retryable: it may appear.
        public static let notFound = "notFound"
        /// The control plane has no admin kubeconfig yet, or the workload cluster is not reachable.
        public static let notReady = "notReady"
        /// Throttling, 5xx, timeouts, transport: retryable.
        public static let transient = "transient"
        /// A drain pass left pods (a budget refused an eviction, or pods still terminating).
        public static let drainPending = "drainPending"
        /// A conflict (stale resourceVersion, a providerID already set to another value).
        public static let conflict = "conflict"
    }

    // MARK: inputs and outputs

    /// What a MachineDeployment's templates make of each machine: the KubevirtMachineTemplate's
    /// `virtualMachineTemplate` (the VM, kept whole, as CAPK creates it) and what its
    /// KubeadmConfigTemplate adds to the cloud-init userdata. Carried in the inputs, so the
    /// history records what each machine was made from and a later template change does not
    /// alter a running workflow.
    public struct MachineTemplate: Codable, Hashable, Sendable {
        public var virtualMachine: JSONValue?
        public var bootstrap: KubeadmConfigExtras?
        /// The templates' ``MachineTemplateDigest`` (from their applied specs), recorded on
        /// each VirtualMachine made from them; nil in inputs recorded before it existed.
        public var digest: String?

        public init(virtualMachine: JSONValue? = nil, bootstrap: KubeadmConfigExtras? = nil, digest: String? = nil) {
            self.virtualMachine = virtualMachine
            self.bootstrap = bootstrap
            self.digest = digest
        }

        /// The digest a machine made from `template` carries: the template's own, the digest
        /// of no template when there is none, nil when a template recorded before digests
        /// existed has none (such a machine counts as current).
        public static func digest(of template: MachineTemplate?) -> String? {
            guard let template else { return MachineTemplateDigest.none }
            return template.digest
        }
    }

    /// A workload cluster: its namespace on the management cluster, its name, and the
    /// TenantControlPlane serving it (the KamajiControlPlane's name).
    public struct ClusterRef: Codable, Hashable, Sendable {
        public var namespace: String
        public var name: String
        public var controlPlane: String

        public init(namespace: String, name: String, controlPlane: String? = nil) {
            self.namespace = namespace
            self.name = name
            self.controlPlane = controlPlane ?? name
        }
    }

    /// One machine: its VM and Node share the name.
    public struct MachineRef: Codable, Hashable, Sendable {
        public var cluster: ClusterRef
        public var machine: String

        public init(cluster: ClusterRef, machine: String) {
            self.cluster = cluster
            self.machine = machine
        }
    }

    public struct BootstrapInput: Codable, Hashable, Sendable {
        public var cluster: ClusterRef
        public var machine: String
        /// The kubelet to join with, `v1.33.4`: the control plane's minor (kubeadm join).
        public var kubeletVersion: String
        /// The KubeadmConfigTemplate's files, commands and node registration; nil for none.
        public var bootstrap: KubeadmConfigExtras?

        public init(cluster: ClusterRef, machine: String, kubeletVersion: String, bootstrap: KubeadmConfigExtras? = nil) {
            self.cluster = cluster
            self.machine = machine
            self.kubeletVersion = kubeletVersion
            self.bootstrap = bootstrap
        }
    }

    public struct BootstrapOutput: Codable, Hashable, Sendable {
        public var userdataSecretName: String
        /// The token's public half (never its secret).
        public var tokenID: String

        public init(userdataSecretName: String, tokenID: String) {
            self.userdataSecretName = userdataSecretName
            self.tokenID = tokenID
        }
    }

    public struct VirtualMachineInput: Codable, Hashable, Sendable {
        public var cluster: ClusterRef
        /// The MachineDeployment's name (label `cluster.x-k8s.io/deployment-name`).
        public var deployment: String
        public var machine: String
        public var userdataSecretName: String
        /// The containerDisk image (the catalog's `machineImage` for the version), nil for the default.
        public var image: String?
        public var cpuCores: Int
        public var memory: String
        /// The KubevirtMachineTemplate's `virtualMachineTemplate`: when set, the VM is made from
        /// it (``cpuCores`` and ``memory`` then play no part).
        public var virtualMachine: JSONValue?
        /// The ``MachineTemplateDigest`` the machine is made from (label
        /// `capstan.dev/machine-template-hash` on the VM); nil: none recorded.
        public var templateDigest: String?

        public init(
            cluster: ClusterRef, deployment: String, machine: String, userdataSecretName: String, image: String? = nil,
            cpuCores: Int = 2, memory: String = "4Gi", virtualMachine: JSONValue? = nil, templateDigest: String? = nil
        ) {
            self.virtualMachine = virtualMachine
            self.templateDigest = templateDigest
            self.cluster = cluster
            self.deployment = deployment
            self.machine = machine
            self.userdataSecretName = userdataSecretName
            self.image = image
            self.cpuCores = cpuCores
            self.memory = memory
        }
    }

    public struct VirtualMachineCreated: Codable, Hashable, Sendable {
        /// False when an earlier attempt had created it.
        public var created: Bool
        public init(created: Bool) { self.created = created }
    }

    public struct VirtualMachineObservation: Codable, Hashable, Sendable {
        public var exists: Bool
        public var ready: Bool
        public var printableStatus: String?

        public init(exists: Bool, ready: Bool, printableStatus: String? = nil) {
            self.exists = exists
            self.ready = ready
            self.printableStatus = printableStatus
        }
    }

    public struct Deleted: Codable, Hashable, Sendable {
        /// True when there was nothing left to delete.
        public var alreadyGone: Bool
        public init(alreadyGone: Bool) { self.alreadyGone = alreadyGone }
    }

    public struct NodeObservation: Codable, Hashable, Sendable {
        public var exists: Bool
        /// The `Ready` condition's status ("True", "False", "Unknown"), nil when not reported.
        public var ready: String?
        /// The `Ready` condition's `lastTransitionTime` (RFC 3339): the health-check clock.
        public var readySince: String?
        public var reason: String?
        public var kubeletVersion: String?
        public var providerID: String?
        public var unschedulable: Bool

        public init(
            exists: Bool, ready: String? = nil, readySince: String? = nil, reason: String? = nil,
            kubeletVersion: String? = nil, providerID: String? = nil, unschedulable: Bool = false
        ) {
            self.exists = exists
            self.ready = ready
            self.readySince = readySince
            self.reason = reason
            self.kubeletVersion = kubeletVersion
            self.providerID = providerID
            self.unschedulable = unschedulable
        }

        public var isReady: Bool { exists && ready == "True" }

        /// ``readySince`` as a time (nil when absent or not RFC 3339): the health-check clock.
        public var readySinceTime: Timestamp? { readySince.flatMap(Activities.timestamp(rfc3339:)) }
    }

    public struct ProviderIDSet: Codable, Hashable, Sendable {
        public var providerID: String
        public init(providerID: String) { self.providerID = providerID }
    }

    public struct DrainInput: Codable, Hashable, Sendable {
        public var cluster: ClusterRef
        public var machine: String
        /// After this long since the drain began (kept on the Node), give up evicting and report
        /// `timedOut` (CAPI's `nodeDrainTimeout`); 0 waits for ever.
        public var timeoutSeconds: Int

        public init(cluster: ClusterRef, machine: String, timeoutSeconds: Int) {
            self.cluster = cluster
            self.machine = machine
            self.timeoutSeconds = timeoutSeconds
        }
    }

    public struct DrainOutput: Codable, Hashable, Sendable {
        /// Nothing left to evict and nothing terminating (also true when the Node is gone).
        public var drained: Bool
        /// The drain timeout passed with pods left.
        public var timedOut: Bool
        /// Pods a budget still protects (`namespace/name`).
        public var blocked: [String]
        /// DaemonSet, mirror and finished pods the drain left.
        public var skipped: [String]

        public init(drained: Bool, timedOut: Bool, blocked: [String] = [], skipped: [String] = []) {
            self.drained = drained
            self.timedOut = timedOut
            self.blocked = blocked
            self.skipped = skipped
        }
    }

    public struct ControlPlaneInput: Codable, Hashable, Sendable {
        public var cluster: ClusterRef
        public var version: String
        public var replicas: Int

        public init(cluster: ClusterRef, version: String, replicas: Int = 2) {
            self.cluster = cluster
            self.version = version
            self.replicas = replicas
        }
    }

    public struct ControlPlaneCreated: Codable, Hashable, Sendable {
        public var created: Bool
        public init(created: Bool) { self.created = created }
    }

    public struct ControlPlaneVersionInput: Codable, Hashable, Sendable {
        public var cluster: ClusterRef
        public var version: String

        public init(cluster: ClusterRef, version: String) {
            self.cluster = cluster
            self.version = version
        }
    }

    public struct ControlPlaneVersionSet: Codable, Hashable, Sendable {
        /// `spec.kubernetes.version` as the server holds it after the apply.
        public var requested: String
        public init(requested: String) { self.requested = requested }
    }

    public struct ControlPlaneObservation: Codable, Hashable, Sendable {
        public var exists: Bool
        /// `status.kubernetesResources.version.version`: what runs.
        public var installedVersion: String?
        /// `status.kubernetesResources.version.status` (`Provisioning`, `Upgrading`, `Ready`…).
        public var status: String?
        /// `spec.kubernetes.version`: what was asked.
        public var requestedVersion: String?
        public var adminKubeconfigSecretName: String?
        public var endpoint: String?

        public init(
            exists: Bool, installedVersion: String? = nil, status: String? = nil, requestedVersion: String? = nil,
            adminKubeconfigSecretName: String? = nil, endpoint: String? = nil
        ) {
            self.exists = exists
            self.installedVersion = installedVersion
            self.status = status
            self.requestedVersion = requestedVersion
            self.adminKubeconfigSecretName = adminKubeconfigSecretName
            self.endpoint = endpoint
        }

        /// Ready at `version`: installed equals it and status is `Ready` (a step is done).
        public func isRunning(version: String) -> Bool { exists && installedVersion == version && status == "Ready" }
    }

    public struct AdminKubeconfig: Codable, Hashable, Sendable {
        /// The Secret holding it; the kubeconfig itself is never recorded.
        public var secretName: String
        public init(secretName: String) { self.secretName = secretName }
    }

    public struct InPlaceInput: Codable, Hashable, Sendable {
        public var cluster: ClusterRef
        public var machine: String
        public var fromVersion: String
        public var toVersion: String

        public init(cluster: ClusterRef, machine: String, fromVersion: String, toVersion: String) {
            self.cluster = cluster
            self.machine = machine
            self.fromVersion = fromVersion
            self.toVersion = toVersion
        }
    }

    public struct CanUpdateOutput: Codable, Hashable, Sendable {
        /// The extension covers the whole change in place.
        public var inPlace: Bool
        /// The extension's words (why it declined).
        public var message: String

        public init(inPlace: Bool, message: String) {
            self.inPlace = inPlace
            self.message = message
        }
    }

    public struct UpdateOutput: Codable, Hashable, Sendable {
        public enum State: String, Codable, Hashable, Sendable {
            case done, inProgress, failed
        }
        public var state: State
        public var retryAfterSeconds: Int
        public var message: String

        public init(state: State, retryAfterSeconds: Int = 0, message: String = "") {
            self.state = state
            self.retryAfterSeconds = retryAfterSeconds
            self.message = message
        }
    }
}

extension Activities {
    /// A Kubernetes time (RFC 3339, as `lastTransitionTime`) as a timestamp; nil when it is not one.
    public static func timestamp(rfc3339 text: String) -> Timestamp? {
        guard let date = try? Date(text, strategy: .iso8601) else { return nil }
        return Timestamp(nanoseconds: Int64((date.timeIntervalSince1970 * 1_000_000_000).rounded()))
    }

    /// The JSON text of `value`: the engine's one canonical payload encoding (sorted keys, so
    /// equal inputs are equal text and a decider's commands stay stable).
    public static func encode<Value: Encodable>(_ value: Value) -> String {
        Payload.encode(value)
    }

    /// Decodes `text` as `Value`.
    ///
    /// - Throws: ``EngineError`` `.invalidInput` naming the type and the offending field.
    public static func decode<Value: Decodable>(_ type: Value.Type, from text: String) throws -> Value {
        try Payload.decode(type, from: text, field: "activity payload")
    }
}
