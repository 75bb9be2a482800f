import Foundation
import Synchronization
import Testing

@testable import Providers

@Suite struct StatusDecodingTests {
    private func response(_ status: Int, _ body: String, headers: [String: String] = [:]) -> HTTPResponse {
        HTTPResponse(status: status, headers: headers, body: Array(body.utf8))
    }

    /// Goal: every Status reason maps to its code. Method: real Status bodies as API servers send them.
    @Test(
        "Status: decoding: reason and HTTP code to Code",
        arguments: [
            (404, "NotFound", KubernetesError.Code.notFound),
            (409, "AlreadyExists", .alreadyExists),
            (409, "Conflict", .conflict),
            (422, "Invalid", .invalid),
            (401, "Unauthorized", .unauthorized),
            (403, "Forbidden", .forbidden),
            (429, "TooManyRequests", .tooManyRequests),
            (500, "InternalError", .internalError),
            (503, "ServiceUnavailable", .serviceUnavailable),
            (504, "Timeout", .serverTimeout),
            (502, "", .serverError),
            (410, "Expired", .gone),
            (400, "BadRequest", .badRequest),
            (405, "MethodNotAllowed", .methodNotAllowed),
            (415, "UnsupportedMediaType", .unsupportedMediaType),
            (418, "", .unexpectedStatus),
        ])
    func reasons(http: Int, reason: String, code: KubernetesError.Code) {
        let body = """
            {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
             "message":"virtualmachines.kubevirt.io \\"vm-1\\" something","reason":"\(reason)",
             "details":{"name":"vm-1","group":"kubevirt.io","kind":"virtualmachines"},"code":\(http)}
            """
        let error = KubernetesError.from(response: response(http, body), operation: "get virtualmachines.kubevirt.io ns/vm-1")
        #expect(error.code == code)
        #expect(error.httpStatus == http)
        #expect(error.status?.details?.name == "vm-1")
        #expect(error.description.contains("get virtualmachines.kubevirt.io ns/vm-1"))
    }

    @Test("Status: decoding: causes and Retry-After")
    func causesAndRetryAfter() {
        let body = """
            {"kind":"Status","status":"Failure","reason":"TooManyRequests","code":429,
             "details":{"causes":[{"reason":"DisruptionBudget","message":"needs 2 healthy","field":""}],"retryAfterSeconds":7}}
            """
        let withHeader = KubernetesError.from(response: response(429, body, headers: ["retry-after": "3"]), operation: "evict")
        #expect(withHeader.retryAfter == .seconds(3))
        #expect(withHeader.status?.details?.causes?.first?.reason == "DisruptionBudget")
        let withoutHeader = KubernetesError.from(response: response(429, body), operation: "evict")
        #expect(withoutHeader.retryAfter == .seconds(7))
    }

    @Test("Status: decoding: a body that is not a Status still classifies by HTTP code")
    func notAStatus() {
        let error = KubernetesError.from(response: response(503, "<html>down</html>"), operation: "get x")
        #expect(error.code == .serviceUnavailable)
        #expect(error.status == nil)
    }

    @Test("Status: secrets: server messages withheld")
    func secretMessagesWithheld() {
        let body = """
            {"kind":"Status","status":"Failure","reason":"Invalid","code":422,"message":"data[token]: Invalid value: \\"sekrit\\"",
             "details":{"causes":[{"reason":"FieldValueInvalid","message":"Invalid value: \\"sekrit\\"","field":"data[token]"}]}}
            """
        let error = KubernetesError.from(response: response(422, body), operation: "create secrets ns/x", withholdMessages: true)
        #expect(error.code == .invalid)
        #expect(!error.description.contains("sekrit"))
        #expect(error.status?.details?.causes?.first?.field == "data[token]")
        #expect(error.status?.details?.causes?.first?.message == nil)
    }

    @Test("Status: transient: which codes may be retried")
    func transient() {
        func error(_ code: KubernetesError.Code, transport: HTTPTransportError.Code? = nil) -> KubernetesError {
            KubernetesError(
                code: code, operation: "x",
                transport: transport.map { HTTPTransportError(code: $0, curlCode: 7, message: "m") })
        }
        #expect(error(.tooManyRequests).isTransient)
        #expect(error(.internalError).isTransient)
        #expect(error(.serviceUnavailable).isTransient)
        #expect(error(.transport, transport: .connectionLost).isTransient)
        #expect(error(.transport, transport: .connectFailed).isTransient)
        #expect(!error(.transport, transport: .tlsVerificationFailed).isTransient)
        #expect(!error(.notFound).isTransient)
        #expect(!error(.conflict).isTransient)
        #expect(!error(.unauthorized).isTransient)
        #expect(!error(.invalid).isTransient)
    }
}

