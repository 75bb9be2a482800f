import Foundation
import KubeSimKit
import Testing

/// Client-certificate authentication, as kube-apiserver does it: the handshake asks for a
/// certificate and takes any, then a certificate the cluster's CA signed authenticates its CN
/// as the user and each O as a group; one from another CA (or none) is a 401, not a TLS alert.
///
/// Broken on purpose once each: with the x509 check returning the CN without verifying the
/// signature, the other-CA cases answered 200; with `certificateVerification` left at its
/// server default (none: no CertificateRequest), no certificate ever arrived and the admin
/// certificate got 401.
@Suite("kube-sim client certificates")
struct ClientCertificateTests {
    @Test("Client certificates: a workload's admin.conf certificate authenticates; CN is the user, O the groups")
    func adminCertificate() async throws {
        try await SimFixture.with { fixture in
            let workload = try await fixture.readyControlPlane(name: "c1", version: "v1.33.0")
            #expect(workload.token.isEmpty, "admin.conf carries a client certificate, no token")
            let namespaces = try await workload.get("/api/v1/namespaces")
            #expect(namespaces.status == 200, "\(namespaces.body)")
            let review = try await workload.post(
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                ["apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"])
            #expect(review.status == 201, "\(review.body)")
            #expect(review.json[path: ["status", "userInfo", "username"]]?.stringValue == "kubernetes-admin")
            let groups = review.json[path: ["status", "userInfo", "groups"]]?.arrayValue?.compactMap(\.stringValue)
            #expect(groups == ["kubeadm:cluster-admins", "system:authenticated"])
        }
    }

    @Test("Client certificates: one from another CA, or none, is refused with 401 (the handshake still succeeds)")
    func otherCARefused() async throws {
        try await SimFixture.with { fixture in
            let first = try await fixture.readyControlPlane(name: "c1", version: "v1.33.0")
            let second = try await fixture.readyControlPlane(name: "c2", version: "v1.33.0")
            // c2's admin certificate presented to c1: same subject names, another CA (its signature fails).
            var crossed = first
            crossed.clientCertificate = second.clientCertificate
            let refused = try await crossed.get("/api/v1/namespaces")
            #expect(refused.curlExit == 0, "the TLS handshake must succeed; curl exit \(refused.curlExit)")
            #expect(refused.status == 401, "\(refused.body)")
            #expect(refused.reason == "Unauthorized")

            // A certificate the management CA signed: good on the management cluster, 401 on c1.
            let issued = try fixture.sim.issueClientCertificate(user: "alice", groups: ["team-a"])
            let certificatePath = fixture.directory + "/alice.crt"
            let keyPath = fixture.directory + "/alice.key"
            try Data(issued.certificatePEM.utf8).write(to: URL(fileURLWithPath: certificatePath))
            _ = FileManager.default.createFile(
                atPath: keyPath, contents: Data(issued.keyPEM.utf8), attributes: [.posixPermissions: 0o600])
            var management = fixture.http
            management.token = ""
            management.clientCertificate = (certificatePath, keyPath)
            let whoami = try await management.post(
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                ["apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"])
            #expect(whoami.status == 201, "\(whoami.body)")
            #expect(whoami.json[path: ["status", "userInfo", "username"]]?.stringValue == "alice")
            var aliceOnWorkload = first
            aliceOnWorkload.clientCertificate = (certificatePath, keyPath)
            #expect(try await aliceOnWorkload.get("/api/v1/namespaces").status == 401)

            var anonymous = first
            anonymous.clientCertificate = nil
            #expect(try await anonymous.get("/api/v1/namespaces").status == 401)
            var noCredentials = fixture.http
            noCredentials.token = ""
            #expect(try await noCredentials.get("/api/v1/namespaces").status == 401)
        }
    }
}
