import CapstanSupport

/// Who the client says it is to API servers.
public enum ClientIdentity {
    /// `capstan/0.1.0 (linux/amd64)`, in kubectl's shape (`kubectl/v1.33.0 (linux/amd64) kubernetes/…`).
    /// API servers take the part before the `/` as the default field manager of writes that name
    /// none (creates), so Capstan's own objects show `capstan` in `managedFields`.
    public static let userAgent = "capstan/\(CapstanBuild.version) (\(CapstanBuild.platform))"
}
