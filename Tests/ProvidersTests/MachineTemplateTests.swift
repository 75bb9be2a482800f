import Foundation
import Providers
import Testing
import Yams

/// The VM made from a KubevirtMachineTemplate and the userdata made with a KubeadmConfigTemplate's
/// additions, read back as a consumer would (the YAML parsed, not grepped).
@Suite struct MachineTemplateTests {
    /// CAPK's own worker template (`templates/cluster-template.yaml`), as JSON.
    static let capkTemplate: JSONValue = [
        "metadata": ["namespace": "default", "labels": ["team": "storage"], "annotations": ["note": "from CAPK"]],
        "spec": [
            "runStrategy": "Always",
            "template": [
                "spec": [
                    "domain": [
                        "cpu": ["cores": 2],
                        "memory": ["guest": "4Gi"],
                        "devices": [
                            "networkInterfaceMultiqueue": true,
                            "disks": [["disk": ["bus": "virtio"], "name": "containervolume"]],
                        ],
                    ],
                    "evictionStrategy": "External",
                    "volumes": [["containerDisk": ["image": "quay.io/capk/ubuntu-2204-container-disk:v1.32.1"], "name": "containervolume"]],
                ]
            ],
        ],
    ]

    static func spec(template: JSONValue?, image: String? = nil) -> KubeVirtProvider.MachineSpec {
        var spec = KubeVirtProvider.MachineSpec(
            name: "c1-md-0-a1", namespace: "tenants", clusterName: "c1", cpuCores: 8, memory: "32Gi",
            bootstrapSecretName: "c1-md-0-a1-userdata", labels: ["cluster.x-k8s.io/deployment-name": "c1-md-0"],
            template: template)
        if let image {
            spec.image = image
            spec.imageOverride = true
        }
        return spec
    }

