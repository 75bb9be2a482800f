import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// A certificate authority and serving certificate, made at every start: one pair for the
/// management cluster, one per workload cluster (Kamaji gives each tenant a CA of its own).
///
/// P-256 keys, made in process with swift-certificates (no openssl shell-out). The serving
/// certificate names `127.0.0.1` and `localhost`, the only addresses kube-sim listens on.
struct ServingCertificates: Sendable {
    let caCertificatePEM: String
    let serverCertificatePEM: String
    let serverKeyPEM: String
    /// `sha256:<hex>` of the CA's DER SubjectPublicKeyInfo: the pin kubeadm's
    /// `discovery.bootstrapToken.caCertHashes` carries (`kubeadm token create --print-join-command`).
    let caPublicKeyHash: String

    static func make(now: Date = Date()) throws -> ServingCertificates {
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            OrganizationName("kube-sim")
            CommonName("kube-sim CA")
        }
        let notBefore = now.addingTimeInterval(-3600)
        let notAfter = now.addingTimeInterval(365 * 86_400)
        let caCertificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(caKey.publicKey),
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(caKey.publicKey))
            },
            issuerPrivateKey: .init(caKey))

        let serverKey = P256.Signing.PrivateKey()
        let serverName = try DistinguishedName {
            OrganizationName("kube-sim")
            CommonName("kube-apiserver")
        }
        let serverCertificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(serverKey.publicKey),
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: caName, subject: serverName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([
                    .dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                ])
                AuthorityKeyIdentifier(keyIdentifier: SubjectKeyIdentifier(hash: .init(caKey.publicKey)).keyIdentifier)
            },
            issuerPrivateKey: .init(caKey))

        var spki = DER.Serializer()
        try spki.serialize(caCertificate.publicKey)
        let digest = SHA256.hash(data: spki.serializedBytes)
        return ServingCertificates(
            caCertificatePEM: try caCertificate.serializeAsPEM().pemString,
            serverCertificatePEM: try serverCertificate.serializeAsPEM().pemString,
            serverKeyPEM: serverKey.pemRepresentation,
            caPublicKeyHash: "sha256:" + digest.map { String(format: "%02x", $0) }.joined())
    }

    func tlsConfiguration() throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(serverCertificatePEM.utf8))
        let key = try NIOSSLPrivateKey(bytes: Array(serverKeyPEM.utf8), format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.applicationProtocols = ["http/1.1"]
        // At shutdown NIOSSL waits this long for each peer's close_notify (default 5 s); clients
        // that just drop the socket would otherwise hold up SIGTERM for seconds.
        configuration.shutdownTimeout = .milliseconds(200)
        return configuration
    }
}
