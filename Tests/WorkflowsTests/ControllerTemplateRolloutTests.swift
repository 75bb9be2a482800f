import Engine
import EventLog
import Fleet
import Foundation
import Testing
import Workflows

/// A change to a MachineDeployment's machine template alone rolls its machines (CAPI's
/// rollout on any template change): the digest of the effective template in the desired
/// state, the digest each machine was made from in the fleet projection, and the controller's
/// plan that compares them.
///
/// Broken on purpose once (the controller's template branch disabled: `stale` always empty):
/// `templateOnly` and `noDowngrade` failed with no start planned; the others passed, as they
/// should (they assert that nothing starts).
@Suite struct ControllerTemplateRolloutTests {
    typealias Plan = ControllerPlanTests

    /// The desired cluster after applying `manifests` (one cluster c1, one MachineDeployment of 3).
    static func fold(_ manifests: [String]) throws -> DesiredCluster {
        var snapshot = DesiredSnapshot()
        var fleet = DesiredFleet()
        var revision: UInt64 = 0
        try Plan.applied("catalog.yaml", FleetManifests.catalog(), on: &snapshot, fleet: &fleet, revision: &revision)
        for text in manifests { try Plan.applied("c1.yaml", text, on: &snapshot, fleet: &fleet, revision: &revision) }
        return try #require(fleet.clusters.first)
    }

    static func manifest(cpuCores: Int = 2, strategy: String = "RollingUpdate", version: String = "v1.33.0") -> String {
        FleetManifests.cluster("c1", version: version, deployments: 1, replicas: 3, cpuCores: cpuCores, strategy: strategy)
    }

    /// Three ready machines at `version`, made from template digest `digests[i]` (nil: not recorded).
    static func observed(controlPlane: String = "v1.33.0", version: String = "v1.33.0", digests: [String?]) -> ObservedCluster {
        var observed = ObservedCluster(controlPlane: .init(installedVersion: Plan.v(controlPlane), status: "Ready", ready: true))
        for (index, digest) in digests.enumerated() {
            observed.machines["c1-md-0-\(index + 1)"] = .init(
                deployment: "c1-md-0", phase: "Running", version: Plan.v(version), conditions: ["Ready": .init(status: "True")],
                templateDigest: digest)
        }
        return observed
    }

    @Test("Template: the digest covers the VM and bootstrap template specs, is stable, and a change of either moves it and its revision")
    func digest() throws {
        let first = try Self.fold([Self.manifest()])
        let deployment = try #require(first.deployments.first)
        let digest = try #require(deployment.templateDigest)
        #expect(digest.count == 32 && digest.allSatisfy(\.isHexDigit))
        #expect(digest != MachineTemplateDigest.none)
        // The same manifests applied again: the same digest (nothing recorded, nothing moves).
        let again = try Self.fold([Self.manifest(), Self.manifest()])
        #expect(again.deployments.first?.templateDigest == digest)
        #expect(again.deployments.first?.templateRevision == deployment.templateRevision)
        // The VM's cpu changed (the KubevirtMachineTemplate alone): another digest, a later revision.
        let cpu = try Self.fold([Self.manifest(), Self.manifest(cpuCores: 4)])
        let changed = try #require(cpu.deployments.first)
        #expect(changed.templateDigest != digest)
        #expect(changed.templateRevision > deployment.templateRevision)
        #expect(changed.revision == deployment.revision, "the MachineDeployment itself did not change")
        // The KubeadmConfigTemplate alone changed: another digest again.
        let bootstrap = try Self.fold([Self.manifest(), Self.manifest().replacingOccurrences(of: "node-labels: pool=c1-md-0", with: "node-labels: pool=c1-md-0,tier=web")])
        #expect(bootstrap.deployments.first?.templateDigest != digest)
        #expect(bootstrap.deployments.first?.templateDigest != changed.templateDigest)
        // Only the MachineDeployment's replicas changed: the template's digest stays.
        let scaled = try Self.fold([Self.manifest(), FleetManifests.cluster("c1", version: "v1.33.0", deployments: 1, replicas: 4)])
        #expect(scaled.deployments.first?.templateDigest == digest)
        // Canonical: key order does not matter, the value does.
        let a = MachineTemplateDigest.of(infrastructure: .object(["x": .integer(1), "y": .string("a")]), bootstrap: nil)
        let b = MachineTemplateDigest.of(infrastructure: .object(["y": .string("a"), "x": .integer(1)]), bootstrap: nil)
        #expect(a == b)
        #expect(a != MachineTemplateDigest.of(infrastructure: nil, bootstrap: .object(["x": .integer(1), "y": .string("a")])))
    }

