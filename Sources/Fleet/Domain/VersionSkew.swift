/// The Kubernetes version skew policy, as the chained upgrade and machine creation need it.
///
/// Sources: kubernetes/website `releases/version-skew-policy.md` and the kubeadm skew section;
/// CAPI's MachineSet preflights `KubernetesVersionSkew` and `KubeadmVersionSkew`. Every rule is
/// about minor lines; patches of one minor may mix freely.
///
/// In an HA control plane whose API servers differ (mid-upgrade), pass the **oldest** API
/// server: the policy counts the kubelet window from it.
public enum VersionSkew {
    /// How many minors a kubelet may lag behind the API server: 3, or 2 when the kubelet is
    /// older than 1.25 or the API server older than 1.28 (KEP-3935 widened it from 1.28 on).
    public static func kubeletLagMax(apiServer: KubernetesMinor, kubelet: KubernetesMinor) -> Int {
        let widened = apiServer >= KubernetesMinor(major: 1, minor: 28) && kubelet >= KubernetesMinor(major: 1, minor: 25)
        return widened ? 3 : 2
    }

    /// Whether a kubelet at `kubelet` may talk to an API server at `apiServer`: never newer, and
    /// at most ``kubeletLagMax(apiServer:kubelet:)`` minors older.
    public static func allowsKubelet(_ kubelet: KubernetesMinor, apiServer: KubernetesMinor) -> Bool {
        guard kubelet.major == apiServer.major else { return false }
        let lag = apiServer.minors(since: kubelet)
        return lag >= 0 && lag <= kubeletLagMax(apiServer: apiServer, kubelet: kubelet)
    }

    /// Checks a kubelet against the API server.
    ///
    /// - Throws: ``DomainError`` with code `versionSkew` naming both versions and the window.
    public static func checkKubelet(_ kubelet: KubernetesVersion, apiServer: KubernetesVersion) throws {
        guard !allowsKubelet(kubelet.minorLine, apiServer: apiServer.minorLine) else { return }
        if kubelet.minorLine > apiServer.minorLine || kubelet.major != apiServer.major {
            throw DomainError(.versionSkew, "kubelet \(kubelet) is newer than the API server \(apiServer); a kubelet may never be newer")
        }
        let window = kubeletLagMax(apiServer: apiServer.minorLine, kubelet: kubelet.minorLine)
        throw DomainError(
            .versionSkew,
            "kubelet \(kubelet) is \(apiServer.minorLine.minors(since: kubelet.minorLine)) minors behind the API server "
                + "\(apiServer); at most \(window) are allowed")
    }

    /// Checks the version a new machine joins at: `kubeadm join` must be the control plane's
    /// minor (CAPI preflight `KubeadmVersionSkew`).
    ///
    /// - Throws: ``DomainError`` with code `versionSkew`.
    public static func checkJoin(_ machine: KubernetesVersion, controlPlane: KubernetesVersion) throws {
        guard machine.minorLine != controlPlane.minorLine else { return }
        throw DomainError(
            .versionSkew,
            "a machine at \(machine) cannot join a control plane at \(controlPlane): kubeadm join needs the control "
                + "plane's minor \(controlPlane.minorLine)")
    }

    /// Checks one control-plane step: never down, and at most one minor up (API servers may
    /// not skip a minor, and Kamaji refuses more than one).
    ///
    /// - Throws: ``DomainError`` with code `downgrade` or `versionSkew`.
    public static func checkControlPlaneStep(from source: KubernetesVersion, to target: KubernetesVersion) throws {
        if target < source {
            throw DomainError(.downgrade, "control plane \(source) cannot go down to \(target)")
        }
        guard source.major == target.major, target.minorLine.minors(since: source.minorLine) <= 1 else {
            throw DomainError(
                .versionSkew,
                "control plane \(source) cannot go to \(target) in one step: it moves at most one minor at a time")
        }
    }
}
