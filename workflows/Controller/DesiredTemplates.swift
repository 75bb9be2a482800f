// A MachineDeployment's templates, read from the applied objects: the KubevirtMachineTemplate
// its `infrastructureRef` names (its `virtualMachineTemplate` is the VM, kept whole, as CAPK
// creates it) and the KubeadmConfigTemplate its bootstrap `configRef` names (files, commands
// and node registration, as CABPK renders them into cloud-init).
public import Fleet
public import Providers

extension Activities.MachineTemplate {
    /// The templates `deployment` references among `objects` (its namespace's applied
    /// objects); nil when it references neither (the default VM and userdata).
    static func resolve(
        _ deployment: DesiredSpec.MachineDeployment, namespace: String, objects: [ObjectKey: DesiredObject]
    ) -> Activities.MachineTemplate? {
        func object(_ ref: ObjectReference?) -> DesiredObject? {
            guard let ref else { return nil }
            return objects[ObjectKey(kind: ref.kind, namespace: namespace, name: ref.name)]
        }
        let infrastructure = object(deployment.infrastructureRef).flatMap { template -> ManifestValue? in
            guard template.key.kind == "KubevirtMachineTemplate" else { return nil }
            return template.object.value(at: "spec.template.spec")
        }
        let bootstrapSpec = object(deployment.bootstrapConfigRef).flatMap { template -> ManifestValue? in
            guard template.key.kind == "KubeadmConfigTemplate" else { return nil }
            return template.object.value(at: "spec.template.spec")
        }
        let virtualMachine = infrastructure?["virtualMachineTemplate"].map(JSONValue.init(manifest:))
        let bootstrap = bootstrapSpec.map(KubeadmConfigExtras.init(kubeadmConfigSpec:))
        guard virtualMachine != nil || bootstrap != nil else { return nil }
        return Activities.MachineTemplate(
            virtualMachine: virtualMachine, bootstrap: bootstrap,
            digest: MachineTemplateDigest.of(infrastructure: infrastructure, bootstrap: bootstrapSpec))
    }
}

extension JSONValue {
    /// The same document (integers as numbers).
    public init(manifest value: ManifestValue) {
        switch value {
        case .null: self = .null
        case .bool(let flag): self = .bool(flag)
        case .integer(let number): self = .number(Double(number))
        case .number(let number): self = .number(number)
        case .string(let text): self = .string(text)
        case .array(let items): self = .array(items.map(JSONValue.init(manifest:)))
        case .object(let members): self = .object(members.mapValues(JSONValue.init(manifest:)))
        }
    }
}

extension KubeadmConfigExtras {
    /// What CABPK renders from a KubeadmConfigSpec for a joining worker: `files`,
    /// `preKubeadmCommands`, `postKubeadmCommands`, and `joinConfiguration.nodeRegistration`'s
    /// `kubeletExtraArgs` (a map in v1beta1, sorted by name; a list of name/value in v1beta2)
    /// and `taints`. `apply` validated the shapes against the upstream schema.
    public init(kubeadmConfigSpec spec: ManifestValue) {
        let files: [File] = (spec["files"]?.arrayValue ?? []).compactMap { item in
            guard let path = item["path"]?.stringValue else { return nil }
            let secret = item["contentFrom"]?["secret"]
            let source = secret.flatMap { secret -> SecretKeyReference? in
                guard let name = secret["name"]?.stringValue, let key = secret["key"]?.stringValue else { return nil }
                return SecretKeyReference(name: name, key: key)
            }
            return File(
                path: path, owner: item["owner"]?.stringValue, permissions: item["permissions"]?.stringValue,
                encoding: item["encoding"]?.stringValue, append: item["append"]?.boolValue ?? false,
                content: source == nil ? (item["content"]?.stringValue ?? "") : nil, contentFrom: source)
        }
        let registration = spec["joinConfiguration"]?["nodeRegistration"]
        var arguments: [Argument] = []
        switch registration?["kubeletExtraArgs"] {
        case .object(let members)?:
            arguments = members.sorted { $0.key < $1.key }.compactMap { name, value in
                value.stringValue.map { Argument(name: name, value: $0) }
            }
        case .array(let items)?:
            arguments = items.compactMap { item in
                guard let name = item["name"]?.stringValue else { return nil }
                return Argument(name: name, value: item["value"]?.stringValue ?? "")
            }
        default:
            break
        }
        let taints = registration?["taints"]?.arrayValue.map { items in
            items.compactMap { item -> Taint? in
                guard let key = item["key"]?.stringValue, let effect = item["effect"]?.stringValue else { return nil }
                return Taint(key: key, value: item["value"]?.stringValue, effect: effect)
            }
        }
        self.init(
            files: files, preKubeadmCommands: (spec["preKubeadmCommands"]?.arrayValue ?? []).compactMap(\.stringValue),
            postKubeadmCommands: (spec["postKubeadmCommands"]?.arrayValue ?? []).compactMap(\.stringValue),
            kubeletExtraArgs: arguments, taints: taints)
    }
}
