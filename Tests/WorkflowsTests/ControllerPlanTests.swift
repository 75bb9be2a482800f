import Engine
import EventLog
import Fleet
import Foundation
import Testing
import Workflows

/// Given desired state, an observation and the running workflows, then the starts: the fleet
/// controller's pure plan (FleetController.plan) and its fold of desired state (DesiredFleet).
@Suite struct ControllerPlanTests {
    static func v(_ text: String) -> KubernetesVersion { try! KubernetesVersion(parsing: text) }

    static let catalog = try! VersionCatalog(versions: ["v1.30.4", "v1.31.2", "v1.32.1", "v1.33.0", "v1.33.2", "v1.34.0", "v1.35.0", "v1.36.0"].map(v))

    static func desired(version: String = "v1.33.0", mdVersion: String? = "v1.33.0", replicas: Int = 3) -> DesiredCluster {
        DesiredCluster(
            namespace: "default", name: "c1", version: v(version), catalog: catalog,
            deployments: [
                .init(name: "c1-md-0", replicas: replicas, version: mdVersion.map(v), strategy: .default, revision: 7)
            ],
            createdRevision: 3, versionRevision: 5)
    }

    static func observed(controlPlane: String? = "v1.33.0", ready: Bool = true, machines: [String: String] = [:]) -> ObservedCluster {
        var observed = ObservedCluster(
            controlPlane: controlPlane.map { .init(installedVersion: v($0), status: ready ? "Ready" : "Upgrading", ready: ready) })
        for (name, version) in machines {
            observed.machines[name] = .init(
                deployment: "c1-md-0", phase: "Running", version: v(version), conditions: ["Ready": .init(status: "True")])
        }
        return observed
    }

    static func three(_ version: String) -> [String: String] { ["c1-md-0-1": version, "c1-md-0-2": version, "c1-md-0-3": version] }

    @Test("Controller: plan: a new cluster (no control plane observed) → CreateCluster named by the Cluster's creation")
    func create() throws {
        let starts = FleetController.plan(desired: Self.desired(), observed: ObservedCluster(), running: [])
        #expect(starts.map(\.workflowID) == ["create/default/c1/r3"])
        #expect(starts.first?.type == CreateCluster.type)
        #expect(starts.first?.uniqueKey == "cluster/default/c1")
        let input = try Activities.decode(CreateCluster.Input.self, from: starts[0].input)
        #expect(input.runID == "create/default/c1/r3")
        #expect(input.version == "v1.33.0")
        #expect(input.deployments.map(\.replicas) == [3])
        // The same status after "Absent" was recorded: the same id (the engine refuses it twice).
        let absent = ObservedCluster(controlPlane: .init(installedVersion: nil, status: FleetController.absent, ready: false))
        #expect(FleetController.plan(desired: Self.desired(), observed: absent, running: []).map(\.workflowID) == ["create/default/c1/r3"])
    }

    @Test("Controller: plan: nothing while a lifecycle workflow of the cluster runs, nothing when paused")
    func runningAndPaused() {
        #expect(FleetController.plan(desired: Self.desired(), observed: ObservedCluster(), running: ["create/default/c1/r3"]).isEmpty)
        var paused = Self.desired()
        paused.paused = true
        #expect(FleetController.plan(desired: paused, observed: ObservedCluster(), running: []).isEmpty)
    }

