/// Machines as KubeVirt VirtualMachines on the management cluster, the way CAPK makes them.
public struct KubeVirtProvider: Sendable {
    /// The label naming the cluster a machine belongs to (Cluster API's).
    public static let clusterNameLabel = "cluster.x-k8s.io/cluster-name"

    public let client: KubernetesClient

    public init(client: KubernetesClient) { self.client = client }

    /// What to run: name (also the Node's), size, the Secret holding cloud-init user data.
    public struct MachineSpec: Sendable, Hashable {
        public var name: String
        public var namespace: String
        public var clusterName: String
        public var cpuCores: Int
        /// A quantity such as `4Gi`.
        public var memory: String
        /// The Secret with key `userdata` (see `KubernetesClient.ensureBootstrapSecret`).
        public var bootstrapSecretName: String
        public var image: String
        public var labels: [String: String]

        public init(
            name: String, namespace: String, clusterName: String, cpuCores: Int, memory: String,
            bootstrapSecretName: String, image: String = "quay.io/capk/ubuntu-2404-container-disk:v1.33",
            labels: [String: String] = [:]
        ) {
            self.name = name
            self.namespace = namespace
            self.clusterName = clusterName
            self.cpuCores = cpuCores
            self.memory = memory
            self.bootstrapSecretName = bootstrapSecretName
            self.image = image
            self.labels = labels
        }
    }

    /// The VirtualMachine for `spec`: `runStrategy: Always`, CPU and memory, a container-disk
    /// boot volume and a `cloudInitNoCloud` volume whose Secret holds key `userdata`.
    public static func virtualMachine(for spec: MachineSpec) -> VirtualMachine {
        var labels = spec.labels
        labels[clusterNameLabel] = spec.clusterName
        let instance = VirtualMachine.InstanceSpec(
            domain: VirtualMachine.Domain(
                cpu: VirtualMachine.CPU(cores: spec.cpuCores), memory: VirtualMachine.Memory(guest: spec.memory),
                devices: VirtualMachine.Devices(disks: [
                    VirtualMachine.Disk(name: "containervolume"), VirtualMachine.Disk(name: "cloudinitvolume"),
                ])),
            volumes: [
                .containerDisk(name: "containervolume", image: spec.image),
                .cloudInit(name: "cloudinitvolume", secretName: spec.bootstrapSecretName),
            ],
            evictionStrategy: "External")
        return VirtualMachine(
            metadata: ObjectMeta(name: spec.name, namespace: spec.namespace, labels: labels),
            spec: VirtualMachine.Spec(
                runStrategy: .always,
                template: VirtualMachine.Template(metadata: ObjectMeta(labels: labels), spec: instance)))
    }

    /// Creates the VM once under `key` (a repeat finds its own VM and succeeds).
    ///
    /// - Throws: `KubernetesError` (`.notOurs` when another VM has the name).
    @discardableResult
    public func ensureVirtualMachine(_ spec: MachineSpec, key: IdempotencyKey) async throws -> CreateOutcome<
        VirtualMachine
    > {
        try await client.createOnce(.virtualMachines, Self.virtualMachine(for: spec), key: key, as: VirtualMachine.self)
    }

    /// The VM as it is now, or nil when it does not exist.
    public func virtualMachine(name: String, namespace: String) async throws -> VirtualMachine? {
        try await client.getIfPresent(.virtualMachines, name: name, namespace: namespace, as: VirtualMachine.self)
    }

    /// Sets `spec.runStrategy` (server-side apply: safe to repeat).
    public func setRunStrategy(
        _ strategy: VirtualMachine.RunStrategy, name: String, namespace: String, key: IdempotencyKey
    ) async throws -> VirtualMachine {
        let patch = RawObject(
            apiVersion: ResourceType.virtualMachines.apiVersion, kind: "VirtualMachine",
            metadata: ObjectMeta(name: name, namespace: namespace),
            fields: ["spec": ["runStrategy": .string(strategy.rawValue)]])
        return try await client.applyOnce(.virtualMachines, patch, key: key, as: VirtualMachine.self)
    }

    /// Deletes the VM; absent is success.
    public func deleteVirtualMachine(name: String, namespace: String) async throws -> DeleteOutcome {
        try await client.deleteOnce(
            .virtualMachines, name: name, namespace: namespace, options: DeleteOptions(propagationPolicy: .foreground))
    }
}
