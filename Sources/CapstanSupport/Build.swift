/// What this build of Capstan is: one home for the version the CLI prints (`capstan --version`)
/// and the client sends in its `User-Agent`.
public enum CapstanBuild {
    /// The release version.
    public static let version = "0.1.0"

    /// `linux/amd64`, `linux/arm64`, `darwin/arm64`: Go's GOOS/GOARCH words, as kubectl's User-Agent has them.
    public static var platform: String {
        #if os(Linux)
            let os = "linux"
        #elseif os(macOS)
            let os = "darwin"
        #else
            let os = "unknown"
        #endif
        #if arch(x86_64)
            let arch = "amd64"
        #elseif arch(arm64)
            let arch = "arm64"
        #else
            let arch = "unknown"
        #endif
        return "\(os)/\(arch)"
    }
}
