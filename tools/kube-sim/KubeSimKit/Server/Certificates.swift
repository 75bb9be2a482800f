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
/// The CA also signs client certificates (`issueClientCertificate`) and is the only one the
/// listener's client-certificate authentication trusts (`authenticate`), as kube-apiserver's
/// `--client-ca-file`.
struct ServingCertificates: Sendable {
    let caCertificate: Certificate
    /// Kept in memory only: it signs the client certificates kube-sim hands out.
    private let caKey: P256.Signing.PrivateKey
    let caCertificatePEM: String
    let serverCertificatePEM: String
    let serverKeyPEM: String
    /// `sha256:<hex>` of the CA's DER SubjectPublicKeyInfo: the pin kubeadm's
    /// `discovery.bootstrapToken.caCertHashes` carries (`kubeadm token create --print-join-command`).
    let caPublicKeyHash: String

    /// - Parameter serverNames: DNS names for the serving certificate instead of `localhost` and `127.0.0.1`.
    static func make(now: Date = Date(), serverNames: [String]? = nil) throws -> ServingCertificates {
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
                SubjectAlternativeNames(
                    serverNames.map { $0.map { .dnsName($0) } }
                        ?? [.dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))])
                AuthorityKeyIdentifier(keyIdentifier: SubjectKeyIdentifier(hash: .init(caKey.publicKey)).keyIdentifier)
            },
            issuerPrivateKey: .init(caKey))

        var spki = DER.Serializer()
        try spki.serialize(caCertificate.publicKey)
        let digest = SHA256.hash(data: spki.serializedBytes)
        return ServingCertificates(
            caCertificate: caCertificate, caKey: caKey,
            caCertificatePEM: try caCertificate.serializeAsPEM().pemString,
            serverCertificatePEM: try serverCertificate.serializeAsPEM().pemString,
            serverKeyPEM: serverKey.pemRepresentation,
            caPublicKeyHash: "sha256:" + digest.map { String(format: "%02x", $0) }.joined())
    }

    /// A client certificate for `user` in `groups`, signed by this CA: CN is the user name and
    /// each O a group, as kube-apiserver's x509 authenticator reads them (and as kubeadm writes
    /// admin.conf: `CN=kubernetes-admin, O=kubeadm:cluster-admins`).
    func issueClientCertificate(user: String, groups: [String], now: Date = Date()) throws -> ClientCertificate {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            for group in groups { OrganizationName(group) }
            CommonName(user)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(365 * 86_400),
            issuer: caCertificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.clientAuth])
                AuthorityKeyIdentifier(keyIdentifier: SubjectKeyIdentifier(hash: .init(caKey.publicKey)).keyIdentifier)
            },
            issuerPrivateKey: .init(caKey))
        return ClientCertificate(
            certificatePEM: try certificate.serializeAsPEM().pemString, keyPEM: key.pemRepresentation)
    }

    /// The user a client certificate (DER, as the TLS handshake delivered it) authenticates,
    /// or nil when this CA did not sign it, it is outside its validity, or it is not for client
    /// authentication. kube-apiserver checks the same (Go's `x509.Verify` with ExtKeyUsageClientAuth
    /// against the client CA) and answers 401 when no authenticator accepts the request.
    func authenticate(clientCertificateDER der: [UInt8], now: Date = Date()) -> AuthenticatedUser? {
        guard let certificate = try? Certificate(derEncoded: der) else { return nil }
        guard certificate.issuer == caCertificate.subject,
            caCertificate.publicKey.isValidSignature(certificate.signature, for: certificate),
            certificate.notValidBefore <= now, now <= certificate.notValidAfter
        else { return nil }
        if let usage = try? certificate.extensions.extendedKeyUsage,
            !usage.contains(.clientAuth) && !usage.contains(.any)
        {
            return nil
        }
        var user: String?
        var groups: [String] = []
        for relative in certificate.subject {
            for attribute in relative {
                guard let value = String(attribute.value) else { continue }
                if attribute.type == .RDNAttributeType.commonName { user = value }
                if attribute.type == .RDNAttributeType.organizationName { groups.append(value) }
            }
        }
        guard let user, !user.isEmpty else { return nil }
        return AuthenticatedUser(name: user, groups: groups)
    }

    func tlsConfiguration() throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(serverCertificatePEM.utf8))
        let key = try NIOSSLPrivateKey(bytes: Array(serverKeyPEM.utf8), format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.applicationProtocols = ["http/1.1"]
        // Ask for a client certificate but let the handshake through without one or with any:
        // as kube-apiserver (Go's tls.RequestClientCert), the x509 authenticator judges it per
        // request (`authenticate`), so a certificate from another CA gets a 401, not a TLS alert.
        // The listener's verification callback accepts every chain (see `Listener.start`).
        configuration.certificateVerification = .optionalVerification
        // At shutdown NIOSSL waits this long for each peer's close_notify (default 5 s); clients
        // that just drop the socket would otherwise hold up SIGTERM for seconds.
        configuration.shutdownTimeout = .milliseconds(200)
        return configuration
    }
}

/// A client certificate and its private key, PEM. The key is a credential: never logged.
struct ClientCertificate: Sendable {
    let certificatePEM: String
    let keyPEM: String
}

/// Who a request authenticated as: a token's user or a client certificate's CN and O.
struct AuthenticatedUser: Sendable, Equatable {
    var name: String
    var groups: [String]
}
