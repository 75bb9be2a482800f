import Crypto
import Foundation
import SwiftASN1
import X509

/// A kubeadm bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`: a public id and a secret half.
///
/// Printing it shows the id only (`abcdef.<redacted>`).
public struct BootstrapToken: Sendable, Hashable, CustomStringConvertible, CustomReflectable {
    /// The public half: `token-id` in the token Secret, and its name `bootstrap-token-<id>`.
    public let id: String
    /// The secret half.
    public let secret: RedactedBytes

    /// - Throws: `KubernetesError` `.invalidRequest` unless `id` is 6 and `secret` 16 of `[a-z0-9]`.
    public init(id: String, secret: RedactedBytes) throws {
        guard Self.isValid(id, count: 6), Self.isValid(secret.exposedString, count: 16) else {
            throw KubernetesError(
                code: .invalidRequest, operation: "bootstrap token",
                detail: "a bootstrap token is 6 then 16 characters of [a-z0-9]")
        }
        self.id = id
        self.secret = secret
    }

    /// A fresh token from `generator` (the system generator in production).
    public static func generate<Generator: RandomNumberGenerator>(using generator: inout Generator) -> BootstrapToken {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        func draw(_ count: Int) -> [UInt8] {
            (0..<count).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] }
        }
        // The alphabet makes both halves valid by construction.
        return try! BootstrapToken(id: String(decoding: draw(6), as: UTF8.self), secret: RedactedBytes(draw(16)))
    }

    /// The token a `KubeadmJoin.cloudConfig()` holds (its `token: "id.secret"` line), or nil.
    ///
    /// Reads back the token of a userdata Secret an earlier attempt wrote.
    public static func fromCloudConfig(_ cloudConfig: RedactedBytes) -> BootstrapToken? {
        for line in cloudConfig.exposedString.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("token: \""), trimmed.hasSuffix("\""), trimmed.count > 9 else { continue }
            let value = trimmed.dropFirst("token: \"".count).dropLast()
            let halves = value.split(separator: ".", omittingEmptySubsequences: false)
            guard halves.count == 2 else { return nil }
            return try? BootstrapToken(id: String(halves[0]), secret: RedactedBytes(String(halves[1])))
        }
        return nil
    }

    /// `id.secret`, for the one place it goes on the wire.
    var exposedValue: String { "\(id).\(secret.exposedString)" }

    public var description: String { "\(id).<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: ["id": id], displayStyle: .struct) }

    private static func isValid(_ value: String, count: Int) -> Bool {
        value.utf8.count == count && value.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) }
    }
}

/// What a new node needs to `kubeadm join`: where the API server is, how to trust it, the token.
public struct KubeadmJoin: Sendable, Hashable {
    /// `host:port` of the tenant API server.
    public var apiServerEndpoint: String
    public var token: BootstrapToken
    /// `sha256:<hex>` pins of the cluster CA; empty means unsafe skip (simulations only).
    public var caCertHashes: [String]
    /// The Node name (the VM name, as CAPK requires).
    public var nodeName: String
    /// The kubelet to install, `v1.33.2`; must share the control plane's minor (kubeadm join).
    public var kubeletVersion: String
    /// What the machine's KubeadmConfigTemplate adds: files, commands, node registration.
    public var extras: KubeadmConfigExtras

    public init(
        apiServerEndpoint: String, token: BootstrapToken, caCertHashes: [String], nodeName: String,
        kubeletVersion: String, extras: KubeadmConfigExtras = KubeadmConfigExtras()
    ) {
        self.apiServerEndpoint = apiServerEndpoint
        self.token = token
        self.caCertHashes = caCertHashes
        self.nodeName = nodeName
        self.kubeletVersion = kubeletVersion
        self.extras = extras
    }

