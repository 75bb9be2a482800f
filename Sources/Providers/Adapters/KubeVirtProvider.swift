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
        /// A KubevirtMachineTemplate's `spec.template.spec.virtualMachineTemplate` (`metadata`
        /// and `spec`), kept whole: when set, the VM is this, as CAPK makes it (the cloud-init
        /// volume added, ``image`` on its first containerDisk when ``imageOverride`` is set).
        public var template: JSONValue?
        /// Replace the template's containerDisk image with ``image`` (the catalog's
        /// `machineImage` for the version); false keeps the template's.
        public var imageOverride: Bool

        public init(
            name: String, namespace: String, clusterName: String, cpuCores: Int, memory: String,
            bootstrapSecretName: String, image: String = "quay.io/capk/ubuntu-2404-container-disk:v1.33",
            labels: [String: String] = [:], template: JSONValue? = nil, imageOverride: Bool = false
        ) {
            self.template = template
            self.imageOverride = imageOverride
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

    /// The VirtualMachine CAPK makes from a machine template (`spec.template` set): the
    /// template whole, named and labelled for the machine (`kubevirt.io/vm`, `name`, the
    /// cluster and deployment labels, on the VM and its instance template), `runStrategy:
    /// Always` unless the template sets `runStrategy` or `running`, the cloud-init volume and
    /// its disk appended (any the template had under that name replaced), `evictionStrategy:
    /// External` unless set, and ``MachineSpec/image`` on the first containerDisk volume when
    /// ``MachineSpec/imageOverride`` is set (a boot disk of that image added when it has none).
    public static func virtualMachine(fromTemplate template: JSONValue, for spec: MachineSpec) -> RawObject {
        let volumeName = "cloudinitvolume"
        var labels = spec.labels
        labels[clusterNameLabel] = spec.clusterName
        labels["kubevirt.io/vm"] = spec.name
        labels["name"] = spec.name
        labels["cluster.x-k8s.io/role"] = labels["cluster.x-k8s.io/role"] ?? "worker"
        func merged(_ value: JSONValue?) -> JSONValue {
            var members = value?.objectValue ?? [:]
            for (key, label) in labels { members[key] = .string(label) }
            return .object(members)
        }
        let root = template.objectValue ?? [:]
        let templateMetadata = root["metadata"]?.objectValue ?? [:]
        var vmSpec = root["spec"]?.objectValue ?? [:]
        if vmSpec["runStrategy"] == nil && vmSpec["running"] == nil {
            vmSpec["runStrategy"] = .string(VirtualMachine.RunStrategy.always.rawValue)
        }
        var instance = vmSpec["template"]?.objectValue ?? [:]
        var instanceMetadata = instance["metadata"]?.objectValue ?? [:]
        instanceMetadata["labels"] = merged(instanceMetadata["labels"])
        instance["metadata"] = .object(instanceMetadata)
        var instanceSpec = instance["spec"]?.objectValue ?? [:]
        var volumes = (instanceSpec["volumes"]?.arrayValue ?? []).filter { $0.objectValue?["name"]?.stringValue != volumeName }
        var addedBootDisk = false
        if spec.imageOverride {
            if let index = volumes.firstIndex(where: { $0.objectValue?["containerDisk"] != nil }),
                var volume = volumes[index].objectValue, var disk = volume["containerDisk"]?.objectValue
            {
                disk["image"] = .string(spec.image)
                volume["containerDisk"] = .object(disk)
                volumes[index] = .object(volume)
            } else {
                // The catalog names the image this version boots; a template without a boot
                // disk gets one, as the default VM has.
                volumes.insert(.object(["name": "containervolume", "containerDisk": .object(["image": .string(spec.image)])]), at: 0)
                addedBootDisk = true
            }
        }
        volumes.append(.object([
            "name": .string(volumeName),
            "cloudInitNoCloud": .object(["secretRef": .object(["name": .string(spec.bootstrapSecretName)])]),
        ]))
        instanceSpec["volumes"] = .array(volumes)
        var domain = instanceSpec["domain"]?.objectValue ?? [:]
        var devices = domain["devices"]?.objectValue ?? [:]
        var disks = (devices["disks"]?.arrayValue ?? []).filter { $0.objectValue?["name"]?.stringValue != volumeName }
        if addedBootDisk { disks.insert(.object(["name": "containervolume", "disk": .object(["bus": "virtio"])]), at: 0) }
        disks.append(.object(["name": .string(volumeName), "disk": .object(["bus": "virtio"])]))
        devices["disks"] = .array(disks)
        domain["devices"] = .object(devices)
        instanceSpec["domain"] = .object(domain)
        if instanceSpec["evictionStrategy"] == nil { instanceSpec["evictionStrategy"] = "External" }
        instance["spec"] = .object(instanceSpec)
        vmSpec["template"] = .object(instance)
        var metadata = ObjectMeta(name: spec.name, namespace: spec.namespace)
        metadata.labels = (templateMetadata["labels"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
            .merging(labels, uniquingKeysWith: { _, ours in ours })
        let annotations = (templateMetadata["annotations"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
        if !annotations.isEmpty { metadata.annotations = annotations }
        return RawObject(
            apiVersion: ResourceType.virtualMachines.apiVersion, kind: "VirtualMachine", metadata: metadata,
            fields: ["spec": .object(vmSpec)])
    }

    /// Creates the VM once under `key` (a repeat finds its own VM and succeeds): from the
    /// machine template when the spec has one, else the default VM of ``virtualMachine(for:)``.
    ///
    /// - Throws: `KubernetesError` (`.notOurs` when another VM has the name).
    @discardableResult
    public func ensureVirtualMachine(_ spec: MachineSpec, key: IdempotencyKey) async throws -> CreateOutcome<
        VirtualMachine
    > {
        if let template = spec.template {
            return try await client.createOnce(
                .virtualMachines, Self.virtualMachine(fromTemplate: template, for: spec), key: key, as: VirtualMachine.self)
        }
        return try await client.createOnce(.virtualMachines, Self.virtualMachine(for: spec), key: key, as: VirtualMachine.self)
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
