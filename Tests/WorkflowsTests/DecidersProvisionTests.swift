import Engine
import Testing
@testable import Workflows

let clusterA = Activities.ClusterRef(namespace: "team-a", name: "alpha")

@Suite struct ProvisionMachineTests {
    static let input = ProvisionMachine.Input(
        cluster: clusterA, deployment: "alpha-md-0", machine: "alpha-md-0-1", kubeletVersion: "v1.33.4",
        nodeStartupTimeoutSeconds: 600, pollIntervalMilliseconds: 1000)
    static let start = Given.started(ProvisionMachine.type, input)
    static let booted = Given.ran("bootstrap", Activities.BootstrapOutput(userdataSecretName: "alpha-md-0-1-userdata", tokenID: "abcdef"))
    static let created = Given.ran("vm-create", Activities.VirtualMachineCreated(created: true))
    static let vmReady = Given.ran("vm-read-1", Activities.VirtualMachineObservation(exists: true, ready: true, printableStatus: "Running"))

    @Test("ProvisionMachine: order: bootstrap first, at the control plane's kubelet version") func bootstrapFirst() {
        // Goal: nothing is created before the bootstrap data exists. Method: decide on the start alone.
        let commands = replayed(ProvisionMachine.self, ([Self.start]))
        #expect(activityIDs(commands) == ["bootstrap"])
        let asked = askedInput(commands, "bootstrap", as: Activities.BootstrapInput.self)
        #expect(asked == Activities.BootstrapInput(cluster: clusterA, machine: "alpha-md-0-1", kubeletVersion: "v1.33.4"))
    }

    @Test("ProvisionMachine: order: the VM uses the userdata Secret bootstrap made") func vmAfterBootstrap() {
        let commands = replayed(ProvisionMachine.self, ([Self.start] + Self.booted))
        #expect(activityIDs(commands) == ["vm-create"])
        let vm = askedInput(commands, "vm-create", as: Activities.VirtualMachineInput.self)
        #expect(vm?.userdataSecretName == "alpha-md-0-1-userdata")
        #expect(vm?.deployment == "alpha-md-0")
        #expect(vm?.machine == "alpha-md-0-1")
    }

    @Test("ProvisionMachine: waiting: a VM not yet running is read again after the poll interval") func vmPoll() {
        // Goal: the wait is a timer between reads, never a busy loop. Method: fold a not-ready read.
        let afterCreate = [Self.start] + Self.booted + Self.created
        let first = replayed(ProvisionMachine.self, (afterCreate))
        #expect(first.contains(.startTimer(id: "startup-deadline", after: .seconds(600))))
        #expect(activityIDs(first) == ["vm-read-1"])
        let notReady = afterCreate + [Given.timerStarted("startup-deadline")]
            + Given.ran("vm-read-1", Activities.VirtualMachineObservation(exists: true, ready: false, printableStatus: "Starting"))
        #expect(replayed(ProvisionMachine.self, (notReady)) == [.startTimer(id: "vm-wait-1", after: .seconds(1))])
        let waited = notReady + Given.waited("vm-wait-1")
        #expect(activityIDs(replayed(ProvisionMachine.self, (waited))) == ["vm-read-2"])
    }

    @Test("ProvisionMachine: timeout: no Ready Node within nodeStartupTimeout fails, naming what it saw") func startupTimeout() {
        let history = [Self.start] + Self.booted + Self.created + [Given.timerStarted("startup-deadline")] + Self.vmReady
            + Given.ran("node-read-1", Activities.NodeObservation(exists: true, ready: "False", reason: "KubeletNotReady"))
            + [Given.timerStarted("node-wait-1"), Given.fired("startup-deadline")]
        let reason = failure(replayed(ProvisionMachine.self, (history)))
        #expect(reason?.contains("within 600s") == true)
        #expect(reason?.contains("Ready=False (KubeletNotReady)") == true)
        // Before the deadline fires the same history only waits.
        let before = Array(history.dropLast())
        #expect(failure(replayed(ProvisionMachine.self, (before))) == nil)
    }

