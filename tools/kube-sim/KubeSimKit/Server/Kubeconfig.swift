import Foundation

/// A kubeconfig file for one cluster: its server URL, the CA that signed kube-sim's
/// certificate, and a bearer token.
struct Kubeconfig: Sendable {
    var clusterName: String
    var server: String
    var caCertificatePEM: String
    var token: String
    var userName: String

    /// The YAML text, in the shape `kubectl config view --raw` prints.
    var yaml: String {
        let caData = Data(caCertificatePEM.utf8).base64EncodedString()
        return """
            apiVersion: v1
            kind: Config
            clusters:
            - name: \(clusterName)
              cluster:
                server: \(server)
                certificate-authority-data: \(caData)
            users:
            - name: \(userName)
              user:
                token: \(token)
            contexts:
            - name: \(userName)@\(clusterName)
              context:
                cluster: \(clusterName)
                user: \(userName)
                namespace: default
            current-context: \(userName)@\(clusterName)
            preferences: {}

            """
    }

    /// Writes the file readable by its owner only (it holds a credential).
    func write(to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(yaml.utf8).write(to: url, options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
    }
}
