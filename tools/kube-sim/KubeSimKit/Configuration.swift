/// How a kube-sim run is set up.
public struct KubeSimConfiguration: Sendable {
    /// Where kubeconfigs and the CA are written (made if missing).
    public var stateDirectory: String
    /// The TCP port on 127.0.0.1; 0 picks a free one.
    public var port: Int = 0
    /// Seeds uids, tokens, delays and faults; nil draws one from the system.
    public var seed: UInt64?
    /// The management cluster's Kubernetes version, served at `/version`.
    public var managementVersion: String = "v1.33.4"
    public var delays = ControllerDelays()
    public var faults = FaultConfiguration()
    public var updateExtension = UpdateExtensionPolicy()
    /// DNS names the management cluster's serving certificate holds *instead of* `localhost` and
    /// `127.0.0.1` (nil: those two). The server is still reached at 127.0.0.1, so a client must
    /// verify for one of these names: the management kubeconfig then carries `tls-server-name`.
    public var serverNames: [String]? = nil
    /// JSON responses of at least this many bytes are gzip-encoded for clients that send
    /// `Accept-Encoding: gzip`, as kube-apiserver does (APIResponseCompression, 128 KiB); nil never.
    public var gzipThresholdBytes: Int? = 128 * 1024

    public init(stateDirectory: String, port: Int = 0, seed: UInt64? = nil) {
        self.stateDirectory = stateDirectory
        self.port = port
        self.seed = seed
    }
}

/// How long the simulated controllers take. Each delay gets up to `jitter` × itself more,
/// drawn from the seed.
public struct ControllerDelays: Sendable, Equatable {
    /// VirtualMachine created (runStrategy Always) → `status.ready`.
    public var virtualMachineReady: Duration = .milliseconds(200)
    /// VirtualMachine ready → its Node registered in the workload cluster.
    public var nodeJoin: Duration = .milliseconds(100)
    /// TenantControlPlane created → Ready.
    public var controlPlaneProvision: Duration = .milliseconds(300)
    /// TenantControlPlane version bumped → Ready at the new version.
    public var controlPlaneUpgrade: Duration = .milliseconds(300)
    /// An in-place kubelet update, from `UpdateMachine`'s first call to done.
    public var inPlaceUpdate: Duration = .milliseconds(300)
    /// 0.25 means each delay is stretched by up to 25%.
    public var jitter: Double = 0.25

    public init() {}

    /// All delays zero: for tests that only check the rules.
    public static var immediate: ControllerDelays {
        var delays = ControllerDelays()
        delays.virtualMachineReady = .zero
        delays.nodeJoin = .zero
        delays.controlPlaneProvision = .zero
        delays.controlPlaneUpgrade = .zero
        delays.inPlaceUpdate = .zero
        delays.jitter = 0
        return delays
    }
}

/// What the in-place update extension agrees to do.
public struct UpdateExtensionPolicy: Sendable, Equatable {
    /// Accept a kubelet change within one minor (a patch upgrade). Upstream says in-place
    /// minor kubelet upgrades are unsupported, so minor jumps are declined unless
    /// `allowMinorUpgrade` is set.
    public var allowMinorUpgrade = false
    /// Decline everything (the extension "handles nothing").
    public var declineAll = false
    /// Answer `UpdateMachine` with `Failure` (a broken node).
    public var failUpdates = false

    public init() {}
}
