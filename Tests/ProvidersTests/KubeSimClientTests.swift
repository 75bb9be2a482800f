import Foundation
import KubeSimKit
import Providers
import Testing

private func configMap(_ name: String, namespace: String = "default", labels: [String: String] = [:], data: [String: JSONValue] = [:])
    -> RawObject
{
    RawObject(
        apiVersion: "v1", kind: "ConfigMap", metadata: ObjectMeta(name: name, namespace: namespace, labels: labels),
        fields: ["data": .object(data)])
}

/// The client over real HTTPS against kube-sim: authentication, trust, verbs, errors, retries.
@Suite struct KubeSimClientTests {
    /// Goal: a wrong bearer token is refused with a typed 401, and the token is not in the error.
    @Test("Client: auth: wrong token refused")
    func wrongToken() async throws {
        try await withKubeSim { _, client in
            var connection = client.connection
            connection.token = RedactedBytes("not-the-token-zz9")
            let wrong = KubernetesClient(connection: connection, retryPolicy: .none)
            let error = await #expect(throws: KubernetesError.self) {
                _ = try await wrong.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
            }
            #expect(error?.code == .unauthorized)
            #expect(error?.description.contains("not-the-token-zz9") == false)
            // The right token works, so the refusal was about the token.
            let namespace = try await client.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
            #expect(namespace.metadata.name == "default")
        }
    }

    /// Goal: a server whose certificate does not chain to the configured CA is refused before anything is sent.
    /// Method: trust the system CA bundle (which does not hold kube-sim's fresh CA), then another kube-sim's CA.
    @Test("Client: TLS: wrong CA refused")
    func wrongCA() async throws {
        try await withKubeSim { _, client in
            try await withKubeSim { other, _ in
                var connection = client.connection
                connection.certificateAuthority = .file(other.caCertificatePath)
                let wrong = KubernetesClient(connection: connection, retryPolicy: .default)
                let error = await #expect(throws: KubernetesError.self) {
                    _ = try await wrong.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                }
                #expect(error?.code == .transport)
                #expect(error?.transport?.code == .tlsVerificationFailed)
            }
        }
    }

    @Test("Client: TLS: CA from a file and from data both verify")
    func caFileAndData() async throws {
        try await withKubeSim { sim, client in
            var connection = client.connection
            connection.certificateAuthority = .file(sim.caCertificatePath)
            let fromFile = KubernetesClient(connection: connection)
            let namespace = try await fromFile.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
            #expect(namespace.metadata.name == "default")
            guard case .pem = client.connection.certificateAuthority else {
                Issue.record("kube-sim's kubeconfig should carry certificate-authority-data")
                return
            }
        }
    }

    /// Goal: 429 and 5xx are retried for idempotent requests, honouring Retry-After, and not for a plain create.
    @Test("Client: retry: 429 and 5xx retried for GET, not for POST")
    func retries() async throws {
        try await withKubeSim { sim, client in
            let controls = SimControls(client: client)
            _ = try await client.create(.configMaps, configMap("cm-1"), as: RawObject.self)
            try await controls.setFaults(
                """
                {"retryAfterSeconds": 0, "scripted": [
                  {"kind": "tooManyRequests", "verb": "get", "resource": "configmaps", "count": 2},
                  {"kind": "error", "code": 503, "verb": "get", "resource": "configmaps", "count": 1},
                  {"kind": "error", "code": 500, "verb": "get", "resource": "configmaps", "count": 1}]}
                """)
            let fetched = try await client.get(.configMaps, name: "cm-1", as: RawObject.self)
            #expect(fetched.metadata.name == "cm-1")

            try await controls.setFaults(#"{"scripted": [{"kind": "error", "code": 500, "verb": "create", "resource": "configmaps", "count": 1}]}"#)
            let error = await #expect(throws: KubernetesError.self) {
                _ = try await client.create(.configMaps, configMap("cm-2"), as: RawObject.self)
            }
            #expect(error?.code == .internalError)
            // Not retried: the next create succeeds, so the fault fired exactly once and nothing was created.
            let created = try await client.create(.configMaps, configMap("cm-2"), as: RawObject.self)
            #expect(created.metadata.name == "cm-2")

            try await controls.setFaults(
                #"{"retryAfterSeconds": 0, "scripted": [{"kind": "tooManyRequests", "verb": "get", "resource": "configmaps", "count": 50}]}"#)
            let bounded = KubernetesClient(
                connection: client.connection, retryPolicy: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(5)))
            let exhausted = await #expect(throws: KubernetesError.self) {
                _ = try await bounded.get(.configMaps, name: "cm-1", as: RawObject.self)
            }
            #expect(exhausted?.code == .tooManyRequests)
            _ = sim
        }
    }

    /// Goal: a create whose response was dropped after the server applied it, repeated, lands once.
    /// Method: scripted dropResponse on the create; createOnce retries, gets 409, reads back its key.
    @Test("Client: idempotency: create after a dropped response applied once")
    func droppedResponseCreate() async throws {
        try await withKubeSim { _, client in
            let controls = SimControls(client: client)
            // A plain create is not repeated, neither by the client nor by curl: the caller sees the lost answer.
            _ = try await client.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)  // warm a connection
            try await controls.setFaults(
                #"{"scripted": [{"kind": "dropResponse", "verb": "create", "resource": "configmaps", "count": 1}]}"#)
            let lost = await #expect(throws: KubernetesError.self) {
                _ = try await client.create(.configMaps, configMap("cm-plain"), as: RawObject.self)
            }
            #expect(lost?.code == .transport)
            #expect(try await controls.ledger("resource=configmaps&name=cm-plain&verb=create").count == 1)

            try await controls.setFaults(
                #"{"scripted": [{"kind": "dropResponse", "verb": "create", "resource": "configmaps", "count": 1}]}"#)
            let key = IdempotencyKey(workflow: "wf-1", activity: "create-cm")
            let outcome = try await client.createOnce(.configMaps, configMap("cm-drop"), key: key, as: RawObject.self)
            #expect(!outcome.wasCreatedNow)
            #expect(outcome.object.metadata.annotations?[IdempotencyKey.annotation] == key.rawValue)
            let again = try await client.createOnce(.configMaps, configMap("cm-drop"), key: key, as: RawObject.self)
            #expect(!again.wasCreatedNow)
            let creates = try await controls.ledger("resource=configmaps&name=cm-drop&verb=create")
            #expect(creates.count == 1)

            let stranger = await #expect(throws: KubernetesError.self) {
                _ = try await client.createOnce(
                    .configMaps, configMap("cm-drop"), key: IdempotencyKey("someone/else"), as: RawObject.self)
            }
            #expect(stranger?.code == .notOurs)
            #expect(try await client.deleteOnce(.configMaps, name: "cm-drop") == .deleted)
            #expect(try await client.deleteOnce(.configMaps, name: "cm-drop") == .alreadyGone)
        }
    }

    /// Goal: cancelling the task aborts the transfer rather than waiting for the answer.
    /// Method: the server delays GETs by 3 s (else a 404); the task is cancelled at once and must end with CancellationError.
    @Test("Client: cancellation: a cancelled request ends without its answer")
    func cancellation() async throws {
        try await withKubeSim { _, client in
            let controls = SimControls(client: client)
            try await controls.setFaults(#"{"latencyMilliseconds": 3000}"#)
            let slow = Task { try await client.get(.configMaps, name: "absent", as: RawObject.self) }
            try await Task.sleep(for: .milliseconds(50))
            slow.cancel()
            let result = await slow.result
            #expect(throws: CancellationError.self) { try result.get() }
            let cancelledBefore = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await client.get(.configMaps, name: "absent", as: RawObject.self)
            }
            let early = await cancelledBefore.result
            #expect(throws: CancellationError.self) { try early.get() }
            try await controls.setFaults("{}")
        }
    }

    @Test("Client: list: label selector and pagination with continue")
    func pagination() async throws {
        try await withKubeSim { _, client in
            for index in 0..<7 {
                _ = try await client.create(
                    .configMaps, configMap("page-\(index)", labels: ["set": "paged"]), as: RawObject.self)
            }
            _ = try await client.create(.configMaps, configMap("other", labels: ["set": "other"]), as: RawObject.self)
            var pages: [[String]] = []
            var options = ListOptions(labelSelector: "set=paged", limit: 3)
            for _ in 0..<10 {
                let page = try await client.list(.configMaps, namespace: "default", options: options, as: RawObject.self)
                pages.append(page.items.compactMap(\.metadata.name))
                guard let next = page.metadata.continue, !next.isEmpty else { break }
                options.continueToken = next
            }
            #expect(pages.map(\.count) == [3, 3, 1])
            #expect(pages.flatMap { $0 } == (0..<7).map { "page-\($0)" })
            let all = try await client.listAll(
                .configMaps, namespace: "default", options: ListOptions(labelSelector: "set in (paged,other)", limit: 2),
                as: RawObject.self)
            #expect(all.count == 8)
        }
    }

    @Test("Client: watch: ADDED, MODIFIED, DELETED in order")
    func watch() async throws {
        try await withKubeSim { _, client in
            let list = try await client.list(.configMaps, namespace: "default", as: RawObject.self)
            let events = try client.watch(
                .configMaps, namespace: "default",
                options: ListOptions(resourceVersion: list.metadata.resourceVersion, timeoutSeconds: 30), as: RawObject.self)
            _ = try await client.create(.configMaps, configMap("watched"), as: RawObject.self)
            let patch: JSONValue = ["data": ["k": "v"]]
            _ = try await client.mergePatch(.configMaps, name: "watched", patch, as: RawObject.self)
            try await client.delete(.configMaps, name: "watched")
            var seen: [WatchEvent<RawObject>.EventType] = []
            for try await event in events where event.object.metadata.name == "watched" {
                seen.append(event.type)
                if seen.count == 3 { break }
            }
            #expect(seen == [.added, .modified, .deleted])
        }
    }

    /// Goal: each server refusal arrives as its typed code.
    @Test("Client: errors: every typed error from the server")
    func typedErrors() async throws {
        try await withKubeSim { _, client in
            let noRetry = KubernetesClient(connection: client.connection, retryPolicy: .none)
            func code(_ body: () async throws -> Void) async -> KubernetesError.Code? {
                do {
                    try await body()
                    return nil
                } catch let error as KubernetesError {
                    return error.code
                } catch {
                    return nil
                }
            }
            #expect(await code { _ = try await client.get(.configMaps, name: "absent", as: RawObject.self) } == .notFound)
            let created = try await client.create(.configMaps, configMap("e1"), as: RawObject.self)
            #expect(await code { _ = try await client.create(.configMaps, configMap("e1"), as: RawObject.self) } == .alreadyExists)
            var stale = created
            stale.metadata.resourceVersion = "1"
            #expect(await code { _ = try await client.replace(.configMaps, stale, as: RawObject.self) } == .conflict)
            let wrongUID = DeleteOptions(preconditions: .init(uid: "00000000-0000-0000-0000-000000000000"))
            #expect(await code { try await client.delete(.configMaps, name: "e1", options: wrongUID) } == .conflict)
            #expect(await code { _ = try await client.create(.configMaps, configMap("Bad_Name"), as: RawObject.self) } == .invalid)
            var withVersion = configMap("e2")
            withVersion.metadata.resourceVersion = "5"
            #expect(await code { _ = try await client.create(.configMaps, withVersion, as: RawObject.self) } == .badRequest)
            // Kamaji's webhook refuses a jump of two minors: 403 Forbidden.
            let kamaji = KamajiProvider(client: client)
            try await kamaji.ensureControlPlane(name: "t1", namespace: "default", version: "v1.33.0", key: IdempotencyKey("t/1"))
            #expect(await code { _ = try await kamaji.setVersion("v1.35.0", name: "t1", namespace: "default", key: IdempotencyKey("t/2")) } == .forbidden)
            let controls = SimControls(client: client)
            try await controls.setFaults(
                """
                {"retryAfterSeconds": 0, "scripted": [
                  {"kind": "tooManyRequests", "verb": "get", "resource": "configmaps", "count": 1},
                  {"kind": "error", "code": 503, "verb": "list", "resource": "configmaps", "count": 1},
                  {"kind": "error", "code": 500, "verb": "delete", "resource": "configmaps", "count": 1},
                  {"kind": "connectionReset", "verb": "get", "resource": "secrets", "count": 8}]}
                """)
            #expect(await code { _ = try await noRetry.get(.configMaps, name: "e1", as: RawObject.self) } == .tooManyRequests)
            #expect(await code { _ = try await noRetry.list(.configMaps, namespace: "default", as: RawObject.self) } == .serviceUnavailable)
            #expect(await code { try await noRetry.delete(.configMaps, name: "e1") } == .internalError)
            // Eight resets: curl itself re-sends (up to 5 times) a request whose reused connection died unanswered.
            do {
                _ = try await noRetry.get(.secrets, name: "x", as: Secret.self)
                Issue.record("a reset connection should fail the request")
            } catch let error as KubernetesError {
                #expect(error.code == .transport, "\(error)")
            }
        }
    }

    /// Goal: the raw escape hatch hides a Secret's server messages as the typed verbs do.
    /// Method: GET and DELETE of a missing Secret through `getRaw`/`send`; a ConfigMap keeps its message.
    @Test("Client: raw: server messages withheld for Secrets")
    func rawSecretMessagesWithheld() async throws {
        try await withKubeSim { _, client in
            let path = "/api/v1/namespaces/default/secrets/absent"
            let viaGet = await #expect(throws: KubernetesError.self) { _ = try await client.getRaw(path: path) }
            #expect(viaGet?.code == .notFound)
            #expect(viaGet?.status?.message == "(message withheld for a Secret)")
            let viaSend = await #expect(throws: KubernetesError.self) {
                _ = try await client.send(method: "DELETE", path: path, idempotent: true)
            }
            #expect(viaSend?.code == .notFound)
            #expect(viaSend?.status?.message == "(message withheld for a Secret)")
            let other = await #expect(throws: KubernetesError.self) {
                _ = try await client.getRaw(path: "/api/v1/namespaces/default/configmaps/absent")
            }
            #expect(other?.code == .notFound)
            #expect(other?.status?.message?.contains("absent") == true)
        }
    }
}