    /// cloud-init user data in CABPK's shape: the template's files, then
    /// `/run/kubeadm/kubeadm-join-config.yaml` (a `kubeadm.k8s.io/v1beta4` JoinConfiguration);
    /// runs the template's `preKubeadmCommands`, `kubeadm join --config`, its
    /// `postKubeadmCommands`, then writes the bootstrap sentinel. Holds the token, so it is
    /// returned redacted. Every value from a template is written as a double-quoted YAML
    /// scalar, so no content can change the document's structure.
    public func cloudConfig() -> RedactedBytes {
        let discovery: String
        if caCertHashes.isEmpty {
            discovery = "        unsafeSkipCAVerification: true"
        } else {
            discovery = "        caCertHashes:\n" + caCertHashes.map { "        - \"\($0)\"" }.joined(separator: "\n")
        }
        let quoted = KubeadmConfigExtras.yamlQuoted
        var extraArgs = ["      - name: provider-id\n        value: \"kubevirt://\(nodeName)\""]
        for argument in extras.kubeletExtraArgs where argument.name != "provider-id" {
            extraArgs.append("      - name: \(quoted(argument.name))\n        value: \(quoted(argument.value))")
        }
        var registration = extraArgs.joined(separator: "\n")
        if let taints = extras.taints {
            if taints.isEmpty {
                registration += "\n      taints: []"
            } else {
                registration += "\n      taints:"
                for taint in taints {
                    registration += "\n      - key: \(quoted(taint.key))\n        effect: \(quoted(taint.effect))"
                    if let value = taint.value { registration += "\n        value: \(quoted(value))" }
                }
            }
        }
        var files = ""
        for file in extras.files {
            files += "- path: \(quoted(file.path))\n"
            if let owner = file.owner { files += "  owner: \(quoted(owner))\n" }
            if let permissions = file.permissions { files += "  permissions: \(quoted(permissions))\n" }
            if let encoding = file.encoding { files += "  encoding: \(quoted(encoding))\n" }
            if file.append { files += "  append: true\n" }
            files += "  content: \(quoted(file.content ?? ""))\n"
        }
        let before = extras.preKubeadmCommands.map { "- \(quoted($0))\n" }.joined()
        let after = extras.postKubeadmCommands.map { "- \(quoted($0))\n" }.joined()
        let text = """
            ## template: jinja
            #cloud-config
            write_files:
            \(files)- path: /run/kubeadm/kubeadm-join-config.yaml
              owner: root:root
              permissions: '0640'
              content: |
                apiVersion: kubeadm.k8s.io/v1beta4
                kind: JoinConfiguration
                discovery:
                  bootstrapToken:
                    apiServerEndpoint: "\(apiServerEndpoint)"
                    token: "\(token.exposedValue)"
            \(discovery)
                nodeRegistration:
                  name: "\(nodeName)"
                  kubeletExtraArgs:
            \(registration)
            - path: /etc/capstan/node.yaml
              owner: root:root
              permissions: '0644'
              content: |
                kubeletVersion: \(kubeletVersion)
            runcmd:
            \(before)- kubeadm join --config /run/kubeadm/kubeadm-join-config.yaml
            \(after)- mkdir -p /run/cluster-api && echo success > /run/cluster-api/bootstrap-success.complete

            """
        return RedactedBytes(text)
    }
}

/// What a KubeadmConfigTemplate (`spec.template.spec`) adds to a worker's cloud-init, as CABPK
/// renders it: files written before the join, commands before and after it, and the
/// JoinConfiguration's `nodeRegistration` kubelet arguments and taints. Discovery (endpoint,
/// token, CA pins) is always Capstan's own, as CABPK's is.
public struct KubeadmConfigExtras: Codable, Sendable, Hashable {
    public struct File: Codable, Sendable, Hashable {
        public var path: String
        public var owner: String?
        public var permissions: String?
        /// cloud-init's `encoding` (`base64`, `gzip`, `gzip+base64`), passed through.
        public var encoding: String?
        public var append: Bool
        /// The content; nil while it still has to be read from ``contentFrom``.
        public var content: String?
        /// `contentFrom.secret`: read from this Secret (in the machine's namespace) at bootstrap.
        public var contentFrom: SecretKeyReference?

        public init(
            path: String, owner: String? = nil, permissions: String? = nil, encoding: String? = nil,
            append: Bool = false, content: String? = nil, contentFrom: SecretKeyReference? = nil
        ) {
            self.path = path
            self.owner = owner
            self.permissions = permissions
            self.encoding = encoding
            self.append = append
            self.content = content
            self.contentFrom = contentFrom
        }
    }

