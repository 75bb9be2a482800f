import Foundation
import KubeSimKit
import Providers
import Testing

/// The client authenticating with a client certificate from a kubeconfig, against kube-sim,
/// which checks it as kube-apiserver does (signed by the cluster's CA, CN the user).
@Suite struct ClientCertificateTests {
    private struct Review: Decodable {
        struct Status: Decodable {
            struct UserInfo: Decodable {
                var username: String
                var groups: [String]
            }
            var userInfo: UserInfo
        }
        var status: Status
    }

    private static func whoami(_ client: KubernetesClient) async throws -> Review.Status.UserInfo {
        let body = #"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#
        let response = try await client.send(
            method: "POST", path: "/apis/authentication.k8s.io/v1/selfsubjectreviews", body: Array(body.utf8),
            contentType: "application/json", idempotent: true)
        return try JSONDecoder().decode(Review.self, from: Data(response.body)).status.userInfo
    }

    /// Writes a kubeconfig for `server` whose user holds `certificate`/`key` as files next to it
    /// (relative paths, resolved against the kubeconfig's directory) and no token.
    private static func fileKubeconfig(
        in directory: TemporaryDirectory, name: String, server: String, caPEM: String,
        certificatePEM: String, keyPEM: String
    ) -> String {
        _ = directory.write("\(name).crt", certificatePEM)
        _ = directory.write("\(name).key", keyPEM)
        _ = directory.write("\(name)-ca.crt", caPEM)
        return directory.write(
            "\(name).kubeconfig",
            """
            apiVersion: v1
            kind: Config
            clusters:
            - name: c
              cluster:
                server: \(server)
                certificate-authority: \(name)-ca.crt
            users:
            - name: \(name)
              user:
                client-certificate: \(name).crt
                client-key: \(name).key
            contexts:
            - name: c
              context: {cluster: c, user: \(name)}
            current-context: c
            """)
    }

    /// Goal: the admin.conf Kamaji puts in the Secret (client-certificate-data/client-key-data,
    /// no token) authenticates as kubernetes-admin; a certificate given as files works as well.
    /// Fails without the transport's SSLCERT/SSLKEY options (kube-sim answers 401 to no certificate).
    @Test("Client: auth: client certificate from -data fields (Kamaji admin.conf) and from files")
    func clientCertificate() async throws {
        try await withKubeSim { sim, client in
            let kamaji = KamajiProvider(client: client)
            _ = try await kamaji.ensureControlPlane(
                name: "c1", namespace: "default", version: "v1.33.0", key: IdempotencyKey("c1/create-cp"))
            _ = try await eventually("control plane c1 Ready") {
                try await kamaji.controlPlane(name: "c1", namespace: "default")?.isRunning(version: "v1.33.0") == true
                    ? true : nil
            }
            let workload = try await kamaji.workloadClient(name: "c1", namespace: "default")
            #expect(workload.connection.token == nil)
            #expect(workload.connection.clientCertificate != nil)
            let admin = try await Self.whoami(workload)
            #expect(admin.username == "kubernetes-admin")
            #expect(admin.groups.contains("kubeadm:cluster-admins"))
            let system = try await workload.get(.namespaces, name: "kube-system", namespace: nil, as: RawObject.self)
            #expect(system.metadata.name == "kube-system")

            let directory = TemporaryDirectory()
            let issued = try sim.issueClientCertificate(user: "alice", groups: ["team-a", "team-b"])
            let path = Self.fileKubeconfig(
                in: directory, name: "alice", server: sim.url, caPEM: sim.caCertificatePEM,
                certificatePEM: issued.certificatePEM, keyPEM: issued.keyPEM)
            let alice = try KubernetesClient(kubeconfigPath: path, retryPolicy: .none)
            #expect(alice.connection.clientCertificate == .file(directory.path + "/alice.crt"))
            let user = try await Self.whoami(alice)
            #expect(user.username == "alice")
            #expect(user.groups == ["team-a", "team-b", "system:authenticated"])
        }
    }

    /// Goal: a certificate from another CA is refused with a typed 401 (the TLS handshake
    /// itself succeeds, as with kube-apiserver), and no part of the key is in the error.
    @Test("Client: auth: a client certificate from another CA is refused (401), key material not in the error")
    func otherCA() async throws {
        try await withKubeSim { sim, client in
            let kamaji = KamajiProvider(client: client)
            _ = try await kamaji.ensureControlPlane(
                name: "c1", namespace: "default", version: "v1.33.0", key: IdempotencyKey("c1/create-cp"))
            _ = try await eventually("control plane c1 Ready") {
                try await kamaji.controlPlane(name: "c1", namespace: "default")?.isRunning(version: "v1.33.0") == true
                    ? true : nil
            }
            let workload = try await kamaji.workloadClient(name: "c1", namespace: "default")
            // Signed by the management CA, presented to the workload cluster (whose CA differs).
            let issued = try sim.issueClientCertificate(user: "kubernetes-admin", groups: ["system:masters"])
            var connection = workload.connection
            connection.clientCertificate = .pem(RedactedBytes(issued.certificatePEM))
            connection.clientKey = .pem(RedactedBytes(issued.keyPEM))
            let foreign = KubernetesClient(connection: connection, retryPolicy: .none)
            let error = await #expect(throws: KubernetesError.self) {
                _ = try await foreign.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
            }
            #expect(error?.code == .unauthorized)
            let keyBody = issued.keyPEM.split(separator: "\n").filter { !$0.hasPrefix("-----") }
            #expect(!keyBody.isEmpty)
            for text in [error.map { "\($0)" } ?? "", "\(connection)", String(reflecting: connection)] {
                for line in keyBody { #expect(!text.contains(line), "key material in \(text)") }
            }
        }
    }
}
