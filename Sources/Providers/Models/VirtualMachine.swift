/// KubeVirt `VirtualMachine` (`kubevirt.io/v1`), the fields CAPK sets and reads.
public struct VirtualMachine: KubernetesObject, Hashable {
    public var apiVersion: String? = "kubevirt.io/v1"
    public var kind: String? = "VirtualMachine"
    public var metadata: ObjectMeta
    public var spec: Spec?
    public var status: Status?

    public init(metadata: ObjectMeta, spec: Spec) {
        self.metadata = metadata
        self.spec = spec
    }

    /// `Always | Halted | Manual | RerunOnFailure | Once | WaitAsReceiver`.
    public enum RunStrategy: String, Codable, Sendable, Hashable {
        case always = "Always"
        case halted = "Halted"
        case manual = "Manual"
        case rerunOnFailure = "RerunOnFailure"
        case once = "Once"
        case waitAsReceiver = "WaitAsReceiver"
    }

    public struct Spec: Codable, Sendable, Hashable {
        public var runStrategy: RunStrategy?
        public var template: Template?
        public init(runStrategy: RunStrategy, template: Template) {
            self.runStrategy = runStrategy
            self.template = template
        }
    }

    public struct Template: Codable, Sendable, Hashable {
        public var metadata: ObjectMeta?
        public var spec: InstanceSpec?
        public init(metadata: ObjectMeta? = nil, spec: InstanceSpec) {
            self.metadata = metadata
            self.spec = spec
        }
    }

    public struct InstanceSpec: Codable, Sendable, Hashable {
        public var domain: Domain
        public var volumes: [Volume]?
        public var evictionStrategy: String?
        public init(domain: Domain, volumes: [Volume], evictionStrategy: String? = nil) {
            self.domain = domain
            self.volumes = volumes
            self.evictionStrategy = evictionStrategy
        }
    }

    public struct Domain: Codable, Sendable, Hashable {
        public var cpu: CPU?
        public var memory: Memory?
        public var devices: Devices
        public init(cpu: CPU, memory: Memory, devices: Devices) {
            self.cpu = cpu
            self.memory = memory
            self.devices = devices
        }
    }

    public struct CPU: Codable, Sendable, Hashable {
        public var cores: Int?
        public var sockets: Int?
        public var threads: Int?
        public var maxSockets: Int?
        public init(cores: Int, sockets: Int? = nil, threads: Int? = nil, maxSockets: Int? = nil) {
            self.cores = cores
            self.sockets = sockets
            self.threads = threads
            self.maxSockets = maxSockets
        }
    }

    public struct Memory: Codable, Sendable, Hashable {
        /// A quantity such as `4Gi`.
        public var guest: String?
        public var maxGuest: String?
        public init(guest: String, maxGuest: String? = nil) {
            self.guest = guest
            self.maxGuest = maxGuest
        }
    }

    public struct Devices: Codable, Sendable, Hashable {
        public var disks: [Disk]?
        public init(disks: [Disk]) { self.disks = disks }
    }

    public struct Disk: Codable, Sendable, Hashable {
        public struct Target: Codable, Sendable, Hashable {
            public var bus: String?
        }
        public var name: String
        public var disk: Target?
        public init(name: String, bus: String = "virtio") {
            self.name = name
            self.disk = Target(bus: bus)
        }
    }

    public struct Volume: Codable, Sendable, Hashable {
        public struct SecretReference: Codable, Sendable, Hashable {
            public var name: String
        }
        public struct CloudInit: Codable, Sendable, Hashable {
            public var secretRef: SecretReference?
            public var networkDataSecretRef: SecretReference?
        }
        public struct ContainerDisk: Codable, Sendable, Hashable {
            public var image: String
        }
        public var name: String
        public var cloudInitNoCloud: CloudInit?
        public var containerDisk: ContainerDisk?

        /// A NoCloud cloud-init volume whose user data is key `userdata` of Secret `secretName`.
        public static func cloudInit(name: String, secretName: String) -> Volume {
            Volume(name: name, cloudInitNoCloud: CloudInit(secretRef: SecretReference(name: secretName)))
        }

        /// A boot disk from a container image.
        public static func containerDisk(name: String, image: String) -> Volume {
            Volume(name: name, containerDisk: ContainerDisk(image: image))
        }
    }

    public struct Status: Codable, Sendable, Hashable {
        public var ready: Bool?
        public var created: Bool?
        /// Stopped, Provisioning, Starting, Running, Paused, Stopping, Terminating, CrashLoopBackOff, …
        public var printableStatus: String?
        public var conditions: [Condition]?
    }

    /// `status.ready` is true.
    public var isReady: Bool { status?.ready ?? false }
}