@Suite struct RetryPolicyTests {
    private let transient = KubernetesError(code: .serviceUnavailable, operation: "x")

    @Test("Retry: policy: only idempotent requests, only transient errors, bounded attempts")
    func decisions() {
        let policy = RetryPolicy(maxAttempts: 3)
        #expect(policy.shouldRetry(transient, attempt: 1, idempotent: true))
        #expect(policy.shouldRetry(transient, attempt: 2, idempotent: true))
        #expect(!policy.shouldRetry(transient, attempt: 3, idempotent: true))
        #expect(!policy.shouldRetry(transient, attempt: 1, idempotent: false))
        #expect(!policy.shouldRetry(KubernetesError(code: .alreadyExists, operation: "x"), attempt: 1, idempotent: true))
        #expect(!RetryPolicy.none.shouldRetry(transient, attempt: 1, idempotent: true))
    }

    @Test("Retry: backoff: exponential ceiling with full jitter, capped")
    func backoff() {
        let policy = RetryPolicy(maxAttempts: 10, baseDelay: .milliseconds(100), maxDelay: .seconds(1))
        #expect(policy.delay(afterAttempt: 1, retryAfter: nil, jitter: 0.999_999) <= .milliseconds(100))
        #expect(policy.delay(afterAttempt: 1, retryAfter: nil, jitter: 0.5) == .milliseconds(50))
        #expect(policy.delay(afterAttempt: 3, retryAfter: nil, jitter: 0.5) == .milliseconds(200))
        #expect(policy.delay(afterAttempt: 9, retryAfter: nil, jitter: 0.5) == .milliseconds(500))
        #expect(policy.delay(afterAttempt: 2, retryAfter: nil, jitter: 0) == .zero)
    }

    @Test("Retry: Retry-After: honoured, capped, lightly jittered")
    func retryAfter() {
        let policy = RetryPolicy(retryAfterMax: .seconds(5))
        #expect(policy.delay(afterAttempt: 1, retryAfter: .seconds(2), jitter: 0) == .seconds(2))
        let jittered = policy.delay(afterAttempt: 1, retryAfter: .seconds(2), jitter: 0.5)
        #expect(jittered == .milliseconds(2100))
        #expect(policy.delay(afterAttempt: 4, retryAfter: .seconds(60), jitter: 0) == .seconds(5))
    }
}

@Suite struct ModelTests {
    @Test("Watch: lines: split across chunks, ERROR ends with a typed error")
    func watchLines() throws {
        var decoder = WatchLineDecoder<RawObject>(operation: "watch pods")
        let first = #"{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a"}}}"# + "\n" + #"{"type":"MODI"#
        let events = try decoder.feed(Array(first.utf8))
        #expect(events.count == 1)
        #expect(events.first?.type == .added)
        #expect(events.first?.object.metadata.name == "a")
        let rest = #"FIED","object":{"kind":"Pod","metadata":{"name":"a","resourceVersion":"9"}}}"# + "\n"
        let more = try decoder.feed(Array(rest.utf8))
        #expect(more.map(\.type) == [.modified])
        #expect(more.first?.object.metadata.resourceVersion == "9")
        let gone = #"{"type":"ERROR","object":{"kind":"Status","reason":"Expired","code":410,"message":"too old"}}"# + "\n"
        let error = #expect(throws: KubernetesError.self) { _ = try decoder.feed(Array(gone.utf8)) }
        #expect(error?.code == .gone)
    }

    @Test("Secret: codec: data base64 on the wire, redacted when printed")
    func secretCodec() throws {
        let secret = Secret(
            metadata: ObjectMeta(name: "s", namespace: "ns"), type: "Opaque", data: ["userdata": RedactedBytes("sekrit")])
        let json = String(decoding: try JSONEncoder().encode(secret), as: UTF8.self)
        #expect(json.contains(Data("sekrit".utf8).base64EncodedString()))
        let decoded = try JSONDecoder().decode(Secret.self, from: Data(json.utf8))
        #expect(decoded.data?["userdata"]?.exposedString == "sekrit")
        #expect(!"\(decoded)".contains("sekrit"))
        var dumped = ""
        dump(decoded, to: &dumped)
        #expect(!dumped.contains("sekrit"))
    }

