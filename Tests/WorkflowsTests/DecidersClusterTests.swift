import Engine
import Testing
@testable import Workflows

@Suite struct CreateClusterTests {
    static let input = CreateCluster.Input(
        runID: "create/team-a/alpha", cluster: clusterA, version: "v1.33.4",
        deployments: [CreateCluster.Deployment(name: "alpha-md-0", replicas: 3), CreateCluster.Deployment(name: "alpha-md-1", replicas: 3)],
        pollIntervalMilliseconds: 500)

    static let allDeciders: [any Workflow.Type] = [
        CreateCluster.self, ProvisionMachine.self, DeleteCluster.self, DeleteMachine.self, ControlPlaneUpgradeStep.self,
    ]

    @Test("CreateCluster: order: control plane Ready and kubeconfig before any machine, then all machines at once")
    func order() {
        // Goal: no machine is asked for before the control plane runs the version. Method: decide
        // after each milestone.
        let start = Given.started(CreateCluster.type, Self.input)
        let created = [start] + Given.ran("controlplane-create", Activities.ControlPlaneCreated(created: true))
            + [Given.timerStarted("controlplane-deadline")]
        let provisioning = created
            + Given.ran(
                "controlplane-read-1",
                Activities.ControlPlaneObservation(exists: true, installedVersion: nil, status: "Provisioning"))
        #expect(replayed(CreateCluster.self, (provisioning)) == [.startTimer(id: "controlplane-wait-1", after: .milliseconds(500))])
        let ready = provisioning + Given.waited("controlplane-wait-1")
            + Given.ran("controlplane-read-2", Activities.ControlPlaneObservation(exists: true, installedVersion: "v1.33.4", status: "Ready"))
        #expect(activityIDs(replayed(CreateCluster.self, (ready))) == ["kubeconfig"])
        let withKubeconfig = ready + Given.ran("kubeconfig", Activities.AdminKubeconfig(secretName: "alpha-admin-kubeconfig"))
        let children = replayed(CreateCluster.self, (withKubeconfig)).compactMap { command -> ChildRequest? in
            if case .startChild(let child) = command { child } else { nil }
        }
        #expect(children.map(\.workflowID) == [
            "create/team-a/alpha/provision/alpha-md-0-1", "create/team-a/alpha/provision/alpha-md-0-2",
            "create/team-a/alpha/provision/alpha-md-0-3", "create/team-a/alpha/provision/alpha-md-1-1",
            "create/team-a/alpha/provision/alpha-md-1-2", "create/team-a/alpha/provision/alpha-md-1-3",
        ])
        let first = children.first.flatMap { try? Activities.decode(ProvisionMachine.Input.self, from: $0.input) }
        #expect(first?.kubeletVersion == "v1.33.4")
        #expect(first?.deployment == "alpha-md-0")
    }

    @Test("CreateCluster: run: 2 deployments x 3 machines, each VM created once, idempotent at every step") func fullRun() throws {
        let fleet = FakeFleet()
        let simulation = DeciderSimulation(Self.allDeciders, fleet: fleet)
        let end = simulation.run(Self.input.runID, type: CreateCluster.type, input: Activities.encode(Self.input))
        guard case .workflowCompleted(let text) = end else { Issue.record("ended \(String(describing: end))"); return }
        let output = try Activities.decode(CreateCluster.Output.self, from: text)
        #expect(output.machines.count == 6)
        #expect(output.adminKubeconfigSecretName == "admin-kubeconfig")
        #expect(fleet.count("vm.create") == 6)
        #expect(Set(fleet.effects.filter { $0.hasPrefix("vm.create") }).count == 6)
        #expect(fleet.count("controlPlane.create") == 1)
        // The control plane was created before any bootstrap.
        #expect(fleet.effects.first == "controlPlane.create v1.33.4")
        let history = try #require(simulation.histories[Self.input.runID])
        for end in 1...history.count { expectIdempotent(CreateCluster.self, Array(history.prefix(end))) }
    }

    @Test("CreateCluster: failure: a machine whose Node never gets Ready fails the cluster, naming the machine") func machineFails() {
        let fleet = FakeFleet()
        fleet.neverReady = ["alpha-md-1-2"]
        var input = Self.input
        input.nodeStartupTimeoutSeconds = 60
        let simulation = DeciderSimulation(Self.allDeciders, fleet: fleet)
        let end = simulation.run(input.runID, type: CreateCluster.type, input: Activities.encode(input))
        guard case .workflowFailed(let reason) = end else { Issue.record("ended \(String(describing: end))"); return }
        #expect(reason.contains("1 machine(s) failed"))
        #expect(reason.contains("machine alpha-md-1-2: Node did not join and become Ready within 60s"))
    }
}

@Suite struct DeleteMachineTests {
    static let input = DeleteMachine.Input(cluster: clusterA, machine: "alpha-md-0-1", drain: true, drainTimeoutSeconds: 300)