    @Test("ProvisionMachine: providerID: set as CAPK does when the Node lacks it, skipped when present") func providerID() {
        let toNode = [Self.start] + Self.booted + Self.created + [Given.timerStarted("startup-deadline")] + Self.vmReady
        let bare = toNode + Given.ran("node-read-1", Activities.NodeObservation(exists: true, ready: "True", kubeletVersion: "v1.33.4"))
        #expect(activityIDs(replayed(ProvisionMachine.self, (bare))) == ["provider-id"])
        let set = bare + Given.ran("provider-id", Activities.ProviderIDSet(providerID: "kubevirt://alpha-md-0-1"))
        let output = completion(replayed(ProvisionMachine.self, (set)), as: ProvisionMachine.Output.self)
        #expect(output == ProvisionMachine.Output(machine: "alpha-md-0-1", providerID: "kubevirt://alpha-md-0-1", kubeletVersion: "v1.33.4"))
        let already = toNode
            + Given.ran(
                "node-read-1",
                Activities.NodeObservation(exists: true, ready: "True", kubeletVersion: "v1.33.4", providerID: "kubevirt://alpha-md-0-1"))
        let commands = replayed(ProvisionMachine.self, (already))
        #expect(activityIDs(commands).isEmpty)
        #expect(completion(commands, as: ProvisionMachine.Output.self) != nil)
    }

    @Test("ProvisionMachine: failure: a bootstrap refused for good fails the run with the executor's reason") func bootstrapRefused() {
        let history = [Self.start, Given.scheduled("bootstrap"), Given.failed("bootstrap", kind: "notOurs", message: "Secret held by another key")]
        let reason = failure(replayed(ProvisionMachine.self, (history)))
        #expect(reason?.contains("notOurs: Secret held by another key") == true)
        // A failure that will be retried is not the end.
        let retrying = [Self.start, Given.scheduled("bootstrap"), Given.failed("bootstrap", kind: "transient", final: false)]
        #expect(replayed(ProvisionMachine.self, (retrying)).isEmpty)
    }

    @Test("ProvisionMachine: input: an input that does not decode fails the run naming the type") func badInput() {
        let start = WorkflowEvent.workflowStarted(WorkflowStart(type: ProvisionMachine.type, deciderVersion: 1, input: "{\"machine\":1}"))
        let reason = failure(replayed(ProvisionMachine.self, ([start])))
        #expect(reason?.contains("input is not Input") == true)
    }

    @Test("ProvisionMachine: run: against a fake cluster each effect happens once, and decide is idempotent at every step")
    func fullRun() throws {
        // Goal: the whole walk, and idempotency after every event of it. Method: run the decider
        // in the simulation, then re-check every prefix of its history.
        let fleet = FakeFleet()
        let simulation = DeciderSimulation([ProvisionMachine.self], fleet: fleet)
        let end = simulation.run("pm-1", type: ProvisionMachine.type, input: Activities.encode(Self.input))
        guard case .workflowCompleted = end else { Issue.record("ended \(String(describing: end))"); return }
        #expect(fleet.effects == ["bootstrap alpha-md-0-1 v1.33.4", "vm.create alpha-md-0-1", "providerID alpha-md-0-1"])
        let history = try #require(simulation.histories["pm-1"])
        for end in 1...history.count { expectIdempotent(ProvisionMachine.self, Array(history.prefix(end))) }
    }
}

@Suite struct ControlPlaneUpgradeStepTests {
    static let input = ControlPlaneUpgradeStep.Input(cluster: clusterA, version: "v1.34.2", timeoutSeconds: 900, pollIntervalMilliseconds: 500)
    static let start = Given.started(ControlPlaneUpgradeStep.type, input)
    static let set = Given.ran("set-version", Activities.ControlPlaneVersionSet(requested: "v1.34.2"))

    static func observed(_ n: Int, installed: String, status: String) -> [WorkflowEvent] {
        Given.ran(
            "observe-read-\(n)",
            Activities.ControlPlaneObservation(exists: true, installedVersion: installed, status: status, requestedVersion: "v1.34.2"))
    }

