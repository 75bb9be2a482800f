import Foundation
import KubeSimKit
import Testing

/// The generic Kubernetes API over real HTTPS (curl, trusting only kube-sim's CA).
@Suite("kube-sim API")
struct APITests {
    @Test("API: auth: a wrong or missing token gets 401 Status; another CA is refused")
    func authentication() async throws {
        try await SimFixture.with { fixture in
            var wrong = fixture.http
            wrong.token = "not-the-token"
            let refused = try await wrong.get("/api/v1/namespaces")
            #expect(refused.status == 401)
            #expect(refused.reason == "Unauthorized")
            #expect(refused.json["kind"]?.stringValue == "Status")

            // A certificate from another kube-sim start is a different CA: TLS fails (curl 60).
            let otherDirectory = try ProcessRunner.temporaryDirectory("other-ca")
            defer { try? FileManager.default.removeItem(atPath: otherDirectory) }
            let otherCA = "\(otherDirectory)/ca.crt"
            try await SimFixture.with(seed: 2) { other in
                try FileManager.default.copyItem(atPath: other.sim.caCertificatePath, toPath: otherCA)
            }
            var untrusting = fixture.http
            untrusting.caPath = otherCA
            let tls = try await untrusting.get("/api/v1/namespaces")
            #expect(tls.curlExit == 60)

            let fine = try await fixture.http.get("/api/v1/namespaces")
            #expect(fine.status == 200)
            let names = fine.json["items"]?.arrayValue?.compactMap(\.name) ?? []
            #expect(names == ["default", "kube-node-lease", "kube-public", "kube-system"])
        }
    }

