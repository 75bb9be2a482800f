/// A Kubernetes release version (`v1.33.2`), compared numerically.
struct KubeVersion: Comparable, Hashable, Sendable, CustomStringConvertible {
    var major: Int
    var minor: Int
    var patch: Int

    /// Parses `v1.33.2` or `1.33.2` (a pre-release or build suffix is ignored).
    init?(_ text: String) {
        var core = Substring(text)
        if core.hasPrefix("v") { core = core.dropFirst() }
        if let cut = core.firstIndex(where: { $0 == "-" || $0 == "+" }) { core = core[..<cut] }
        let parts = core.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let major = Int(parts[0]), let minor = Int(parts[1]), let patch = Int(parts[2]),
            major >= 0, minor >= 0, patch >= 0
        else { return nil }
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    init(major: Int, minor: Int, patch: Int) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    var description: String { "v\(major).\(minor).\(patch)" }
    var minorText: String { "v\(major).\(minor)" }

    static func < (lhs: KubeVersion, rhs: KubeVersion) -> Bool {
        (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
    }

    /// Minors from `other` up to `self` (negative when `self` is older); majors count as 100.
    func minorsAbove(_ other: KubeVersion) -> Int {
        (major - other.major) * 100 + (minor - other.minor)
    }
}

/// The version-skew rules kube-sim enforces (see the reference, section 1).
enum SkewRules {
    /// Why a kubelet may not join a control plane with `kubeadm join`, or nil when it may:
    /// the kubelet must be at the control plane's minor, never a newer minor, never > 3 minors
    /// older. The skew policy speaks in minors: any patch of the control plane's minor joins
    /// (a v1.35.2 kubelet on a v1.35.0 control plane is fine).
    static func joinRefusal(kubelet: KubeVersion, controlPlane: KubeVersion) -> String? {
        if kubelet.minorsAbove(controlPlane) > 0 {
            return "kubelet \(kubelet) is newer than the API server \(controlPlane)"
        }
        if controlPlane.minorsAbove(kubelet) > 3 {
            return "kubelet \(kubelet) is more than 3 minors older than the API server \(controlPlane)"
        }
        if kubelet.major != controlPlane.major || kubelet.minor != controlPlane.minor {
            return "kubeadm join needs the control plane's minor \(controlPlane.minorText), the node has kubelet \(kubelet)"
        }
        return nil
    }

    /// Why a running kubelet is outside the supported window of its API server, or nil
    /// (compared by minor: a newer patch of the API server's minor is inside the window).
    static func runningSkewProblem(kubelet: KubeVersion, apiServer: KubeVersion) -> String? {
        if kubelet.minorsAbove(apiServer) > 0 { return "kubelet \(kubelet) is newer than the API server \(apiServer)" }
        if apiServer.minorsAbove(kubelet) > 3 {
            return "kubelet \(kubelet) is more than 3 minors older than the API server \(apiServer)"
        }
        return nil
    }
}
