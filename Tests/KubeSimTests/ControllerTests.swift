import Foundation
import KubeSimKit
import Testing

/// The simulated Kamaji, KubeVirt and kubelet rules, through the API.
@Suite("kube-sim controllers")
struct ControllerTests {
    static let tcpPath = "/apis/kamaji.clastix.io/v1alpha1/namespaces/default/tenantcontrolplanes"

    @Test("Controllers: control plane: Ready with its cluster served and admin kubeconfig Secret")
    func controlPlaneProvision() async throws {
        try await SimFixture.with { fixture in
            let workload = try await fixture.readyControlPlane(name: "t1", version: "v1.33.2")
            let tcp = try await fixture.http.get("\(ControllerTests.tcpPath)/t1")
            #expect(tcp.json[path: ["status", "kubernetesResources", "version", "version"]]?.stringValue == "v1.33.2")
            #expect(tcp.json[path: ["status", "kubeconfig", "admin", "secretName"]]?.stringValue == "t1-admin-kubeconfig")
            let secret = try await fixture.http.get("/api/v1/namespaces/default/secrets/t1-admin-kubeconfig")
            let adminConf = secret.json["data"]?["admin.conf"]?.stringValue.flatMap { Data(base64Encoded: $0) }
                .map { String(decoding: $0, as: UTF8.self) } ?? ""
            // Its own endpoint, as Kamaji gives each control plane: another port, no path.
            // (Before: `server: <management URL>/clusters/default/t1`, which kubectl's `--raw
            // /version` sent to the management API.)
            #expect(workload.baseURL.hasPrefix("https://127.0.0.1:"))
            #expect(workload.baseURL != fixture.sim.url)
            #expect(URL(string: workload.baseURL)?.path.isEmpty == true)
            #expect(adminConf.contains("server: \(workload.baseURL)\n"))
            #expect(adminConf.contains("client-certificate-data: ") && !adminConf.contains("token: "))
            #expect(tcp.json[path: ["status", "controlPlaneEndpoint"]]?.stringValue
                == workload.baseURL.replacingOccurrences(of: "https://", with: ""))
            // The management API serves no workload cluster under a path.
            var prefixed = fixture.http
            prefixed.token = ""
            prefixed.clientCertificate = workload.clientCertificate
            #expect(try await prefixed.get("/clusters/default/t1/version").status == 401)
            #expect(try await fixture.http.get("/clusters/default/t1/version").status == 404)

            let version = try await workload.get("/version")
            #expect(version.json["gitVersion"]?.stringValue == "v1.33.2")
            #expect(try await workload.get("/api/v1/namespaces").status == 200)
            // The management token does not open a workload cluster, nor the reverse (its
            // admin certificate is signed by its own CA).
            var wrong = workload
            wrong.clientCertificate = nil
            wrong.token = fixture.sim.managementToken
            #expect(try await wrong.get("/api/v1/nodes").status == 401)
            var reverse = fixture.http
            reverse.token = ""
            reverse.clientCertificate = workload.clientCertificate
            #expect(try await reverse.get("/api/v1/namespaces").status == 401)

            // A second control plane gets a port of its own; deleting the first closes its port.
            let other = try await fixture.readyControlPlane(name: "t2", version: "v1.34.0")
            #expect(other.baseURL != workload.baseURL && other.baseURL != fixture.sim.url)
            #expect(try await other.get("/version").json["gitVersion"]?.stringValue == "v1.34.0")
            #expect(try await fixture.http.delete("\(ControllerTests.tcpPath)/t1").status == 200)
            _ = try await fixture.http.waitFor("/api/v1/namespaces/default/secrets/t1-admin-kubeconfig") { $0.status == 404 }
            let clock = ContinuousClock()
            let start = clock.now
            var gone = try await workload.get("/version")
            while gone.curlExit == 0, clock.now - start < .seconds(30) {
                try await Task.sleep(for: .milliseconds(50))
                gone = try await workload.get("/version")
            }
            #expect(gone.curlExit == 7, "curl exit \(gone.curlExit): the deleted cluster's port still answers")
            #expect(try await other.get("/version").status == 200)
        }
    }

    @Test("Controllers: control plane: one minor per step; downgrade and jump refused")
    func controlPlaneUpgradeRules() async throws {
        try await SimFixture.with { fixture in
            let http = fixture.http
            let path = "\(ControllerTests.tcpPath)/t1"
            let workload = try await fixture.readyControlPlane(name: "t1", version: "v1.33.2")

            let jump = try await http.mergePatch(path, ["spec": ["kubernetes": ["version": "v1.35.0"]]])
            #expect(jump.status == 403)
            #expect(jump.json["message"]?.stringValue?.contains("denied the request") == true)
            let downgrade = try await http.mergePatch(path, ["spec": ["kubernetes": ["version": "v1.32.9"]]])
            #expect(downgrade.status == 403)
            let tooNew = try await http.post(
                ControllerTests.tcpPath,
                ["metadata": ["name": "t9"], "spec": ["kubernetes": ["version": "v1.37.0"]]])
            #expect(tooNew.status == 403)

            for target in ["v1.34.1", "v1.35.0", "v1.36.0"] {
                let step = try await http.mergePatch(path, ["spec": ["kubernetes": ["version": .string(target)]]])
                #expect(step.status == 200)
                _ = try await http.waitFor(path) {
                    $0.json[path: ["status", "kubernetesResources", "version", "version"]]?.stringValue == target
                        && $0.json[path: ["status", "kubernetesResources", "version", "status"]]?.stringValue == "Ready"
                }
                #expect(try await workload.get("/version").json["gitVersion"]?.stringValue == target)
            }
            // Each version change applied once, in order.
            let changes = try await fixture.ledger("resource=tenantcontrolplanes&name=t1").flatMap {
                $0["changes"]?.arrayValue ?? []
            }.filter { $0["path"]?.stringValue == "status.kubernetesResources.version.version" }
            #expect(changes.compactMap { $0["to"]?.stringValue } == ["v1.33.2", "v1.34.1", "v1.35.0", "v1.36.0"])
        }
    }

    @Test("Controllers: control plane: a second bump before the first finished is refused by the reconciler")
    func controlPlaneDoubleBump() async throws {
        var delays = ControllerDelays.immediate
        delays.controlPlaneUpgrade = .seconds(2)
        try await SimFixture.with(delays: delays) { fixture in
            let http = fixture.http
            let path = "\(ControllerTests.tcpPath)/t1"
            _ = try await fixture.readyControlPlane(name: "t1", version: "v1.33.0")
            #expect(try await http.mergePatch(path, ["spec": ["kubernetes": ["version": "v1.34.0"]]]).status == 200)
            // Admission compares with the old spec (v1.34.0), so this passes; the reconciler compares
            // with the installed version (v1.33.0) and refuses.
            #expect(try await http.mergePatch(path, ["spec": ["kubernetes": ["version": "v1.35.0"]]]).status == 200)
            let refused = try await http.waitFor(path) {
                $0.json[path: ["status", "conditions"]]?.arrayValue?.first?["reason"]?.stringValue == "UpgradePlanNotAvailable"
            }
            #expect(refused.json[path: ["status", "kubernetesResources", "version", "version"]]?.stringValue == "v1.33.0")
            try await Task.sleep(for: .seconds(3))
            let after = try await http.get(path)
            #expect(after.json[path: ["status", "kubernetesResources", "version", "version"]]?.stringValue == "v1.33.0")
        }
    }

    @Test("Controllers: machines: a VM becomes Running and its Node joins with the userdata's kubelet")
    func machineJoins() async throws {
        try await SimFixture.with { fixture in
            let workload = try await fixture.readyControlPlane(name: "t1", version: "v1.33.2")
            try await fixture.createMachine(name: "m1", join: workload, kubelet: "v1.33.1")
            let vm = try await fixture.http.waitFor("/apis/kubevirt.io/v1/namespaces/default/virtualmachines/m1") {
                $0.json["status"]?["ready"]?.boolValue == true
            }
            #expect(vm.json["status"]?["printableStatus"]?.stringValue == "Running")
            let instance = try await fixture.http.get("/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances/m1")
            #expect(instance.json[path: ["status", "phase"]]?.stringValue == "Running")
            #expect(instance.json[path: ["metadata", "ownerReferences"]]?.arrayValue?.first?["uid"] == vm.json["metadata"]?["uid"])
            let node = try await workload.waitFor("/api/v1/nodes/m1") { $0.status == 200 }
            #expect(node.json[path: ["status", "nodeInfo", "kubeletVersion"]]?.stringValue == "v1.33.1")
            let ready = node.json[path: ["status", "conditions"]]?.arrayValue?.first { $0["type"]?.stringValue == "Ready" }
            #expect(ready?["status"]?.stringValue == "True")
            #expect(ready?["lastTransitionTime"] != nil)
            #expect(node.json[path: ["status", "capacity", "cpu"]]?.stringValue == "2")

            // providerID: set once (as CAPK does), never changed.
            #expect(try await workload.mergePatch("/api/v1/nodes/m1", ["spec": ["providerID": "kubevirt://m1"]]).status == 200)
            #expect(try await workload.mergePatch("/api/v1/nodes/m1", ["spec": ["providerID": "kubevirt://other"]]).status == 422)

            // NotReady and back through /_sim.
            let notReady = try await fixture.http.post("/_sim/node-readiness", ["cluster": "default/t1", "node": "m1", "ready": false])
            #expect(notReady.status == 200)
            let flipped = try await workload.get("/api/v1/nodes/m1")
            #expect(flipped.json[path: ["status", "conditions"]]?.arrayValue?.first { $0["type"]?.stringValue == "Ready" }?["status"]?.stringValue == "False")
            #expect(try await fixture.http.post("/_sim/node-readiness", ["cluster": "default/t1", "node": "m1", "ready": true]).status == 200)

            // Deleting the VM removes the Node.
            #expect(try await fixture.http.delete("/apis/kubevirt.io/v1/namespaces/default/virtualmachines/m1").status == 200)
            _ = try await workload.waitFor("/api/v1/nodes/m1") { $0.status == 404 }
            _ = try await fixture.http.waitFor("/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances/m1") { $0.status == 404 }
            let nodeCreates = try await fixture.ledger("cluster=default/t1&resource=nodes&name=m1&verb=create")
            #expect(nodeCreates.count == 1)
        }
    }

    @Test("Controllers: machines: kubeadm join refused off the control plane's minor (older or newer)")
    func joinSkew() async throws {
        try await SimFixture.with { fixture in
            let workload = try await fixture.readyControlPlane(name: "t1", version: "v1.34.0")
            try await fixture.createMachine(name: "old", join: workload, kubelet: "v1.33.5")
            try await fixture.createMachine(name: "new", join: workload, kubelet: "v1.35.0")
            try await fixture.createMachine(name: "ok", join: workload, kubelet: "v1.34.0")
            // A newer patch of the control plane's minor joins (issue 12: v1.35.2 on v1.35.0 was refused).
            try await fixture.createMachine(name: "patch", join: workload, kubelet: "v1.34.2")
            _ = try await workload.waitFor("/api/v1/nodes/ok") { $0.status == 200 }
            let patchNode = try await workload.waitFor("/api/v1/nodes/patch") { $0.status == 200 }
            #expect(patchNode.json[path: ["status", "nodeInfo", "kubeletVersion"]]?.stringValue == "v1.34.2")
            for name in ["old", "new"] {
                let vm = try await fixture.http.waitFor("/apis/kubevirt.io/v1/namespaces/default/virtualmachines/\(name)") {
                    $0.json[path: ["status", "conditions"]]?.arrayValue?.contains { $0["type"]?.stringValue == "Failure" } == true
                }
                let failure = vm.json[path: ["status", "conditions"]]?.arrayValue?.first { $0["type"]?.stringValue == "Failure" }
                #expect(failure?["reason"]?.stringValue == "KubeadmJoinFailed")
                #expect(try await workload.get("/api/v1/nodes/\(name)").status == 404)
            }
        }
    }

    @Test("Controllers: machines: the Node joins the endpoint its JoinConfiguration names, only with the right CA pin")
    func joinByEndpointAndPin() async throws {
        try await SimFixture.with { fixture in
            let first = try await fixture.readyControlPlane(name: "t1", version: "v1.33.0")
            let second = try await fixture.readyControlPlane(name: "t2", version: "v1.33.0")
            // Each tenant has a CA of its own: the pins differ.
            let firstPin = try await first.caCertHash()
            let secondPin = try await second.caCertHash()
            #expect(firstPin != secondPin)
            #expect(try await kubeSimPin(fixture, "t1") == firstPin)
            // The endpoint decides, not a label (none is set): m1 joins t2.
            try await fixture.createMachine(name: "m1", join: second, kubelet: "v1.33.0")
            _ = try await second.waitFor("/api/v1/nodes/m1") { $0.status == 200 }
            #expect(try await first.get("/api/v1/nodes/m1").status == 404)
            // A wrong pin is refused (as a real kubeadm refuses it); no pin with unsafeSkipCAVerification joins.
            try await fixture.createMachine(name: "wrong-pin", join: first, kubelet: "v1.33.0", caCertHashes: [secondPin])
            try await fixture.createMachine(name: "skip", join: first, kubelet: "v1.33.0", caCertHashes: [])
            _ = try await first.waitFor("/api/v1/nodes/skip") { $0.status == 200 }
            let vm = try await fixture.http.waitFor("/apis/kubevirt.io/v1/namespaces/default/virtualmachines/wrong-pin") {
                $0.json[path: ["status", "conditions"]]?.arrayValue?.contains { $0["type"]?.stringValue == "Failure" } == true
            }
            let failure = vm.json[path: ["status", "conditions"]]?.arrayValue?.first { $0["type"]?.stringValue == "Failure" }
            #expect(failure?["reason"]?.stringValue == "KubeadmJoinFailed")
            #expect(failure?["message"]?.stringValue?.contains("none of the public keys") == true)
            #expect(try await first.get("/api/v1/nodes/wrong-pin").status == 404)
        }
    }

    /// The pin kube-sim itself computes for a cluster, through `/_sim/clusters`.
    private func kubeSimPin(_ fixture: SimFixture, _ name: String) async throws -> String? {
        let clusters = try await fixture.http.get("/_sim/clusters").json["clusters"]?.arrayValue ?? []
        return clusters.first { $0["name"]?.stringValue == name }?["caCertHash"]?.stringValue
    }

    @Test("Controllers: in-place extension: patch upgrade accepted and polled to done; minor declined")
    func inPlaceExtension() async throws {
        var delays = ControllerDelays.immediate
        // Far longer than the test runs: the update finishes only when /_sim/in-place-complete says so.
        delays.inPlaceUpdate = .seconds(3600)
        try await SimFixture.with(delays: delays) { fixture in
            let http = fixture.http
            let workload = try await fixture.readyControlPlane(name: "t1", version: "v1.33.4")
            try await fixture.createMachine(name: "m1", join: workload, kubelet: "v1.33.1")
            _ = try await workload.waitFor("/api/v1/nodes/m1") { $0.status == 200 }
            func machine(_ version: String) -> JSON {
                [
                    "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                    "metadata": ["name": "m1", "namespace": "default"],
                    "spec": ["clusterName": "t1", "version": .string(version), "providerID": "kubevirt://m1"],
                ]
            }
            let hooks = "/hooks.runtime.cluster.x-k8s.io/v1alpha1"
            let can = try await http.post(
                "\(hooks)/canupdatemachine/kube-sim",
                ["apiVersion": "hooks.runtime.cluster.x-k8s.io/v1alpha1", "kind": "CanUpdateMachineRequest",
                 "current": ["machine": machine("v1.33.1")], "desired": ["machine": machine("v1.33.4")]])
            #expect(can.json["status"]?.stringValue == "Success")
            let encoded = can.json["machinePatch"]?["patch"]?.stringValue ?? ""
            let patch = Data(base64Encoded: encoded).flatMap { try? JSON.parse(Array($0)) }
            #expect(can.json["machinePatch"]?["patchType"]?.stringValue == "JSONPatch")
            #expect(patch == [["op": "replace", "path": "/spec/version", "value": "v1.33.4"]])

            let minor = try await http.post(
                "\(hooks)/canupdatemachine/kube-sim",
                ["current": ["machine": machine("v1.32.1")], "desired": ["machine": machine("v1.33.4")]])
            #expect(minor.json["machinePatch"] == [:])
            #expect(minor.json["message"]?.stringValue?.contains("minor") == true)

            let update: JSON = ["apiVersion": "hooks.runtime.cluster.x-k8s.io/v1alpha1", "kind": "UpdateMachineRequest", "desired": ["machine": machine("v1.33.4")]]
            let first = try await http.post("\(hooks)/updatemachine/kube-sim", update)
            #expect(first.json["status"]?.stringValue == "Success")
            #expect((first.json["retryAfterSeconds"]?.intValue ?? 0) > 0)
            #expect(try await workload.get("/api/v1/nodes/m1").json[path: ["status", "nodeInfo", "kubeletVersion"]]?.stringValue == "v1.33.1")
            let stillRunning = try await http.post("\(hooks)/updatemachine/kube-sim", update)
            #expect((stillRunning.json["retryAfterSeconds"]?.intValue ?? 0) > 0)
            let completed = try await http.post("/_sim/in-place-complete", ["cluster": "default/t1", "node": "m1"])
            #expect(completed.status == 200)
            let done = try await http.post("\(hooks)/updatemachine/kube-sim", update)
            #expect(done.json["retryAfterSeconds"]?.intValue == 0)
            #expect(try await http.post("/_sim/in-place-complete", ["cluster": "default/t1", "node": "m1"]).status == 404)
            let again = try await http.post("\(hooks)/updatemachine/kube-sim", update)
            #expect(again.json["status"]?.stringValue == "Success")
            #expect(try await workload.get("/api/v1/nodes/m1").json[path: ["status", "nodeInfo", "kubeletVersion"]]?.stringValue == "v1.33.4")
            let changes = try await fixture.ledger("cluster=default/t1&resource=nodes&actor=controller/update-extension")
            #expect(changes.count == 1)

            let tooFar = try await http.post("\(hooks)/updatemachine/kube-sim", ["desired": ["machine": machine("v1.34.0")]])
            #expect(tooFar.json["status"]?.stringValue == "Failure")
        }
    }
}