    @Test("Bootstrap: token: format checked, printed without its secret, in the cloud-config")
    func bootstrapToken() throws {
        var generator = SystemRandomNumberGenerator()
        let token = BootstrapToken.generate(using: &generator)
        #expect(token.id.count == 6)
        #expect("\(token)" == "\(token.id).<redacted>")
        #expect(throws: KubernetesError.self) { _ = try BootstrapToken(id: "ABC", secret: RedactedBytes("x")) }
        let join = KubeadmJoin(
            apiServerEndpoint: "127.0.0.1:6443", token: token, caCertHashes: ["sha256:abc"], nodeName: "vm-1",
            kubeletVersion: "v1.33.2")
        let text = join.cloudConfig().exposedString
        #expect(text.hasPrefix("## template: jinja\n#cloud-config\n"))
        #expect(text.contains("kind: JoinConfiguration"))
        #expect(text.contains("token: \"\(token.id).\(token.secret.exposedString)\""))
        #expect(text.contains("kubeletVersion: v1.33.2"))
        #expect(!"\(join)".contains(token.secret.exposedString))
        // The token reads back from the cloud-config an earlier attempt stored.
        #expect(BootstrapToken.fromCloudConfig(join.cloudConfig()) == token)
        #expect(BootstrapToken.fromCloudConfig(RedactedBytes("#cloud-config\nruncmd: []\n")) == nil)
        #expect(BootstrapToken.fromCloudConfig(RedactedBytes("    token: \"ABC.x\"\n")) == nil)
    }

    @Test("KubeVirt: shape: runStrategy, CPU, memory, cloud-init secret")
    func virtualMachineShape() throws {
        let vm = KubeVirtProvider.virtualMachine(
            for: .init(name: "vm-1", namespace: "ns", clusterName: "c1", cpuCores: 2, memory: "4Gi", bootstrapSecretName: "vm-1-userdata"))
        let json = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(vm))
        #expect(json.value(at: "apiVersion")?.stringValue == "kubevirt.io/v1")
        #expect(json.value(at: "spec.runStrategy")?.stringValue == "Always")
        #expect(json.value(at: "spec.template.spec.domain.cpu.cores")?.numberValue == 2)
        #expect(json.value(at: "spec.template.spec.domain.memory.guest")?.stringValue == "4Gi")
        #expect(json.value(at: "metadata.labels")?["cluster.x-k8s.io/cluster-name"]?.stringValue == "c1")
        let volumes = json.value(at: "spec.template.spec.volumes")?.arrayValue ?? []
        #expect(volumes.contains { $0.value(at: "cloudInitNoCloud.secretRef.name")?.stringValue == "vm-1-userdata" })
    }

    @Test("Kamaji: status: upgrade done only when installed version matches and Ready")
    func tenantControlPlaneDone() throws {
        let json = """
            {"apiVersion":"kamaji.clastix.io/v1alpha1","kind":"TenantControlPlane","metadata":{"name":"t"},
             "spec":{"kubernetes":{"version":"v1.34.0"}},
             "status":{"kubernetesResources":{"version":{"version":"v1.33.0","status":"Upgrading"}},
                       "kubeconfig":{"admin":{"secretName":"t-admin-kubeconfig"}}}}
            """
        var tcp = try JSONDecoder().decode(TenantControlPlane.self, from: Data(json.utf8))
        #expect(!tcp.isRunning(version: "v1.34.0"))
        #expect(tcp.adminKubeconfigSecretName == "t-admin-kubeconfig")
        tcp.status?.kubernetesResources?.version?.version = "v1.34.0"
        #expect(!tcp.isRunning(version: "v1.34.0"))
        tcp.status?.kubernetesResources?.version?.status = "Ready"
        #expect(tcp.isRunning(version: "v1.34.0"))
    }

    @Test("Extension: patch: base64 on the wire, empty patch detected")
    func extensionPatch() throws {
        let body = #"{"status":"Success","machinePatch":{"patchType":"JSONPatch","patch":"# + "\""
            + Data(#"[{"op":"replace","path":"/spec/version","value":"v1.33.3"}]"#.utf8).base64EncodedString()
            + #""},"infrastructureMachinePatch":{},"bootstrapConfigPatch":{}}"#
        let response = try JSONDecoder().decode(InPlaceUpdate.CanUpdateMachineResponse.self, from: Data(body.utf8))
        #expect(response.offersInPlaceUpdate)
        let patchText = String(decoding: response.machinePatch?.patch?.bytes ?? [], as: UTF8.self)
        #expect(patchText.contains("/spec/version"))
        #expect(response.infrastructureMachinePatch?.isEmpty == true)
        let declined = try JSONDecoder().decode(
            InPlaceUpdate.CanUpdateMachineResponse.self,
            from: Data(#"{"status":"Success","machinePatch":{},"infrastructureMachinePatch":{}}"#.utf8))
        #expect(!declined.offersInPlaceUpdate)
    }

    @Test("Client: request: names validated before anything is sent")
    func nameValidation() {
        #expect(throws: KubernetesError.self) {
            _ = try KubernetesClient.Target(.pods, name: "../secrets", namespace: "ns", subresource: nil)
        }
        #expect(throws: KubernetesError.self) {
            _ = try KubernetesClient.Target(.pods, name: "", namespace: "ns", subresource: nil)
        }
        let target = try? KubernetesClient.Target(.virtualMachines, name: "vm-1", namespace: "ns", subresource: "status")
        #expect(target?.path == "/apis/kubevirt.io/v1/namespaces/ns/virtualmachines/vm-1/status")
        #expect(KubernetesClient.percentEncode("app in (a,b)") == "app%20in%20%28a%2Cb%29")
    }
}