    @Test("Template: only the template changed → RollingUpdate of every machine, named by the template's change; nothing when nothing changed")
    func templateOnly() throws {
        let before = try #require(try Self.fold([Self.manifest()]).deployments.first?.templateDigest)
        let desired = try Self.fold([Self.manifest(), Self.manifest(cpuCores: 4)])
        let deployment = try #require(desired.deployments.first)
        let current = try #require(deployment.templateDigest)
        // Nothing changed: every machine made from the current template.
        #expect(FleetController.plan(desired: desired, observed: Self.observed(digests: [current, current, current]), running: []).isEmpty)
        // The template changed under them (versions all equal): one rolling update.
        let starts = FleetController.plan(desired: desired, observed: Self.observed(digests: [before, before, before]), running: [])
        #expect(starts.map(\.type) == [RollingUpdate.type])
        #expect(starts.map(\.workflowID) == ["rollout/default/c1/c1-md-0/r\(deployment.templateRevision)"])
        #expect(starts.first?.reason.contains("template changed, 3 of 3 machines out of date") == true, "\(starts.first?.reason ?? "")")
        let input = try Activities.decode(RollingUpdate.Input.self, from: try #require(starts.first).input)
        #expect(input.version == "v1.33.0")
        #expect(input.template == deployment.template)
        #expect(input.template?.virtualMachine?.value(at: "spec.template.spec.domain.cpu.cores") == 4)
        #expect(input.machines == ["c1-md-0-1", "c1-md-0-2", "c1-md-0-3"])
        #expect(input.maxSurge == .count(1) && input.maxUnavailable == .count(0), "the deployment's limits, as a version rollout")
        // One machine behind is enough.
        let one = FleetController.plan(desired: desired, observed: Self.observed(digests: [current, before, current]), running: [])
        #expect(one.first?.reason.contains("1 of 3") == true)
        // Not while a lifecycle workflow runs (the same rule as every other start).
        #expect(FleetController.plan(
            desired: desired, observed: Self.observed(digests: [before, before, before]), running: [try #require(starts.first).workflowID]
        ).isEmpty)
    }

    @Test("Template: machines with no digest recorded (made before Capstan recorded them) count as current: no roll on upgrade of Capstan")
    func absentDigest() throws {
        let desired = try Self.fold([Self.manifest(), Self.manifest(cpuCores: 4)])
        #expect(FleetController.plan(desired: desired, observed: Self.observed(digests: [nil, nil, nil]), running: []).isEmpty)
        // A template recorded in an input before digests existed has none: nothing compares.
        var old = desired
        old.deployments[0].template?.digest = nil
        #expect(FleetController.plan(desired: old, observed: Self.observed(digests: ["0123", "0123", "0123"]), running: []).isEmpty)
    }