    public struct SecretKeyReference: Codable, Sendable, Hashable {
        public var name: String
        public var key: String
        public init(name: String, key: String) {
            self.name = name
            self.key = key
        }
    }

    public struct Argument: Codable, Sendable, Hashable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public struct Taint: Codable, Sendable, Hashable {
        public var key: String
        public var value: String?
        public var effect: String
        public init(key: String, value: String? = nil, effect: String) {
            self.key = key
            self.value = value
            self.effect = effect
        }
    }

    public var files: [File]
    public var preKubeadmCommands: [String]
    public var postKubeadmCommands: [String]
    /// In order (v1beta2 lists them; a v1beta1 map arrives sorted by name).
    public var kubeletExtraArgs: [Argument]
    /// nil leaves kubeadm's default; `[]` registers the Node with no taints.
    public var taints: [Taint]?

    public init(
        files: [File] = [], preKubeadmCommands: [String] = [], postKubeadmCommands: [String] = [],
        kubeletExtraArgs: [Argument] = [], taints: [Taint]? = nil
    ) {
        self.files = files
        self.preKubeadmCommands = preKubeadmCommands
        self.postKubeadmCommands = postKubeadmCommands
        self.kubeletExtraArgs = kubeletExtraArgs
        self.taints = taints
    }

    /// `text` as a double-quoted YAML scalar (a JSON string literal is one: YAML 1.2 reads
    /// JSON's escapes), on one line whatever it holds.
    static func yamlQuoted(_ text: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        // Encoding a String cannot fail.
        return String(decoding: (try? encoder.encode(text)) ?? Data("\"\"".utf8), as: UTF8.self)
    }
}

extension KubeadmJoin {
    /// kubeadm's pins (`discovery.bootstrapToken.caCertHashes`) of every certificate in a PEM
    /// CA bundle: `sha256:<hex>` of each certificate's DER SubjectPublicKeyInfo, as
    /// `kubeadm token create --print-join-command` computes them.
    ///
    /// - Throws: `KubernetesError` `.invalidRequest` when the text holds no certificate or one
    ///   that does not parse (`source` names where it came from).
    public static func caCertHashes(pem: String, source: String) throws -> [String] {
        let blocks: [PEMDocument]
        do {
            blocks = try PEMDocument.parseMultiple(pemString: pem).filter { $0.discriminator == "CERTIFICATE" }
        } catch {
            throw KubernetesError(
                code: .invalidRequest, operation: "CA pin", detail: "\(source): not PEM certificates: \(error)")
        }
        guard !blocks.isEmpty else {
            throw KubernetesError(code: .invalidRequest, operation: "CA pin", detail: "\(source): no CERTIFICATE block")
        }
        return try blocks.map { block in
            do {
                let certificate = try Certificate(derEncoded: block.derBytes)
                var serializer = DER.Serializer()
                try serializer.serialize(certificate.publicKey)
                let digest = SHA256.hash(data: serializer.serializedBytes)
                return "sha256:" + digest.map { String(format: "%02x", $0) }.joined()
            } catch {
                throw KubernetesError(
                    code: .invalidRequest, operation: "CA pin", detail: "\(source): a certificate does not parse: \(error)")
            }
        }
    }

    /// The pins of the CA a connection trusts (its kubeconfig's `certificate-authority(-data)`);
    /// empty when it names none (system trust: no pin can be derived, the join skips CA checks).
    ///
    /// - Throws: `KubernetesError` `.invalidRequest` when the CA cannot be read or parsed.
    public static func caCertHashes(trustedBy connection: ClusterConnection) throws -> [String] {
        switch connection.certificateAuthority {
        case nil:
            return []
        case .pem(let bytes):
            return try caCertHashes(pem: bytes.exposedString, source: "the kubeconfig's certificate-authority-data")
        case .file(let path):
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw KubernetesError(code: .invalidRequest, operation: "CA pin", detail: "\(path): cannot be read")
            }
            return try caCertHashes(pem: text, source: path)
        }
    }
}