    @Test("API: discovery: version, groups, resource lists, openapi v3 with fieldValidation")
    func discovery() async throws {
        try await SimFixture.with { fixture in
            let version = try await fixture.http.get("/version")
            #expect(version.json["gitVersion"]?.stringValue == "v1.33.4")
            let groups = try await fixture.http.get("/apis")
            let groupNames = groups.json["groups"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            #expect(Set(groupNames) == ["coordination.k8s.io", "kamaji.clastix.io", "kubevirt.io", "policy"])
            let kamaji = try await fixture.http.get("/apis/kamaji.clastix.io/v1alpha1")
            let tcp = kamaji.json["resources"]?.arrayValue?.first { $0["name"]?.stringValue == "tenantcontrolplanes" }
            #expect(tcp?["kind"]?.stringValue == "TenantControlPlane")
            #expect(tcp?["shortNames"] == ["tcp"])
            #expect(tcp?["namespaced"] == true)
            let core = try await fixture.http.get("/api/v1")
            #expect(core.json["resources"]?.arrayValue?.contains { $0["name"]?.stringValue == "pods/eviction" } == true)
            let root = try await fixture.http.get("/openapi/v3")
            let url = root.json["paths"]?["apis/kubevirt.io/v1"]?["serverRelativeURL"]?.stringValue
            #expect(url?.hasPrefix("/openapi/v3/apis/kubevirt.io/v1") == true)
            let document = try await fixture.http.get(url ?? "/missing")
            let patch = document.json["paths"]?["/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachines/{name}"]?["patch"]
            #expect(patch?["x-kubernetes-group-version-kind"]?["kind"]?.stringValue == "VirtualMachine")
            #expect(patch?["parameters"]?.arrayValue?.contains { $0["name"]?.stringValue == "fieldValidation" } == true)
        }
    }

    @Test("API: objects: create, get, conflict, patch, apply, preconditions, delete, errors")
    func objectLifecycle() async throws {
        try await SimFixture.with { fixture in
            let http = fixture.http
            let path = "/api/v1/namespaces/default/configmaps"
            let created = try await http.post(path, ["metadata": ["name": "c1", "labels": ["app": "a"]], "data": ["k": "v"]])
            #expect(created.status == 201)
            let uid = created.json.uid ?? ""
            let version = created.json.resourceVersion ?? ""
            #expect(!uid.isEmpty)
            #expect(created.json["metadata"]?["creationTimestamp"]?.stringValue?.hasSuffix("Z") == true)

            let again = try await http.post(path, ["metadata": ["name": "c1"]])
            #expect(again.status == 409)
            #expect(again.reason == "AlreadyExists")

            let invalid = try await http.post(path, ["metadata": ["name": "Bad_Name"]])
            #expect(invalid.status == 422)
            #expect(invalid.reason == "Invalid")
            #expect(invalid.json["details"]?["causes"]?.arrayValue?.first?["field"]?.stringValue == "metadata.name")

            let protobuf = try await http.request("POST", path, body: "\u{0}k8s", contentType: "application/vnd.kubernetes.protobuf")
            #expect(protobuf.status == 415)

            let missingNamespace = try await http.post("/api/v1/namespaces/nope/configmaps", ["metadata": ["name": "x"]])
            #expect(missingNamespace.status == 404)

            var updated = created.json
            updated["data"] = ["k": "v2"]
            let put = try await http.put("\(path)/c1", updated)
            #expect(put.status == 200)
            #expect(put.json.resourceVersion != version)
            let stale = try await http.put("\(path)/c1", created.json)
            #expect(stale.status == 409)
            #expect(stale.reason == "Conflict")

            let patched = try await http.mergePatch("\(path)/c1", ["data": ["extra": "x"]])
            #expect(patched.json["data"]?["extra"]?.stringValue == "x")
            #expect(patched.json["data"]?["k"]?.stringValue == "v2")

            // Server-side apply: creates when missing, a repeat changes nothing, managers recorded.
            let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c2\ndata:\n  a: \"1\"\n"
            let applied = try await http.apply("\(path)/c2", yaml: yaml, manager: "capstan")
            #expect(applied.status == 201)
            #expect(applied.json[path: ["metadata", "managedFields"]]?.arrayValue?.first?["manager"]?.stringValue == "capstan")
            let reapplied = try await http.apply("\(path)/c2", yaml: yaml, manager: "capstan")
            #expect(reapplied.status == 200)
            #expect(reapplied.json.resourceVersion == applied.json.resourceVersion)
            let noManager = try await http.request("PATCH", "\(path)/c2", body: yaml, contentType: "application/apply-patch+yaml")
            #expect(noManager.status == 400)
            let conflicting = try await http.apply("\(path)/c2", yaml: yaml.replacingOccurrences(of: "\"1\"", with: "\"2\""), manager: "other")
            #expect(conflicting.status == 409)
            #expect(conflicting.json["details"]?["causes"]?.arrayValue?.first?["reason"]?.stringValue == "FieldManagerConflict")
            let forced = try await http.apply("\(path)/c2", yaml: yaml.replacingOccurrences(of: "\"1\"", with: "\"2\""), manager: "other", force: true)
            #expect(forced.json["data"]?["a"]?.stringValue == "2")

            let wrongUID = try await http.delete("\(path)/c1", body: #"{"preconditions":{"uid":"wrong"}}"#)
            #expect(wrongUID.status == 409)
            let deleted = try await http.delete("\(path)/c1", body: #"{"preconditions":{"uid":"\#(uid)"}}"#)
            #expect(deleted.status == 200)
            let gone = try await http.get("\(path)/c1")
            #expect(gone.status == 404)
            #expect(gone.reason == "NotFound")
            #expect(gone.json["details"]?["name"]?.stringValue == "c1")
            let deleteAgain = try await http.delete("\(path)/c1")
            #expect(deleteAgain.status == 404)
        }
    }

    @Test("API: list: label and field selectors, limit and continue")
    func listing() async throws {
        try await SimFixture.with { fixture in
            let http = fixture.http
            for index in 0..<7 {
                let reply = try await http.post(
                    "/api/v1/namespaces/default/pods",
                    [
                        "metadata": ["name": .string("p\(index)"), "labels": ["tier": .string(index % 2 == 0 ? "web" : "db")]],
                        "spec": ["nodeName": .string(index < 3 ? "n1" : "n2")],
                    ])
                #expect(reply.status == 201)
            }
            let web = try await http.get("/api/v1/namespaces/default/pods?labelSelector=tier%3Dweb")
            #expect(web.json["items"]?.arrayValue?.compactMap(\.name) == ["p0", "p2", "p4", "p6"])
            let notIn = try await http.get("/api/v1/pods?labelSelector=tier%20notin%20(web)")
            #expect(notIn.json["items"]?.arrayValue?.compactMap(\.name) == ["p1", "p3", "p5"])
            let onNode = try await http.get("/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3Dn1")
            #expect(onNode.json["items"]?.arrayValue?.compactMap(\.name) == ["p0", "p1", "p2"])
            #expect(onNode.json["items"]?.arrayValue?.first?[path: ["status", "phase"]]?.stringValue == "Running")

            var names: [String] = []
            var token: String? = nil
            var pages = 0
            repeat {
                let query = "limit=3" + (token.map { "&continue=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)" } ?? "")
                let page = try await http.get("/api/v1/namespaces/default/pods?\(query)")
                names += page.json["items"]?.arrayValue?.compactMap(\.name) ?? []
                token = page.json["metadata"]?["continue"]?.stringValue
                pages += 1
            } while token != nil && pages < 10
            #expect(pages == 3)
            #expect(names == (0..<7).map { "p\($0)" })
        }
    }

    @Test("API: watch: ADDED for existing objects, then MODIFIED and DELETED as they happen")
    func watching() async throws {
        try await SimFixture.with { fixture in
            let http = fixture.http
            _ = try await http.post("/api/v1/namespaces/default/configmaps", ["metadata": ["name": "w1"]])
            // timeoutSeconds only ends the stream; the changes are made once the watch is registered.
            async let streamed = http.request("GET", "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=8")
            _ = try await http.waitFor("/_sim/watches") { $0.json["resources"]?["configmaps"]?.intValue == 1 }
            _ = try await http.mergePatch("/api/v1/namespaces/default/configmaps/w1", ["data": ["a": "b"]])
            _ = try await http.delete("/api/v1/namespaces/default/configmaps/w1")
            let reply = try await streamed
            var events = reply.body.split(whereSeparator: \.isNewline).compactMap { try? JSON.parse(String($0)) }
            // On a loaded machine the writes may outlast the 8 s stream: resume from the last
            // resourceVersion seen, as a client does, until DELETED arrives (or 60 s pass).
            let clock = ContinuousClock()
            let start = clock.now
            while events.last?["type"]?.stringValue != "DELETED", clock.now - start < .seconds(60),
                let last = events.last?["object"]?["metadata"]?["resourceVersion"]?.stringValue
            {
                let more = try await http.get("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=2&resourceVersion=\(last)")
                events += more.body.split(whereSeparator: \.isNewline).compactMap { try? JSON.parse(String($0)) }
            }
            #expect(events.compactMap { $0["type"]?.stringValue } == ["ADDED", "MODIFIED", "DELETED"])
            #expect(events.allSatisfy { $0["object"]?.name == "w1" })
        }
    }

    @Test("API: eviction: a PodDisruptionBudget blocks with 429, then allows")
    func eviction() async throws {
        try await SimFixture.with { fixture in
            let http = fixture.http
            for name in ["a", "b"] {
                _ = try await http.post(
                    "/api/v1/namespaces/default/pods",
                    ["metadata": ["name": .string(name), "labels": ["app": "x"]], "spec": ["nodeName": "n1"]])
            }
            _ = try await http.post(
                "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
                ["metadata": ["name": "pdb"], "spec": ["minAvailable": 2, "selector": ["matchLabels": ["app": "x"]]]])
            let eviction: JSON = ["apiVersion": "policy/v1", "kind": "Eviction", "metadata": ["name": "a", "namespace": "default"]]
            let blocked = try await http.post("/api/v1/namespaces/default/pods/a/eviction", eviction)
            #expect(blocked.status == 429)
            #expect(blocked.reason == "TooManyRequests")
            #expect(blocked.headers["retry-after"] != nil)
            _ = try await http.mergePatch("/apis/policy/v1/namespaces/default/poddisruptionbudgets/pdb", ["spec": ["minAvailable": 1]])

            // Blocked far longer than the test runs, then released explicitly: no clock involved.
            let blockedForAWhile = try await http.post("/_sim/pdb-block", ["namespace": "default", "name": "pdb", "seconds": 3600])
            #expect(blockedForAWhile.status == 200)
            let stillBlocked = try await http.post("/api/v1/namespaces/default/pods/a/eviction", eviction)
            #expect(stillBlocked.status == 429)
            let released = try await http.post("/_sim/pdb-release", ["namespace": "default", "name": "pdb"])
            #expect(released.status == 200)
            let allowed = try await http.post("/api/v1/namespaces/default/pods/a/eviction", eviction)
            #expect(allowed.status == 201)
            #expect(try await http.get("/api/v1/namespaces/default/pods/a").status == 404)
            let missing = try await http.post(
                "/api/v1/namespaces/default/pods/zz/eviction",
                ["apiVersion": "policy/v1", "kind": "Eviction", "metadata": ["name": "zz", "namespace": "default"]])
            #expect(missing.status == 404)
        }
    }

    @Test("API: faults: a dropped response is applied once; 429 and 503 carry Retry-After; resets apply nothing")
    func faults() async throws {
        try await SimFixture.with { fixture in
            let http = fixture.http
            let rules: JSON = [
                "retryAfterSeconds": 2,
                "scripted": [
                    ["kind": "dropResponse", "verb": "create", "resource": "configmaps", "name": nil, "count": 1],
                    ["kind": "tooManyRequests", "verb": "get", "resource": "configmaps", "count": 1],
                    ["kind": "error", "code": 503, "verb": "list", "count": 1],
                    ["kind": "connectionReset", "verb": "delete", "count": 1],
                ],
            ]
            let set = try await http.put("/_sim/faults", rules)
            #expect(set.status == 200)
            let dropped = try await http.post("/api/v1/namespaces/default/configmaps", ["metadata": ["name": "d1"]])
            #expect(dropped.curlExit != 0)
            #expect(dropped.status == 0)
            let retried = try await http.post("/api/v1/namespaces/default/configmaps", ["metadata": ["name": "d1"]])
            #expect(retried.reason == "AlreadyExists")
            let creates = try await fixture.ledger("resource=configmaps&name=d1&verb=create")
            #expect(creates.count == 1)

            let throttled = try await http.get("/api/v1/namespaces/default/configmaps/d1")
            #expect(throttled.status == 429)
            #expect(throttled.headers["retry-after"] == "2")
            let unavailable = try await http.get("/api/v1/namespaces/default/configmaps")
            #expect(unavailable.status == 503)
            #expect(unavailable.headers["retry-after"] == "2")
            let reset = try await http.delete("/api/v1/namespaces/default/configmaps/d1")
            #expect(reset.curlExit != 0)
            #expect(try await http.get("/api/v1/namespaces/default/configmaps/d1").status == 200)

            let badRate = try await http.put("/_sim/faults", ["dropResponseRate": 2])
            #expect(badRate.status == 400)
            #expect(badRate.json["message"]?.stringValue?.contains("dropResponseRate") == true)
        }
    }

    @Test("API: faults: a scripted fault naming an object matches its create (name from the body)")
    func faultNamingCreate() async throws {
        try await SimFixture.with { fixture in
            let http = fixture.http
            let rules: JSON = [
                "scripted": [["kind": "dropResponse", "verb": "create", "resource": "configmaps", "name": "cm-1", "cluster": "management", "count": 1]]
            ]
            #expect(try await http.put("/_sim/faults", rules).status == 200)
            let other = try await http.post("/api/v1/namespaces/default/configmaps", ["metadata": ["name": "cm-0"]])
            #expect(other.status == 201)
            let dropped = try await http.post("/api/v1/namespaces/default/configmaps", ["metadata": ["name": "cm-1"]])
            #expect(dropped.curlExit != 0)
            #expect(dropped.status == 0)
            #expect(try await fixture.ledger("resource=configmaps&name=cm-1&verb=create").count == 1)
            let retried = try await http.post("/api/v1/namespaces/default/configmaps", ["metadata": ["name": "cm-1"]])
            #expect(retried.reason == "AlreadyExists")
        }
    }

    @Test("API: ledger: entries in order with what changed, secrets redacted")
    func ledger() async throws {
        try await SimFixture.with { fixture in
            let http = fixture.http
            _ = try await http.post("/api/v1/namespaces/default/secrets", ["metadata": ["name": "s"], "stringData": ["token": "hunter2"]])
            _ = try await http.post("/api/v1/namespaces/default/configmaps", ["metadata": ["name": "m"], "data": ["v": "1"]])
            _ = try await http.mergePatch("/api/v1/namespaces/default/configmaps/m", ["data": ["v": "2"]])
            let ledger = try await http.get("/_sim/ledger")
            #expect(!ledger.body.contains("hunter2"))
            #expect(!ledger.body.contains(Data("hunter2".utf8).base64EncodedString()))
            let entries = try await fixture.ledger("resource=configmaps&name=m")
            #expect(entries.compactMap { $0["verb"]?.stringValue } == ["create", "patch"])
            let change = entries.last?["changes"]?.arrayValue?.first
            #expect(change?["path"]?.stringValue == "data.v")
            #expect(change?["from"]?.stringValue == "1")
            #expect(change?["to"]?.stringValue == "2")
            let sequences = try await fixture.ledger().compactMap { $0["seq"]?.intValue }
            #expect(sequences == Array(1...Int64(sequences.count)))
        }
    }
}
