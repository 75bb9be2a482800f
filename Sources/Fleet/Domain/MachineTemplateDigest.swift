// The digest of a MachineDeployment's machine template, as CAPI's `machine-template-hash`:
// machines whose digest differs from the deployment's current one are out of date and a
// rolling update replaces them, whatever else changed (version or not).
//
// What it covers: the referenced KubevirtMachineTemplate's `spec.template.spec` (the VM: cpu,
// memory, disks, containerDisk image...) and the KubeadmConfigTemplate's `spec.template.spec`
// (files, commands, join configuration), in their applied, upstream form. What it does not:
// the Kubernetes version, which the controller compares on its own, with the rule that never
// downgrades (after `capstan upgrade`, workers run above their MachineDeployment's version;
// a digest holding the version would see them as out of date and roll them back down), and
// the catalog's machine image, which follows the version. The MachineDeployment's own
// `spec.template.metadata` and drain settings do not roll machines in CAPI either.
//
// Stored format: the value is recorded on each VirtualMachine (label
// ``labelKey``) and in the fleet projection; the same template must always give the same
// digest, in every version of Capstan, or an upgrade of Capstan would roll every machine.
// Hence canonical JSON of the upstream shape (ManifestValue, sorted keys), not of any
// Capstan type.

/// The digest of a machine template.
public enum MachineTemplateDigest {
    /// The VirtualMachine label that carries the digest a machine was created from.
    public static let labelKey = "capstan.dev/machine-template-hash"

    /// The digest of the templates: 32 lowercase hex digits (the first 128 bits of SHA-256
    /// over canonical JSON of `{"bootstrap": …, "infrastructure": …}`, absent members
    /// omitted); fits a label value. Both nil (a deployment that references no template:
    /// Capstan's default VM and userdata) has a digest too.
    public static func of(infrastructure: ManifestValue?, bootstrap: ManifestValue?) -> String {
        var members: [String: ManifestValue] = [:]
        if let infrastructure { members["infrastructure"] = infrastructure }
        if let bootstrap { members["bootstrap"] = bootstrap }
        return sha256(ManifestValue.object(members).canonicalJSON).prefix(16).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    /// The digest of a deployment that references no template.
    public static let none = of(infrastructure: nil, bootstrap: nil)

    /// Whether a machine created from `machine` is out of date against `current`. A machine
    /// with no recorded digest (created before Capstan recorded them, or by a workflow
    /// started before) counts as current: an upgrade of Capstan must not roll every machine.
    public static func isOutOfDate(_ machine: String?, current: String?) -> Bool {
        guard let machine, let current else { return false }
        return machine != current
    }
}