    @Test("ControlPlaneUpgradeStep: order: sets the version before reading") func setFirst() {
        let commands = replayed(ControlPlaneUpgradeStep.self, ([Self.start]))
        #expect(activityIDs(commands) == ["set-version"])
        #expect(askedInput(commands, "set-version", as: Activities.ControlPlaneVersionInput.self)?.version == "v1.34.2")
    }

    @Test("ControlPlaneUpgradeStep: done: only when installed equals the step AND status is Ready") func doneNeedsBoth() {
        // Goal: neither half alone ends the step (Kamaji reports Ready at the old version before
        // it starts, and the new version while Upgrading never). Broken on purpose once by making
        // the poll's condition `status == "Ready"` alone: the first expectation then failed.
        let base = [Self.start] + Self.set + [Given.timerStarted("deadline")]
        let oldReady = base + Self.observed(1, installed: "v1.33.4", status: "Ready")
        #expect(replayed(ControlPlaneUpgradeStep.self, (oldReady)) == [.startTimer(id: "observe-wait-1", after: .milliseconds(500))])
        let newUpgrading = base + Self.observed(1, installed: "v1.34.2", status: "Upgrading")
        #expect(completion(replayed(ControlPlaneUpgradeStep.self, (newUpgrading)), as: ControlPlaneUpgradeStep.Output.self) == nil)
        let done = oldReady + Given.waited("observe-wait-1") + Self.observed(2, installed: "v1.34.2", status: "Ready")
        let output = completion(replayed(ControlPlaneUpgradeStep.self, (done)), as: ControlPlaneUpgradeStep.Output.self)
        #expect(output == ControlPlaneUpgradeStep.Output(installedVersion: "v1.34.2"))
    }

    @Test("ControlPlaneUpgradeStep: timeout: fails naming the version and the last status") func timeout() {
        let history = [Self.start] + Self.set + [Given.timerStarted("deadline")]
            + Self.observed(1, installed: "v1.33.4", status: "Upgrading") + [Given.timerStarted("observe-wait-1"), Given.fired("deadline")]
        let reason = failure(replayed(ControlPlaneUpgradeStep.self, (history)))
        #expect(reason?.contains("not Ready at v1.34.2 within 900s") == true)
        #expect(reason?.contains("installed v1.33.4, status Upgrading") == true)
    }

    @Test("ControlPlaneUpgradeStep: failure: a version the webhook rejects fails the step at once") func rejected() {
        let fleet = FakeFleet()
        fleet.controlPlaneExists = true
        fleet.refusedVersions = ["v1.34.2"]
        let simulation = DeciderSimulation([ControlPlaneUpgradeStep.self], fleet: fleet)
        let end = simulation.run("step", type: ControlPlaneUpgradeStep.type, input: Activities.encode(Self.input))
        guard case .workflowFailed(let reason) = end else { Issue.record("ended \(String(describing: end))"); return }
        #expect(reason.contains("rejected: webhook refused v1.34.2"))
        #expect(simulation.calls.count == 1)
    }

    @Test("ControlPlaneUpgradeStep: run: one version apply, idempotent at every step") func fullRun() throws {
        let fleet = FakeFleet()
        fleet.controlPlaneExists = true
        fleet.installedVersion = "v1.33.4"
        fleet.controlPlaneReadsToReady = 3
        let simulation = DeciderSimulation([ControlPlaneUpgradeStep.self], fleet: fleet)
        let end = simulation.run("step", type: ControlPlaneUpgradeStep.type, input: Activities.encode(Self.input))
        guard case .workflowCompleted = end else { Issue.record("ended \(String(describing: end))"); return }
        #expect(fleet.count("controlPlane.setVersion") == 1)
        #expect(fleet.controlPlaneReads == 3)
        let history = try #require(simulation.histories["step"])
        for end in 1...history.count { expectIdempotent(ControlPlaneUpgradeStep.self, Array(history.prefix(end))) }
    }
}
