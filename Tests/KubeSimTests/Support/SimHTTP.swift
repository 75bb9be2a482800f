import Foundation
import KubeSimKit

/// One HTTP answer as curl saw it.
struct HTTPReply: Sendable {
    /// curl's exit code: 0, or e.g. 52 (empty reply: the server closed the connection), 60 (bad CA).
    var curlExit: Int32
    var status: Int
    var headers: [String: String]
    var body: String

    var json: JSON { (try? JSON.parse(body)) ?? .null }
    var reason: String? { json["reason"]?.stringValue }
}

/// A minimal HTTPS client for the tests: the system `curl`, trusting only kube-sim's CA.
/// (The project's own client lives in Providers and has its own tests against kube-sim.)
struct SimHTTP: Sendable {
    var baseURL: String
    /// Sent as a bearer token when not empty.
    var token: String
    var caPath: String
    /// A client certificate and key (PEM files) to present, as a workload cluster's admin.conf does.
    var clientCertificate: (certificatePath: String, keyPath: String)? = nil

    static let curl = ProcessRunner.which("curl") ?? "/usr/bin/curl"

    func request(
        _ method: String, _ path: String, body: String? = nil, contentType: String = "application/json",
        maxTimeSeconds: Int = 60
    ) async throws -> HTTPReply {
        let directory = try ProcessRunner.temporaryDirectory("curl")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var arguments = [
            "-sS", "--noproxy", "*", "--cacert", caPath, "-X", method,
            "-H", "Accept: application/json", "-D", "\(directory)/headers", "-o", "\(directory)/body",
            "-w", "%{http_code}", "--max-time", String(maxTimeSeconds),
        ]
        if !token.isEmpty { arguments += ["-H", "Authorization: Bearer \(token)"] }
        if let clientCertificate { arguments += ["--cert", clientCertificate.certificatePath, "--key", clientCertificate.keyPath] }
        if body != nil { arguments += ["-H", "Content-Type: \(contentType)", "--data-binary", "@-"] }
        arguments.append(baseURL + path)
        let result = try await ProcessRunner.run(SimHTTP.curl, arguments, stdin: body)
        var headers: [String: String] = [:]
        let headerText = (try? String(contentsOfFile: "\(directory)/headers", encoding: .utf8)) ?? ""
        for line in headerText.split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return HTTPReply(
            curlExit: result.status, status: Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0,
            headers: headers, body: (try? String(contentsOfFile: "\(directory)/body", encoding: .utf8)) ?? "")
    }

    func get(_ path: String) async throws -> HTTPReply { try await request("GET", path) }

    /// `host:port` of `baseURL` (a kubeadm join's `apiServerEndpoint`).
    var endpoint: String { baseURL.replacingOccurrences(of: "https://", with: "") }

    /// kubeadm's CA pin of the CA this client trusts, computed as kubeadm documents it (openssl:
    /// SHA-256 of the DER SubjectPublicKeyInfo), independently of kube-sim's own code.
    func caCertHash() async throws -> String {
        let result = try await ProcessRunner.run(
            "/bin/sh", ["-c", "openssl x509 -pubkey -noout -in \"$1\" | openssl pkey -pubin -outform der | sha256sum", "sh", caPath])
        guard result.status == 0, let hex = result.stdout.split(separator: " ").first, hex.count == 64 else {
            throw KubeSimTestError("openssl could not hash \(caPath): \(result.stderr)")
        }
        return "sha256:\(hex)"
    }
    func delete(_ path: String, body: String? = nil) async throws -> HTTPReply { try await request("DELETE", path, body: body) }
    func post(_ path: String, _ body: JSON) async throws -> HTTPReply { try await request("POST", path, body: body.serialized()) }
    func put(_ path: String, _ body: JSON) async throws -> HTTPReply { try await request("PUT", path, body: body.serialized()) }
    func mergePatch(_ path: String, _ body: JSON) async throws -> HTTPReply {
        try await request("PATCH", path, body: body.serialized(), contentType: "application/merge-patch+json")
    }
    func apply(_ path: String, yaml: String, manager: String = "test", force: Bool = false) async throws -> HTTPReply {
        let separator = path.contains("?") ? "&" : "?"
        return try await request(
            "PATCH", path + "\(separator)fieldManager=\(manager)\(force ? "&force=true" : "")", body: yaml,
            contentType: "application/apply-patch+yaml")
    }

    /// A client for a workload cluster, from its kubeconfig (server URL, its own CA and the
    /// admin's client certificate and key, written next to the kubeconfig as
    /// `<kubeconfig>.ca.crt`, `.client.crt`, `.client.key`).
    func workload(kubeconfigPath: String) throws -> SimHTTP {
        let text = try String(contentsOfFile: kubeconfigPath, encoding: .utf8)
        func value(_ key: String) -> String? {
            text.split(whereSeparator: \.isNewline).lazy.map { $0.trimmingCharacters(in: .whitespaces) }
                .first { $0.hasPrefix("\(key): ") }.map { String($0.dropFirst(key.count + 2)) }
        }
        func decoded(_ key: String) -> Data? { value(key).flatMap { Data(base64Encoded: $0) } }
        guard let server = value("server"), let caData = decoded("certificate-authority-data"),
            let certificate = decoded("client-certificate-data"), let key = decoded("client-key-data")
        else {
            throw KubeSimTestError(
                "kubeconfig \(kubeconfigPath) has no server, certificate-authority-data or client certificate and key")
        }
        let workloadCA = kubeconfigPath + ".ca.crt"
        try caData.write(to: URL(fileURLWithPath: workloadCA))
        let certificatePath = kubeconfigPath + ".client.crt"
        let keyPath = kubeconfigPath + ".client.key"
        try certificate.write(to: URL(fileURLWithPath: certificatePath))
        _ = FileManager.default.createFile(atPath: keyPath, contents: key, attributes: [.posixPermissions: 0o600])
        return SimHTTP(
            baseURL: server, token: "", caPath: workloadCA, clientCertificate: (certificatePath, keyPath))
    }

    /// Polls until `condition` holds for the JSON at `path`, up to `timeout`.
    func waitFor(
        _ path: String, timeout: Duration = .seconds(60), _ condition: @Sendable (HTTPReply) -> Bool
    ) async throws -> HTTPReply {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var last = try await get(path)
        while !condition(last) {
            guard clock.now < deadline else {
                throw KubeSimTestError("timed out waiting on \(path); last answer \(last.status): \(last.body.prefix(600))")
            }
            try await Task.sleep(for: .milliseconds(50))
            last = try await get(path)
        }
        return last
    }
}

struct KubeSimTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