    @Test("DeleteMachine: order: drain, then the VM, then the Node") func order() {
        let start = Given.started(DeleteMachine.type, Self.input)
        let first = replayed(DeleteMachine.self, ([start]))
        #expect(activityIDs(first) == ["drain"])
        #expect(askedInput(first, "drain", as: Activities.DrainInput.self)?.timeoutSeconds == 300)
        #expect(request(first, "drain")?.retry == DeciderRetry.drain)
        let drained = [start] + Given.ran("drain", Activities.DrainOutput(drained: true, timedOut: false))
        #expect(activityIDs(replayed(DeleteMachine.self, (drained))) == ["vm-delete"])
        let vmGone = drained + Given.ran("vm-delete", Activities.Deleted(alreadyGone: false))
        #expect(activityIDs(replayed(DeleteMachine.self, (vmGone))) == ["node-delete"])
    }

    @Test("DeleteMachine: drain: a drain that timed out with pods blocked still deletes, and says so") func drainTimeout() {
        let history = [Given.started(DeleteMachine.type, Self.input)]
            + Given.ran("drain", Activities.DrainOutput(drained: false, timedOut: true, blocked: ["shop/db-0"]))
            + Given.ran("vm-delete", Activities.Deleted(alreadyGone: false)) + Given.ran("node-delete", Activities.Deleted(alreadyGone: true))
        let output = completion(replayed(DeleteMachine.self, (history)), as: DeleteMachine.Output.self)
        #expect(output == DeleteMachine.Output(machine: "alpha-md-0-1", drained: false, drainTimedOut: true, blocked: ["shop/db-0"]))
    }

    @Test("DeleteMachine: drain: skipped when the input says so (the whole cluster goes)") func noDrain() {
        var input = Self.input
        input.drain = false
        #expect(activityIDs(replayed(DeleteMachine.self, ([Given.started(DeleteMachine.type, input)]))) == ["vm-delete"])
    }
}

@Suite struct DeleteClusterTests {
    @Test("DeleteCluster: order: every machine gone before the control plane; idempotent at every step") func order() throws {
        let fleet = FakeFleet()
        let create = CreateClusterTests.input
        let simulation = DeciderSimulation(CreateClusterTests.allDeciders, fleet: fleet)
        simulation.run(create.runID, type: CreateCluster.type, input: Activities.encode(create))
        let machines = ["alpha-md-0-1", "alpha-md-0-2", "alpha-md-0-3", "alpha-md-1-1", "alpha-md-1-2", "alpha-md-1-3"]
        let input = DeleteCluster.Input(runID: "delete/team-a/alpha", cluster: clusterA, machines: machines)
        let end = simulation.run(input.runID, type: DeleteCluster.type, input: Activities.encode(input))
        guard case .workflowCompleted = end else { Issue.record("ended \(String(describing: end))"); return }
        let teardown = fleet.effects.drop { !$0.hasPrefix("vm.delete") }
        #expect(teardown.last == "controlPlane.delete")
        #expect(teardown.filter { $0.hasPrefix("vm.delete") }.count == 6)
        #expect(!teardown.contains { $0.hasPrefix("drain") })
        let history = try #require(simulation.histories[input.runID])
        for end in 1...history.count { expectIdempotent(DeleteCluster.self, Array(history.prefix(end))) }
    }

    @Test("DeleteCluster: failure: a machine that cannot be deleted keeps the control plane") func keepsControlPlane() {
        let input = DeleteCluster.Input(runID: "d", cluster: clusterA, machines: ["m-1"])
        let history = [
            Given.started(DeleteCluster.type, input), .childStarted(childID: "d/delete/m-1", type: DeleteMachine.type),
            .childFailed(childID: "d/delete/m-1", reason: "failed: vm.delete rejected"),
        ]
        let commands = replayed(DeleteCluster.self, (history))
        #expect(activityIDs(commands).isEmpty)
        #expect(failure(commands)?.contains("1 machine(s) not deleted") == true)
    }
}

/// A decider that forgets what it asked: it asks for the same timer however often it starts.
private enum ForgetfulTimer: Workflow {
    static let type = "ForgetfulTimer"
    static let version = 1
    static var initial: Int { 0 }
    static func evolve(_ state: Int, _ event: WorkflowEvent, at _: Timestamp) -> Int { state + 1 }
    static func decide(_ state: Int) -> [WorkflowCommand] { [.startTimer(id: "t", after: .seconds(1))] }
}

@Suite struct DeciderCheckTests {
    @Test("Deciders: idempotency check: catches a decider that asks again after the acknowledgement") func catchesRepeat() {
        // Goal: the check every decider test relies on can fail. Method: feed it a decider that
        // never looks at its state, and expect exactly the issue it must record.
        withKnownIssue("ForgetfulTimer asks for timer t again") {
            expectIdempotent(ForgetfulTimer.self, [.workflowStarted(WorkflowStart(type: "ForgetfulTimer", deciderVersion: 1, input: ""))])
        }
    }
}