    @Test("Template: OnDelete never rolls for a template change; the machines stay until someone deletes them")
    func onDelete() throws {
        let before = try #require(try Self.fold([Self.manifest(strategy: "OnDelete")]).deployments.first?.templateDigest)
        let desired = try Self.fold([Self.manifest(strategy: "OnDelete"), Self.manifest(cpuCores: 4, strategy: "OnDelete")])
        #expect(desired.deployments.first?.strategy == .onDelete)
        #expect(desired.deployments.first?.templateDigest != before)
        #expect(FleetController.plan(desired: desired, observed: Self.observed(digests: [before, before, before]), running: []).isEmpty)
        // A replacement (scale back up after a person deleted one) is made from the new template,
        // and the stale machines go first on a scale-down.
        let two = Self.observed(digests: [before, before])
        let scale = FleetController.plan(desired: desired, observed: two, running: [])
        #expect(scale.map(\.type) == [ScaleMachineDeployment.type])
        let input = try Activities.decode(ScaleMachineDeployment.Input.self, from: try #require(scale.first).input)
        #expect(input.template == desired.deployments.first?.template)
        #expect(input.machines.map(\.isUpToDate) == [false, false])
    }

    @Test("Template: a template roll never downgrades: workers above their MachineDeployment's version stay at theirs")
    func noDowngrade() throws {
        // After `capstan upgrade` to 1.36 the manifest still says 1.33; the machines run 1.36.
        let before = try #require(try Self.fold([Self.manifest()]).deployments.first?.templateDigest)
        var desired = try Self.fold([Self.manifest(), Self.manifest(cpuCores: 4)])
        desired.version = Plan.v("v1.36.0")
        let observed = Self.observed(controlPlane: "v1.36.0", version: "v1.36.0", digests: [before, before, before])
        let starts = FleetController.plan(desired: desired, observed: observed, running: [])
        #expect(starts.map(\.type) == [RollingUpdate.type])
        let input = try Activities.decode(RollingUpdate.Input.self, from: try #require(starts.first).input)
        #expect(input.version == "v1.36.0")
        // And the same machines with the current digest: nothing (no version roll down either).
        let current = try #require(desired.deployments.first?.templateDigest)
        let settled = Self.observed(controlPlane: "v1.36.0", version: "v1.36.0", digests: [current, current, current])
        #expect(FleetController.plan(desired: desired, observed: settled, running: []).isEmpty)
    }

    @Test("Template: the digest is observed from the VM's label, recorded once, folded into the projection; old events replay without one")
    func projection() throws {
        let machine = ClusterObservation.Machine(deployment: "c1-md-0", phase: "Running", version: Plan.v("v1.33.0"), conditions: nil,
                                                 templateDigest: "aaaa")
        let observation = ClusterObservation(controlPlane: nil, machines: ["c1-md-0-1": machine])
        let at = Timestamp(nanoseconds: 5)
        let first = observation.changes(from: ObservedCluster(), namespace: "default", cluster: "c1", at: at)
        var observed = ObservedCluster()
        let writes = try FleetProjection.writes(for: first.map { ($0, StreamRevision(0), "test") }, read: { _ in nil })
        for case .put(let key, let value) in writes where key.hasPrefix(FleetStateKey.observedPrefix) {
            observed = try JSONDecoder().decode(ObservedCluster.self, from: Data(value))
        }
        #expect(observed.machines["c1-md-0-1"]?.templateDigest == "aaaa")
        // Read again, unchanged: nothing recorded. A read without the label keeps what is stored.
        #expect(observation.changes(from: observed, namespace: "default", cluster: "c1", at: at).filter {
            if case .machineObserved = $0 { return true } else { return false }
        }.isEmpty)
        var unlabelled = observation
        unlabelled.machines["c1-md-0-1"]?.templateDigest = nil
        #expect(unlabelled.changes(from: observed, namespace: "default", cluster: "c1", at: at).filter {
            if case .machineObserved = $0 { return true } else { return false }
        }.isEmpty)
        // The event round-trips through its stored payload.
        let event = try #require(first.first { if case .machineObserved = $0 { return true } else { return false } })
        let proposed = event.proposedEvent(actor: "test")
        #expect(try FleetEvent.decode(type: proposed.type, schemaVersion: proposed.schemaVersion, payload: proposed.payload) == event)
        // An event recorded before digests existed: the same payload and id as then, decoded with none.
        let old = FleetEvent.machineObserved(namespace: "default", cluster: "c1", machine: "m", deployment: "d", phase: "Running",
                                             version: nil, atNanoseconds: 1)
        let payload = String(decoding: old.proposedEvent(actor: "test").payload, as: UTF8.self)
        #expect(payload == #"{"atNanoseconds":1,"cluster":"c1","deployment":"d","machine":"m","namespace":"default","phase":"Running"}"#)
        guard case .machineObserved(_, _, _, _, _, _, _, let digest)? = try FleetEvent.decode(
            type: "MachineObserved", schemaVersion: 1, payload: Array(payload.utf8))
        else { Issue.record("MachineObserved did not decode"); return }
        #expect(digest == nil)
    }
}
