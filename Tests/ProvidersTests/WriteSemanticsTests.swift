import Foundation
import KubeSimKit
import Providers
import Testing

private func configMap(_ name: String, data: [String: JSONValue], finalizers: [String]? = nil) -> RawObject {
    var metadata = ObjectMeta(name: name, namespace: "default")
    metadata.finalizers = finalizers
    return RawObject(apiVersion: "v1", kind: "ConfigMap", metadata: metadata, fields: ["data": .object(data)])
}

/// Another client's write with its own field manager, as `kubectl patch` or `kubectl apply --server-side` sends it.
private func write(
    _ client: KubernetesClient, _ name: String, manager: String, contentType: String, _ json: String
) async throws -> HTTPResponse {
    try await client.send(
        method: "PATCH", path: "/api/v1/namespaces/default/configmaps/\(name)?fieldManager=\(manager)",
        body: Array(json.utf8), contentType: contentType, idempotent: true)
}

private func managers(of object: RawObject) -> [String] {
    (object.json["metadata"]?["managedFields"]?.arrayValue ?? []).compactMap { $0["manager"]?.stringValue }
}

/// Creates and applies that behave as on a real API server (issue 12).
@Suite struct WriteSemanticsTests {
    /// Goal: a same-name create over an object being deleted is not "already created".
    /// Method: create once, delete (a finalizer holds it, deletionTimestamp set), create once
    /// again with the same key. Broken on purpose: without the deletionTimestamp check in
    /// `createOnce` the second call returns `.alreadyCreated` and this test fails.
    @Test("Client: createOnce: an object being deleted is not taken as already created")
    func createOnceOnDyingObject() async throws {
        try await withKubeSim { _, client in
            let key = IdempotencyKey(workflow: "wf", activity: "create-cm")
            let object = configMap("dying", data: ["a": "1"], finalizers: ["capstan.io/test-hold"])
            #expect(try await client.createOnce(.configMaps, object, key: key, as: RawObject.self).wasCreatedNow)
            #expect(try await client.deleteOnce(.configMaps, name: "dying", namespace: "default") == .deleted)
            let held = try await client.get(.configMaps, name: "dying", namespace: "default", as: RawObject.self)
            #expect(held.metadata.deletionTimestamp != nil)
            let error = await #expect(throws: KubernetesError.self) {
                _ = try await client.createOnce(.configMaps, object, key: key, as: RawObject.self)
            }
            #expect(error?.code == .beingDeleted)
            // Once the finalizer is gone the object is gone, and the same create succeeds again.
            let _: RawObject = try await client.mergePatch(
                .configMaps, name: "dying", JSONValue.object(["metadata": .object(["finalizers": .null])]),
                namespace: "default")
            #expect(try await client.createOnce(.configMaps, object, key: key, as: RawObject.self).wasCreatedNow)
        }
    }

    /// Goal: kube-sim refuses an unforced apply over a field another manager set by update
    /// (`kubectl patch`), as a real server does (409 with the conflicting field); `force` takes
    /// the field, and the update manager no longer owns it.
    /// Broken on purpose: considering only Apply managers in `checkApplyConflicts` (as before)
    /// answers 200 to the unforced apply.
    @Test("kube-sim: server-side apply: conflict with an update manager unless forced; force moves ownership")
    func applyConflictsWithUpdateManager() async throws {
        try await withKubeSim { _, client in
            let _: RawObject = try await client.apply(
                .configMaps, name: "owned", configMap("owned", data: ["x": "1", "y": "1"]), namespace: "default")
            _ = try await write(client, "owned", manager: "kubectl-patch", contentType: "application/merge-patch+json", #"{"data":{"x":"2"}}"#)
            let error = await #expect(throws: KubernetesError.self) {
                let _: RawObject = try await client.apply(
                    .configMaps, name: "owned", configMap("owned", data: ["x": "3", "y": "1"]), namespace: "default",
                    force: false)
            }
            #expect(error?.code == .conflict)
            #expect(error?.status?.details?.causes?.first?.field == ".data.x")
            let current = try await client.get(.configMaps, name: "owned", namespace: "default", as: RawObject.self)
            #expect(current.json["data"]?["x"] == .string("2"))
            // A field nobody else touched applies without force.
            let _: RawObject = try await client.apply(
                .configMaps, name: "owned", configMap("owned", data: ["x": "2", "y": "5"]), namespace: "default",
                force: false)
            let forced: RawObject = try await client.apply(
                .configMaps, name: "owned", configMap("owned", data: ["x": "3", "y": "5"]), namespace: "default",
                force: true)
            #expect(forced.json["data"]?["x"] == .string("3"))
            #expect(!managers(of: forced).contains("kubectl-patch"))
        }
    }

    /// Goal: `apply` forces by default, as a controller does, so a field another apply manager
    /// owns is taken rather than failing with 409.
    /// Broken on purpose: the old default `force: false` makes the apply below throw `.conflict`.
    @Test("Client: apply: forces by default, as a controller does")
    func applyForcesByDefault() async throws {
        try await withKubeSim { _, client in
            _ = try await write(
                client, "shared", manager: "someone-else", contentType: "application/apply-patch+yaml",
                #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"shared"},"data":{"x":"1"}}"#)
            let applied: RawObject = try await client.apply(
                .configMaps, name: "shared", configMap("shared", data: ["x": "2"]), namespace: "default")
            #expect(applied.json["data"]?["x"] == .string("2"))
            #expect(managers(of: applied).contains(KubernetesClient.fieldManager))
        }
    }
}