    @Test("Controller: plan: a desired version above the installed one → ChainedUpgrade with the observed machines")
    func upgrade() throws {
        let starts = FleetController.plan(
            desired: Self.desired(version: "v1.36.0"), observed: Self.observed(machines: Self.three("v1.33.0")), running: [])
        #expect(starts.map(\.workflowID) == ["upgrade/default/c1/r5"])
        let input = try Activities.decode(ChainedUpgrade.Input.self, from: starts[0].input)
        #expect(input.target == "v1.36.0")
        #expect(input.deployments.map(\.machines) == [["c1-md-0-1", "c1-md-0-2", "c1-md-0-3"]])
        #expect(input.deployments.map(\.version) == ["v1.33.0"])
        // Not while the control plane is not Ready (an upgrade of it is in flight elsewhere).
        #expect(FleetController.plan(
            desired: Self.desired(version: "v1.36.0"), observed: Self.observed(ready: false, machines: Self.three("v1.33.0")),
            running: []).isEmpty)
    }

    @Test("Controller: plan: never downgrades (desired below installed, workers below their machines)")
    func neverDown() {
        // Control plane at 1.36, desired 1.33 (the manifest's old version after a `capstan upgrade`).
        let starts = FleetController.plan(
            desired: Self.desired(version: "v1.33.0"), observed: Self.observed(controlPlane: "v1.36.0", machines: Self.three("v1.36.0")),
            running: [])
        #expect(starts.isEmpty)
    }

    @Test("Controller: plan: at the desired version, a replicas change → ScaleMachineDeployment named by the deployment's change")
    func scale() throws {
        let starts = FleetController.plan(
            desired: Self.desired(replicas: 5), observed: Self.observed(machines: Self.three("v1.33.0")), running: [])
        #expect(starts.map(\.workflowID) == ["scale/default/c1/c1-md-0/r7"])
        let input = try Activities.decode(ScaleMachineDeployment.Input.self, from: starts[0].input)
        #expect(input.replicas == 5)
        #expect(input.machines.map(\.name) == ["c1-md-0-1", "c1-md-0-2", "c1-md-0-3"])
        #expect(ScaleMachineDeployment.action(input).create == ["c1-md-0-4", "c1-md-0-5"])
    }

    @Test("Controller: plan: a worker patch change → InPlaceUpgrade; a minor change → RollingUpdate; never above the control plane")
    func workers() throws {
        let patch = FleetController.plan(
            desired: Self.desired(version: "v1.33.2", mdVersion: "v1.33.2"),
            observed: Self.observed(controlPlane: "v1.33.2", machines: Self.three("v1.33.0")), running: [])
        #expect(patch.map(\.type) == [InPlaceUpgrade.type])
        #expect(patch.map(\.workflowID) == ["rollout/default/c1/c1-md-0/r7"])
        let minor = FleetController.plan(
            desired: Self.desired(version: "v1.34.0", mdVersion: "v1.34.0"),
            observed: Self.observed(controlPlane: "v1.34.0", machines: Self.three("v1.33.0")), running: [])
        #expect(minor.map(\.type) == [RollingUpdate.type])
        let input = try Activities.decode(RollingUpdate.Input.self, from: minor[0].input)
        #expect(input.version == "v1.34.0" && input.replicas == 3)
        // Workers newer than the control plane: not started (the skew rule).
        let ahead = FleetController.plan(
            desired: Self.desired(version: "v1.33.0", mdVersion: "v1.34.0"),
            observed: Self.observed(controlPlane: "v1.33.0", machines: Self.three("v1.33.0")), running: [])
        #expect(ahead.isEmpty)
    }

    @Test("Controller: plan: a deleted Cluster with something left → DeleteCluster of every observed machine")
    func delete() throws {
        var deleted = DesiredCluster(namespace: "default", name: "c1", deleted: true, version: nil, createdRevision: 3, deletedRevision: 11)
        let starts = FleetController.plan(desired: deleted, observed: Self.observed(machines: Self.three("v1.33.0")), running: ["x"])
        #expect(starts.map(\.workflowID) == ["delete/default/c1/r11"])
        let input = try Activities.decode(DeleteCluster.Input.self, from: starts[0].input)
        #expect(input.machines == ["c1-md-0-1", "c1-md-0-2", "c1-md-0-3"])
        // Gone already: nothing.
        deleted.deletedRevision = 11
        let gone = ObservedCluster(controlPlane: .init(installedVersion: nil, status: FleetController.absent, ready: false))
        #expect(FleetController.plan(desired: deleted, observed: gone, running: []).isEmpty)
    }

    @Test("Controller: belongs: children of a cluster's workflows match, a cluster with a longer name does not")
    func belongs() {
        #expect(FleetController.belongs("upgrade/default/c1/r5/step-2/controlplane/1", namespace: "default", name: "c1"))
        #expect(!FleetController.belongs("upgrade/default/c10/r5", namespace: "default", name: "c1"))
        #expect(!FleetController.belongs("c1/create", namespace: "default", name: "c1"))
        #expect(FleetController.isTopLevel("upgrade/default/c1/r5"))
        #expect(FleetController.isTopLevel("scale/default/c1/c1-md-0/r7"))
        #expect(!FleetController.isTopLevel("upgrade/default/c1/r5/step-2/controlplane/1"))
        #expect(!FleetController.isTopLevel("create/default/c1/r3/provision/c1-md-0-1"))
    }

    // MARK: the fold of desired state

    static let source = ChangeSource(user: "alice", host: "laptop", atNanoseconds: 1)

    static func applied(_ file: String, _ text: String, on snapshot: inout DesiredSnapshot, fleet: inout DesiredFleet, revision: inout UInt64) throws {
        let operation = FleetOperation(.apply(files: [ManifestFile(name: file, text: text)]), source: source)
        try record(operation, on: &snapshot, fleet: &fleet, revision: &revision)
    }

    static func record(_ operation: FleetOperation, on snapshot: inout DesiredSnapshot, fleet: inout DesiredFleet, revision: inout UInt64) throws {
        let plan = try operation.plan(snapshot)
        for event in plan.events {
            fleet.fold(event, revision: revision)
            revision += 1
            switch event {
            case .objectApplied(let object, _, _, _): snapshot.objects[object.key] = object
            case .objectDeleted(let key, _, _): snapshot.objects[key] = nil
            default: break
            }
        }
    }

    @Test("Controller: desired fold: a MachineDeployment's KubevirtMachineTemplate and KubeadmConfigTemplate reach every machine-making start")
    func templates() throws {
        var snapshot = DesiredSnapshot()
        var fleet = DesiredFleet()
        var revision: UInt64 = 0
        try Self.applied("catalog.yaml", FleetManifests.catalog(), on: &snapshot, fleet: &fleet, revision: &revision)
        try Self.applied("c1.yaml", FleetManifests.cluster("c1", version: "v1.33.0", deployments: 1, replicas: 3), on: &snapshot, fleet: &fleet, revision: &revision)
        let cluster = try #require(fleet.clusters.first)
        let template = try #require(cluster.deployments.first?.template)
        #expect(template.virtualMachine?.value(at: "spec.runStrategy") == "Always")
        #expect(template.virtualMachine?.value(at: "spec.template.spec.domain.memory.guest") == "4Gi")
        #expect(template.virtualMachine?.value(at: "spec.template.spec.volumes")?.arrayValue?.first?.value(at: "containerDisk.image") != nil)
        #expect(template.bootstrap?.kubeletExtraArgs == [.init(name: "node-labels", value: "pool=c1-md-0")])
        // Every workflow that makes machines carries it, down to ProvisionMachine.
        let create = FleetController.plan(desired: cluster, observed: ObservedCluster(), running: [])
        let input = try Activities.decode(CreateCluster.Input.self, from: try #require(create.first).input)
        #expect(input.deployments.first?.template == template)
        var upgrading = cluster
        upgrading.version = Self.v("v1.36.0")
        let upgrade = FleetController.plan(desired: upgrading, observed: Self.observed(machines: Self.three("v1.33.0")), running: [])
        #expect(try Activities.decode(ChainedUpgrade.Input.self, from: try #require(upgrade.first).input).deployments.first?.template == template)
        let scale = FleetController.plan(desired: cluster, observed: Self.observed(machines: ["c1-md-0-1": "v1.33.0"]), running: [])
        #expect(try Activities.decode(ScaleMachineDeployment.Input.self, from: try #require(scale.first).input).template == template)
    }

    @Test("Controller: desired fold: revisions of creation, version (applied or requested), deployment change, deletion")
    func fold() throws {
        var snapshot = DesiredSnapshot()
        var fleet = DesiredFleet()
        var revision: UInt64 = 0
        try Self.applied("catalog.yaml", FleetManifests.catalog(), on: &snapshot, fleet: &fleet, revision: &revision)
        try Self.applied("c1.yaml", FleetManifests.cluster("c1", version: "v1.33.0", deployments: 1, replicas: 3), on: &snapshot, fleet: &fleet, revision: &revision)
        var cluster = try #require(fleet.clusters.first)
        #expect(cluster.version == Self.v("v1.33.0"))
        #expect(cluster.deployments.map(\.replicas) == [3])
        #expect(cluster.healthChecks.count == 1 && cluster.nodeStartupTimeoutSeconds == 600)
        #expect(cluster.catalog?.versions.count == 7)
        let created = cluster.createdRevision
        #expect(cluster.versionRevision >= created)
        // `capstan upgrade` moves the version's revision, and the id with it.
        let before = cluster.versionRevision
        try Self.record(FleetOperation(.upgrade(namespace: "default", cluster: "c1", version: Self.v("v1.36.0")), source: Self.source),
                        on: &snapshot, fleet: &fleet, revision: &revision)
        cluster = try #require(fleet.clusters.first)
        #expect(cluster.version == Self.v("v1.36.0"))
        #expect(cluster.versionRevision > before)
        #expect(cluster.createdRevision == created)
        // A replicas change moves only the deployment's revision.
        let versionRevision = cluster.versionRevision
        try Self.applied("c1.yaml", FleetManifests.cluster("c1", version: "v1.33.0", deployments: 1, replicas: 4), on: &snapshot, fleet: &fleet, revision: &revision)
        cluster = try #require(fleet.clusters.first)
        #expect(cluster.deployments.map(\.replicas) == [4])
        #expect(cluster.deployments[0].revision == revision - 1)
        #expect(cluster.versionRevision == versionRevision)
        // Deleted: known, marked deleted, with the deletion's revision.
        try Self.record(FleetOperation(.deleteCluster(namespace: "default", name: "c1"), source: Self.source),
                        on: &snapshot, fleet: &fleet, revision: &revision)
        cluster = try #require(fleet.clusters.first)
        #expect(cluster.deleted)
        #expect(cluster.deletedRevision != nil && cluster.deletedRevision! > versionRevision)
    }
}