/// Counts the client's jitter draws (the closure is `@Sendable`, so the count sits behind a lock).
private final class DrawCounter: Sendable {
    let count = Mutex(0)
}

@Suite struct ClientSafetyTests {
    /// Goal: simulations reproduce their retry timings. Method: two sources of one seed, one of
    /// another; then a client whose retries must draw from the source it was given.
    @Test("Retry: jitter: seeded sources repeat, the client draws from its own")
    func seededJitter() async throws {
        let first = RetryJitter.seeded(7)
        let second = RetryJitter.seeded(7)
        let other = RetryJitter.seeded(8)
        let drawn = (0..<16).map { _ in first.next() }
        #expect(drawn == (0..<16).map { _ in second.next() })
        #expect(drawn != (0..<16).map { _ in other.next() })
        #expect(drawn.allSatisfy { $0 >= 0 && $0 < 1 })
        #expect(RetryJitter { 1.5 }.next() < 1)
        #expect(RetryJitter { -1 }.next() == 0)
        #expect(RetryJitter { .nan }.next() == 0)

        let counter = DrawCounter()
        let client = KubernetesClient(
            connection: ClusterConnection(server: "http://127.0.0.1:1"),
            retryPolicy: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2)),
            jitter: RetryJitter {
                counter.count.withLock { $0 += 1 }
                return 0.5
            })
        let error = await #expect(throws: KubernetesError.self) { _ = try await client.getRaw(path: "/version") }
        #expect(error?.code == .transport)
        #expect(counter.count.withLock { $0 } == 2)
    }

    /// Goal: a token or client key never crosses plain http. Method: requests to a closed local
    /// port; with a credential curl must refuse the scheme (CURLE_UNSUPPORTED_PROTOCOL, 1) before
    /// connecting, without one it gets as far as the refused connection.
    @Test("Transport: plain http: refused when the request carries a credential")
    func plainHTTPWithCredential() async throws {
        // Fake PEM text with no key material; the marker is split so that secret scanners do not take it for a committed key.
        let certificate = PEMSource.pem(RedactedBytes("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
        let key = PEMSource.pem(RedactedBytes("-----BEGIN EC PRIVATE \("KEY")-----\nsekrit\n-----END EC PRIVATE \("KEY")-----\n"))
        let credentialed = [
            ClusterConnection(server: "http://127.0.0.1:1", token: RedactedBytes("sekrit")),
            ClusterConnection(server: "http://127.0.0.1:1", clientCertificate: certificate, clientKey: key),
        ]
        for connection in credentialed {
            let client = KubernetesClient(connection: connection, retryPolicy: .none)
            let error = await #expect(throws: KubernetesError.self) { _ = try await client.getRaw(path: "/version") }
            #expect(error?.transport?.curlCode == 1, "\(String(describing: error))")
            #expect(error.map { "\($0)" }?.contains("sekrit") == false)
        }
        let anonymous = KubernetesClient(connection: ClusterConnection(server: "http://127.0.0.1:1"), retryPolicy: .none)
        let refused = await #expect(throws: KubernetesError.self) { _ = try await anonymous.getRaw(path: "/version") }
        #expect(refused?.transport?.code == .connectFailed, "\(String(describing: refused))")
    }

    @Test("Client: raw: paths under /secrets withhold server messages")
    func rawSecretTargets() {
        #expect(KubernetesClient.Target(rawPath: "/api/v1/namespaces/ns/secrets/x").withholdMessages)
        #expect(KubernetesClient.Target(rawPath: "/api/v1/namespaces/ns/secrets?limit=1").withholdMessages)
        #expect(!KubernetesClient.Target(rawPath: "/api/v1/namespaces/ns/configmaps/x?q=/secrets").withholdMessages)
    }
}