extension KubernetesClient {
    /// Creates, once, the Secret a VM's cloud-init volume reads: key `userdata`, type
    /// `cluster.x-k8s.io/secret` (CAPK's `<dataSecretName>-userdata`).
    ///
    /// - Returns: whether this call created it. The token never appears in the result or a log.
    @discardableResult
    public func ensureBootstrapSecret(
        name: String, namespace: String, join: KubeadmJoin, clusterName: String, key: IdempotencyKey
    ) async throws -> CreateOutcome<Secret> {
        let secret = Secret(
            metadata: ObjectMeta(
                name: name, namespace: namespace, labels: ["cluster.x-k8s.io/cluster-name": clusterName]),
            type: "cluster.x-k8s.io/secret", data: ["userdata": join.cloudConfig()])
        return try await createOnce(.secrets, secret, key: key, as: Secret.self)
    }

    /// Creates, once and in a crash-safe order, both Secrets a machine needs to join: the userdata
    /// Secret here (see `ensureBootstrapSecret`), then the token Secret on `workload`.
    ///
    /// Tokens are random, so a retry after a crash between the two writes brings a new token. The
    /// userdata Secret is the one written first and the one the VM reads, so when it already exists
    /// as ours its token wins: it is read back and used for the token Secret, and `join.token` is
    /// dropped. A join therefore always finds the token its userdata names.
    ///
    /// - Parameters:
    ///   - join: the join data, with a fresh token (used only if the userdata Secret is created now).
    ///   - workload: the client of the tenant cluster whose `kube-system` gets the token Secret.
    ///   - key: idempotency key of the userdata Secret; the token Secret uses `key` + `/token`.
    /// - Returns: the token in effect (printing it shows the id only).
    /// - Throws: `KubernetesError`; `.notOurs` when an existing userdata Secret holds no readable token.
    @discardableResult
    public func ensureMachineBootstrap(
        userdataSecretName name: String, namespace: String, join: KubeadmJoin, clusterName: String,
        key: IdempotencyKey, workload: KubernetesClient, tokenExpiration: String
    ) async throws -> BootstrapToken {
        let userdata = try await ensureBootstrapSecret(
            name: name, namespace: namespace, join: join, clusterName: clusterName, key: key)
        let token: BootstrapToken
        switch userdata {
        case .created:
            token = join.token
        case .alreadyCreated(let existing):
            guard let stored = existing.data?["userdata"], let earlier = BootstrapToken.fromCloudConfig(stored) else {
                throw KubernetesError(
                    code: .notOurs, operation: "bootstrap secrets \(namespace)/\(name)",
                    detail: "the existing userdata Secret holds no readable bootstrap token")
            }
            token = earlier
            logger.debug(
                "kubernetes.bootstrap.token-reused",
                metadata: ["k8s.object": "secrets \(namespace)/\(name)"])
        }
        try await workload.ensureBootstrapTokenSecret(
            token, expiration: tokenExpiration, key: IdempotencyKey("\(key.rawValue)/token"))
        return token
    }

    /// Creates, once, the `bootstrap.kubernetes.io/token` Secret in the tenant's `kube-system`
    /// that lets `kubeadm join` authenticate with `token` (call on the workload cluster's client).
    @discardableResult
    public func ensureBootstrapTokenSecret(
        _ token: BootstrapToken, expiration: String, key: IdempotencyKey
    ) async throws -> CreateOutcome<Secret> {
        let secret = Secret(
            metadata: ObjectMeta(name: "bootstrap-token-\(token.id)", namespace: "kube-system"),
            type: "bootstrap.kubernetes.io/token",
            data: [
                "token-id": RedactedBytes(token.id), "token-secret": token.secret,
                "usage-bootstrap-authentication": RedactedBytes("true"),
                "usage-bootstrap-signing": RedactedBytes("true"),
                "auth-extra-groups": RedactedBytes("system:bootstrappers:kubeadm:default-node-token"),
                "expiration": RedactedBytes(expiration),
            ])
        return try await createOnce(.secrets, secret, key: key, as: Secret.self)
    }
}
