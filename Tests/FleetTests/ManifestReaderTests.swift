import Testing
@testable import Fleet

/// Goal: manifests are read against the upstream field tables, real upstream samples pass
/// unchanged, and each kind of bad input is refused with a message naming file, document,
/// field and line. Method: read fixtures and small broken documents.
@Suite struct ManifestReaderTests {
    @Test("Manifests: upstream: the Kamaji KubeVirt guide's manifests read unchanged")
    func kamajiGuide() throws {
        let text = try FleetFixtures.fixture("kamaji-docs-providers-kubevirt.yaml")
        let (manifests, errors) = ManifestReader.read(text, file: "guide.yaml")
        #expect(errors == [])
        #expect(manifests.map(\.reference) == [
            "Cluster/capi-quickstart", "KubevirtCluster/capi-quickstart", "KamajiControlPlane/capi-quickstart-kubevirt",
            "KubevirtMachineTemplate/capi-quickstart-md-0", "KubeadmConfigTemplate/capi-quickstart-md-0",
            "MachineDeployment/capi-quickstart-md-0",
        ])
        // The VM template is kept whole (break: mark it a table-checked subtree and this changes).
        let template = manifests[3].object.value(at: "spec.template.spec.virtualMachineTemplate.spec")
        #expect(template?["runStrategy"] != nil)
    }

    @Test("Manifests: upstream: the Kamaji provider's KamajiControlPlane sample reads unchanged, not-acted-on fields listed")
    func kamajiSample() throws {
        let text = try FleetFixtures.fixture("kamaji-sample-kamajicontrolplane.yaml")
        let (manifests, errors) = ManifestReader.read(text, file: "sample.yaml")
        #expect(errors == [])
        #expect(manifests.count == 1)
        let notActed = manifests.first?.notActedOn ?? []
        #expect(notActed.contains("spec.apiServer"))
        #expect(notActed.contains("spec.admissionControllers"))
        #expect(!notActed.contains("spec.version"))
        #expect(!notActed.contains { $0.hasPrefix("spec.apiServer.") })  // reported once, at its top
    }

    @Test("Manifests: upstream: CAPK's cluster template reads, except its KubeadmControlPlane which Capstan does not drive")
    func capkTemplate() throws {
        var text = try FleetFixtures.fixture("capk-cluster-template.yaml")
        // clusterctl generate's substitution, as a user would run it.
        for (name, value) in ["CLUSTER_NAME": "capk", "NAMESPACE": "default", "NODE_VM_IMAGE_TEMPLATE": "quay.io/capk/ubuntu:v1.33.4",
                              "CONTROL_PLANE_MACHINE_COUNT": "1", "WORKER_MACHINE_COUNT": "2", "KUBERNETES_VERSION": "v1.33.4",
                              "CRI_PATH": "/var/run/containerd/containerd.sock"] {
            text = text.replacingOccurrences(of: "${\(name)}", with: value)
        }
        let (manifests, errors) = ManifestReader.read(text, file: "capk.yaml")
        #expect(errors.map(\.code) == [.unknownKind])
        #expect(errors.first?.description.contains("KubeadmControlPlane") == true)
        #expect(Set(manifests.map(\.kind.kind)) == ["Cluster", "KubevirtCluster", "KubevirtMachineTemplate", "KubeadmConfigTemplate", "MachineDeployment"])
    }

    @Test("Manifests: fixture: Capstan's own example fleet reads with no errors")
    func ownFleet() {
        let (manifests, errors) = ManifestReader.read(FleetFixtures.catalog + "\n---\n" + FleetFixtures.fleet(), file: "fleet.yaml")
        #expect(errors == [])
        #expect(manifests.count == 8)
        #expect(manifests.allSatisfy { $0.namespace == "default" })
    }

    static let broken: [(name: String, yaml: String, code: ManifestError.Code, contains: String)] = [
        ("syntax", "apiVersion: v1\nkind: [Cluster\n", .syntax, "fleet.yaml:"),
        ("unknown field with suggestion", """
            apiVersion: cluster.x-k8s.io/v1beta2
            kind: MachineDeployment
            metadata: {name: md}
            spec:
              clusterName: prod
              replica: 3
            """, .unknownField, "fleet.yaml:6: document 1 (MachineDeployment/md): spec.replica: unknown field \"replica\" (did you mean \"replicas\"?)"),
        ("unknown kind", "apiVersion: cluster.x-k8s.io/v1beta2\nkind: Clustr\nmetadata: {name: a}\n", .unknownKind, "did you mean Cluster?"),
        ("unknown apiVersion", "apiVersion: cluster.x-k8s.io/v1alpha4\nkind: Cluster\nmetadata: {name: a}\n", .unknownAPIVersion,
         "use cluster.x-k8s.io/v1beta1 or cluster.x-k8s.io/v1beta2"),
        ("bad name", "apiVersion: cluster.x-k8s.io/v1beta2\nkind: Cluster\nmetadata: {name: Prod_1}\n", .invalidName,
         "metadata.name: \"Prod_1\" is not a DNS-1123 name"),
        ("wrong type", "apiVersion: controlplane.cluster.x-k8s.io/v1alpha2\nkind: KamajiControlPlane\nmetadata: {name: a}\nspec:\n  replicas: two\n",
         .invalidValue, "spec.replicas: must be an integer, got the string \"two\""),
        ("unquoted number for a string", "apiVersion: controlplane.cluster.x-k8s.io/v1alpha2\nkind: KamajiControlPlane\nmetadata: {name: a}\nspec:\n  version: 1.30\n",
         .invalidValue, "quote it"),
        ("unknown top-level field", "apiVersion: cluster.x-k8s.io/v1beta2\nkind: Cluster\nmetadata: {name: a}\nspecs: {}\n", .unknownField,
         "did you mean spec?"),
    ]

    @Test("Manifests: bad input: each case refused with its message", arguments: 0..<broken.count)
    func badInput(_ index: Int) {
        let (name, yaml, code, contains) = Self.broken[index]
        let (manifests, errors) = ManifestReader.read(yaml, file: "fleet.yaml")
        #expect(manifests.isEmpty, "\(name)")
        #expect(errors.map(\.code) == [code], "\(name): \(errors)")
        #expect(errors.first?.description.contains(contains) == true, "\(name): \(errors.first?.description ?? "no error")")
    }

    @Test("Manifests: documents: the index counts from 1 and the line is the field's")
    func documentIndex() {
        let yaml = FleetFixtures.catalog + "\n---\napiVersion: cluster.x-k8s.io/v1beta2\nkind: Cluster\nmetadata:\n  name: a\n  labelz: {}\n"
        let (_, errors) = ManifestReader.read(yaml, file: "f.yaml")
        #expect(errors.count == 1)
        #expect(errors.first?.document == 2)
        #expect(errors.first?.field == "metadata.labelz")
        #expect(errors.first?.line == 18)
    }

    @Test("Manifests: values: key order and YAML style do not change the stored object")
    func canonical() {
        let a = ManifestReader.read("apiVersion: capstan.dev/v1alpha1\nkind: VersionCatalog\nmetadata: {name: c}\nspec: {versions: [{version: v1.33.4}]}\n", file: "a").manifests
        let b = ManifestReader.read("kind: VersionCatalog\napiVersion: capstan.dev/v1alpha1\nspec:\n  versions:\n  - version: \"v1.33.4\"\nmetadata:\n  name: c\n", file: "b").manifests
        #expect(a.first?.object == b.first?.object)
        #expect(a.first?.object.canonicalJSON == b.first?.object.canonicalJSON)
    }
}
