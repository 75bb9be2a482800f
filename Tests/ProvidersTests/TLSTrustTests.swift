import Foundation
import KubeSimKit
import Providers
import Testing

/// Makes the system trust one CA certificate for the length of `body`, the way OpenSSL's CA
/// directory (`/etc/ssl/certs`, libcurl's built-in CAPATH on Debian) is looked up: a
/// `<subject hash>.<n>` link to the certificate. Only that link is added and it is removed after,
/// so the machine's trust store is left as it was (the bundle file is not rebuilt).
private func withSystemTrust<T>(caPEMPath: String, _ body: () async throws -> T) async throws -> T {
    let hash = try subjectHash(caPEMPath)
    let directory = "/etc/ssl/certs"
    let copy = TemporaryDirectory()
    let target = copy.write("trusted-test-ca.pem", try String(contentsOfFile: caPEMPath, encoding: .utf8))
    var link = ""
    for index in 0..<100 {
        let candidate = "\(directory)/\(hash).\(index)"
        if (try? FileManager.default.destinationOfSymbolicLink(atPath: candidate)) == nil,
            !FileManager.default.fileExists(atPath: candidate)
        {
            link = candidate
            break
        }
    }
    guard !link.isEmpty else { throw TrustTestError("no free \(hash).N name in \(directory)") }
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
    defer { try? FileManager.default.removeItem(atPath: link) }
    return try await body()
}

/// `openssl x509 -subject_hash`: the name OpenSSL looks a CA up by in a CA directory.
private func subjectHash(_ path: String) throws -> String {
    let hash = try openssl(["x509", "-subject_hash", "-noout", "-in", path])
    guard hash.count == 8 else { throw TrustTestError("openssl x509 -subject_hash: unexpected output for \(path)") }
    return hash
}

/// A throwaway self-signed CA certificate (its key stays in `directory`, removed with it).
///
/// Its subject differs from kube-sim's CA on purpose: OpenSSL looks an issuer up by subject
/// first among the loaded CAs, so a second kube-sim CA (same subject) is refused without the
/// CA directory ever being consulted, and would not show the flaw.
private func otherCA(in directory: TemporaryDirectory) throws -> String {
    let certificate = directory.path + "/other-ca.crt"
    _ = try openssl([
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
        directory.path + "/other-ca.key", "-out", certificate, "-subj", "/O=capstan-test/CN=another CA", "-days", "1",
    ])
    return certificate
}

private func openssl(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw TrustTestError("openssl \(arguments.first ?? "") failed") }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

private struct TrustTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Adding a CA to the system's trust needs root and openssl; elsewhere the test is skipped.
private let canChangeSystemTrust =
    getuid() == 0 && FileManager.default.isWritableFile(atPath: "/etc/ssl/certs")
    && FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")

/// A kubeconfig's CA is the only trust anchor, as for kubectl (issue 12: libcurl's built-in
/// CA directory stayed in place beside it, so any system-trusted certificate verified).
@Suite("Client: TLS trust", .serialized)
struct TLSTrustTests {
    /// Goal: with a kubeconfig CA, a server whose certificate chains to a system-trusted CA but
    /// not to that CA is refused, whether the CA is given as a file or as data.
    /// Method: the system trusts kube-sim's CA for the test; the kubeconfig names another CA
    /// (another subject, see `otherCA`). The control request with no CA at all must verify (the system trust is
    /// real), otherwise the refusals would prove nothing.
    /// Broken on purpose: without clearing CURLOPT_CAPATH (CurlTransfer.configureTLS), both
    /// pinned requests verify through /etc/ssl/certs and this test fails.
    @Test("Client: TLS: a kubeconfig CA is the only trust: a system-trusted server certificate is refused",
        .enabled(if: canChangeSystemTrust, "needs root, a writable /etc/ssl/certs and openssl"))
    func kubeconfigCAIsTheOnlyTrust() async throws {
        let scratch = TemporaryDirectory()
        let otherCAPath = try otherCA(in: scratch)
        try await withKubeSim { sim, client in
                try await withSystemTrust(caPEMPath: sim.caCertificatePath) {
                    let otherPEM = try String(contentsOfFile: otherCAPath, encoding: .utf8)
                    for authority in [PEMSource.file(otherCAPath), PEMSource.pem(RedactedBytes(otherPEM))] {
                        var connection = client.connection
                        connection.certificateAuthority = authority
                        let pinned = KubernetesClient(connection: connection, retryPolicy: .default)
                        let error = await #expect(throws: KubernetesError.self, "CA \(authority)") {
                            _ = try await pinned.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                        }
                        #expect(error?.transport?.code == .tlsVerificationFailed)
                    }
                    var connection = client.connection
                    connection.certificateAuthority = nil
                    let systemTrust = KubernetesClient(connection: connection, retryPolicy: .default)
                    let namespace = try await systemTrust.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                    #expect(namespace.metadata.name == "default")
                }
        }
    }
}
