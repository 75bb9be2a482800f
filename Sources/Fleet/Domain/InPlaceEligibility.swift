/// Whether a machine may move to a new Kubernetes version in place, before asking the
/// update extension (`CanUpdateMachineSet`), which still has the last word.
///
/// Reference §1 and §4: a kubelet **minor** upgrade in place is not supported upstream
/// (drain and replace instead), so only a newer patch of the same minor qualifies; an
/// `OnDelete` deployment never updates in place; nothing goes down.
public enum InPlaceEligibility {
    /// Why a version change may not happen in place. Stored format (raw values).
    public enum Refusal: String, Hashable, Sendable, Codable {
        case unchanged = "Unchanged"
        case downgrade = "Downgrade"
        case minorChange = "MinorChange"
        case onDeleteStrategy = "OnDeleteStrategy"
    }

    /// `nil` when moving from `current` to `desired` in place is allowed, else the reason it is not.
    public static func refusal(from current: KubernetesVersion, to desired: KubernetesVersion, strategy: RolloutStrategy) -> Refusal? {
        if case .onDelete = strategy { return .onDeleteStrategy }
        if desired == current { return .unchanged }
        if desired < current { return .downgrade }
        if desired.minorLine != current.minorLine { return .minorChange }
        return nil
    }

    /// A sentence for the workflow's recorded reason.
    public static func message(_ refusal: Refusal, from current: KubernetesVersion, to desired: KubernetesVersion) -> String {
        switch refusal {
        case .unchanged: "the machine already runs \(current)"
        case .downgrade: "\(desired) is older than \(current); Capstan never downgrades"
        case .minorChange: "\(current) → \(desired) changes the minor; kubelet minor upgrades are never done in place, the machine is replaced"
        case .onDeleteStrategy: "the OnDelete strategy never updates machines in place"
        }
    }

    /// Whether a declined or failed in-place update may fall back to replacing the machine:
    /// RollingUpdate replaces, OnDelete waits for someone to delete it.
    public static func allowsReplacementFallback(_ strategy: RolloutStrategy) -> Bool {
        if case .rollingUpdate = strategy { return true }
        return false
    }
}