    @Test("KubeVirt: a CAPK machine template becomes the VM whole: its fields kept, named, labelled, cloud-init added")
    func templateKeptWhole() throws {
        let vm = KubeVirtProvider.virtualMachine(fromTemplate: Self.capkTemplate, for: Self.spec(template: Self.capkTemplate))
        #expect(vm.metadata.name == "c1-md-0-a1")
        #expect(vm.metadata.namespace == "tenants")  // the machine's namespace, not the template's
        #expect(vm.metadata.labels?["team"] == "storage")
        #expect(vm.metadata.labels?["cluster.x-k8s.io/cluster-name"] == "c1")
        #expect(vm.metadata.labels?["cluster.x-k8s.io/deployment-name"] == "c1-md-0")
        #expect(vm.metadata.labels?["kubevirt.io/vm"] == "c1-md-0-a1")
        #expect(vm.metadata.annotations?["note"] == "from CAPK")
        let json = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(vm))
        #expect(json["kind"] == "VirtualMachine")
        #expect(json.value(at: "spec.runStrategy") == "Always")
        let instance = try #require(json.value(at: "spec.template.spec"))
        // The template's sizes win over the spec's defaults; fields Capstan has no model of survive.
        #expect(instance.value(at: "domain.cpu.cores") == 2)
        #expect(instance.value(at: "domain.memory.guest") == "4Gi")
        #expect(instance.value(at: "domain.devices.networkInterfaceMultiqueue") == true)
        #expect(instance["evictionStrategy"] == "External")
        let disks = try #require(instance.value(at: "domain.devices.disks")?.arrayValue)
        #expect(disks.map { $0["name"]?.stringValue } == ["containervolume", "cloudinitvolume"])
        let volumes = try #require(instance["volumes"]?.arrayValue)
        #expect(volumes.map { $0["name"]?.stringValue } == ["containervolume", "cloudinitvolume"])
        // No catalog image: the template's image stays.
        #expect(volumes[0].value(at: "containerDisk.image") == "quay.io/capk/ubuntu-2204-container-disk:v1.32.1")
        #expect(volumes[1].value(at: "cloudInitNoCloud.secretRef.name") == "c1-md-0-a1-userdata")
        #expect(json.value(at: "spec.template.metadata.labels.cluster.x-k8s.io/cluster-name") == nil)  // dotted key: read below
        #expect(json.value(at: "spec.template.metadata.labels")?["cluster.x-k8s.io/cluster-name"] == "c1")
    }

    @Test("KubeVirt: the catalog's machineImage replaces the template's boot image, or adds a boot disk when it has none")
    func catalogImage() throws {
        let image = "registry.example/ubuntu-2404:v1.34.2"
        let vm = KubeVirtProvider.virtualMachine(fromTemplate: Self.capkTemplate, for: Self.spec(template: Self.capkTemplate, image: image))
        let json = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(vm))
        let volumes = try #require(json.value(at: "spec.template.spec.volumes")?.arrayValue)
        #expect(volumes.count == 2)
        #expect(volumes[0].value(at: "containerDisk.image") == .string(image))

        let bare: JSONValue = ["spec": ["template": ["spec": ["domain": ["cpu": ["cores": 4]]]]]]
        let added = KubeVirtProvider.virtualMachine(fromTemplate: bare, for: Self.spec(template: bare, image: image))
        let addedJSON = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(added))
        let instance = try #require(addedJSON.value(at: "spec.template.spec"))
        #expect(instance["volumes"]?.arrayValue?.map { $0["name"]?.stringValue } == ["containervolume", "cloudinitvolume"])
        #expect(instance["volumes"]?.arrayValue?.first?.value(at: "containerDisk.image") == .string(image))
        #expect(instance.value(at: "domain.devices.disks")?.arrayValue?.map { $0["name"]?.stringValue } == ["containervolume", "cloudinitvolume"])
        #expect(addedJSON.value(at: "spec.runStrategy") == "Always")  // defaulted, as CAPK does
        #expect(instance.value(at: "domain.cpu.cores") == 4)
    }

    @Test("KubeVirt: a template's own cloud-init volume of that name is replaced, never doubled; `running` is kept")
    func noDoubleCloudInit() throws {
        let template: JSONValue = [
            "spec": [
                "running": true,
                "template": ["spec": [
                    "domain": ["devices": ["disks": [["name": "cloudinitvolume"]]]],
                    "volumes": [["name": "cloudinitvolume", "cloudInitNoCloud": ["userData": "#cloud-config\n"]]],
                ]],
            ]
        ]
        let vm = KubeVirtProvider.virtualMachine(fromTemplate: template, for: Self.spec(template: template))
        let json = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(vm))
        #expect(json.value(at: "spec.runStrategy") == nil)
        #expect(json.value(at: "spec.running") == true)
        let volumes = try #require(json.value(at: "spec.template.spec.volumes")?.arrayValue)
        #expect(volumes.count == 1)
        #expect(volumes[0].value(at: "cloudInitNoCloud.secretRef.name") == "c1-md-0-a1-userdata")
        #expect(volumes[0].value(at: "cloudInitNoCloud.userData") == nil)
    }

    static let extras = KubeadmConfigExtras(
        files: [
            .init(path: "/etc/motd", owner: "root:root", permissions: "0644",
                  content: "line one\n  indented: \"quoted\" # not a comment\n- not a list\ntoken: \"zzzzzz.zzzzzzzzzzzzzzzz\"\n"),
            .init(path: "/etc/blob", encoding: "base64", append: true, content: "aGVsbG8="),
        ],
        preKubeadmCommands: ["echo 'before' > /tmp/before", "sysctl -w net.ipv4.ip_forward=1"],
        postKubeadmCommands: ["echo after: done"],
        kubeletExtraArgs: [.init(name: "node-labels", value: "pool=md-0,tier=a"), .init(name: "provider-id", value: "ignored")],
        taints: [.init(key: "dedicated", value: "gpu", effect: "NoSchedule")])

    static func join(_ extras: KubeadmConfigExtras) throws -> KubeadmJoin {
        KubeadmJoin(
            apiServerEndpoint: "10.0.0.1:6443",
            token: try BootstrapToken(id: "abcdef", secret: RedactedBytes("0123456789abcdef")),
            caCertHashes: ["sha256:00ff"], nodeName: "c1-md-0-a1", kubeletVersion: "v1.34.2", extras: extras)
    }

    @Test("Bootstrap: the KubeadmConfigTemplate's files, commands, kubelet args and taints reach the userdata as CABPK orders them")
    func extrasInUserdata() throws {
        let join = try Self.join(Self.extras)
        let userdata = join.cloudConfig().exposedString
        let document = try #require(try Yams.load(yaml: userdata) as? [String: Any])
        let files = try #require(document["write_files"] as? [[String: Any]])
        #expect(files.map { $0["path"] as? String } == ["/etc/motd", "/etc/blob", "/run/kubeadm/kubeadm-join-config.yaml", "/etc/capstan/node.yaml"])
        // Content arrives byte for byte, whatever YAML-looking text it holds.
        #expect(files[0]["content"] as? String == Self.extras.files[0].content)
        #expect(files[0]["owner"] as? String == "root:root")
        #expect(files[0]["permissions"] as? String == "0644")
        #expect(files[1]["encoding"] as? String == "base64")
        #expect(files[1]["append"] as? Bool == true)
        let commands = try #require(document["runcmd"] as? [String])
        #expect(commands == [
            "echo 'before' > /tmp/before", "sysctl -w net.ipv4.ip_forward=1",
            "kubeadm join --config /run/kubeadm/kubeadm-join-config.yaml", "echo after: done",
            "mkdir -p /run/cluster-api && echo success > /run/cluster-api/bootstrap-success.complete",
        ])
        let joinText = try #require(files[2]["content"] as? String)
        let joinConfig = try #require(try Yams.load(yaml: joinText) as? [String: Any])
        let registration = try #require(joinConfig["nodeRegistration"] as? [String: Any])
        let arguments = try #require(registration["kubeletExtraArgs"] as? [[String: String]])
        // Capstan's provider-id stays (CAPK's rule); the template's own is dropped.
        #expect(arguments == [["name": "provider-id", "value": "kubevirt://c1-md-0-a1"], ["name": "node-labels", "value": "pool=md-0,tier=a"]])
        let taints = try #require(registration["taints"] as? [[String: String]])
        #expect(taints == [["key": "dedicated", "value": "gpu", "effect": "NoSchedule"]])
        let discovery = try #require((joinConfig["discovery"] as? [String: Any])?["bootstrapToken"] as? [String: Any])
        #expect(discovery["apiServerEndpoint"] as? String == "10.0.0.1:6443")
        // A file holding a token-shaped line cannot pass for the join's token.
        #expect(BootstrapToken.fromCloudConfig(join.cloudConfig())?.id == "abcdef")
    }

    @Test("Bootstrap: no template additions give the plain join; an empty taint list registers no taints")
    func plainAndEmptyTaints() throws {
        let plain = try Self.join(KubeadmConfigExtras()).cloudConfig().exposedString
        let document = try #require(try Yams.load(yaml: plain) as? [String: Any])
        #expect((document["write_files"] as? [[String: Any]])?.count == 2)
        #expect((document["runcmd"] as? [String])?.count == 2)
        #expect(!plain.contains("taints"))
        let untainted = try Self.join(KubeadmConfigExtras(taints: [])).cloudConfig().exposedString
        let files = try #require((try Yams.load(yaml: untainted) as? [String: Any])?["write_files"] as? [[String: Any]])
        let joinText = try #require(files[0]["content"] as? String)
        let joinConfig = try #require(try Yams.load(yaml: joinText) as? [String: Any])
        #expect((joinConfig["nodeRegistration"] as? [String: Any])?["taints"] as? [Any] != nil)
        #expect(((joinConfig["nodeRegistration"] as? [String: Any])?["taints"] as? [Any])?.isEmpty == true)
    }
}
