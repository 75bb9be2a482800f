import Foundation

/// A kubeconfig file for one cluster: its server URL, the CA that signed kube-sim's
/// certificate, and a credential: the management cluster's bearer token, or a workload
/// cluster's client certificate (Kamaji's admin.conf, like kubeadm's, carries one).
struct Kubeconfig: Sendable {
    enum Credential: Sendable {
        case token(String)
        case clientCertificate(ClientCertificate)
    }

    var clusterName: String
    var server: String
    var caCertificatePEM: String
    var credential: Credential
    var userName: String
    /// `tls-server-name`, when the serving certificate does not name 127.0.0.1.
    var tlsServerName: String? = nil

    private var userLines: String {
        switch credential {
        case .token(let token):
            return "    token: \(token)"
        case .clientCertificate(let certificate):
            return """
                    client-certificate-data: \(Data(certificate.certificatePEM.utf8).base64EncodedString())
                    client-key-data: \(Data(certificate.keyPEM.utf8).base64EncodedString())
                """
        }
    }

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
                certificate-authority-data: \(caData)\(tlsServerName.map { "\n    tls-server-name: \($0)" } ?? "")
            users:
            - name: \(userName)
              user:
            \(userLines)
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

    /// Writes the file readable by its owner only (it holds a credential): a temporary file is
    /// created with mode 0600, so the credential is never readable by others, then renamed into place.
    func write(to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = "\(path).tmp-\(getpid())"
        unlink(temporary)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw KubeconfigWriteError(path: temporary, operation: "create", code: errno) }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        do {
            try handle.write(contentsOf: Data(yaml.utf8))
            try handle.close()
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw KubeconfigWriteError(path: path, operation: "rename into place", code: code)
        }
    }
}

/// A kubeconfig file could not be written.
struct KubeconfigWriteError: Error, CustomStringConvertible {
    var path: String
    var operation: String
    var code: Int32
    var description: String { "kubeconfig \(path): \(operation) failed: \(String(cString: strerror(code)))" }
}
