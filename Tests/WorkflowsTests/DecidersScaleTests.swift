import Engine
import Fleet
import Testing
@testable import Workflows

@Suite struct ScaleMachineDeploymentTests {
    static let deciders: [any Workflow.Type] = [ScaleMachineDeployment.self, ProvisionMachine.self, DeleteMachine.self]

    static func machine(_ n: Int, healthy: Bool = true, marked: Bool = false) -> RolloutMachine {
        RolloutMachine(
            name: "alpha-md-0-\(n)", isUpToDate: true, isReady: healthy, isHealthy: healthy, isMarkedForDeletion: marked,
            createdAt: Timestamp(nanoseconds: Int64(n) * 1_000_000_000))
    }

    static func input(replicas: Int, machines: [RolloutMachine], order: DeletionOrder = .oldest) -> ScaleMachineDeployment.Input {
        ScaleMachineDeployment.Input(
            runID: "scale/alpha-md-0", cluster: clusterA, deployment: "alpha-md-0", replicas: replicas, version: "v1.34.3",
            machines: machines, deletionOrder: order, pollIntervalMilliseconds: 100)
    }

    @Test("ScaleMachineDeployment: up: new machines at the next ordinals, at the control plane's version, all at once")
    func up() throws {
        let input = Self.input(replicas: 4, machines: [Self.machine(1), Self.machine(2)])
        let commands = ScaleMachineDeployment.decide(try ScaleMachineDeployment.replay([Given.started(ScaleMachineDeployment.type, input)]))
        let children = commands.compactMap { if case .startChild(let child) = $0 { child } else { nil } }
        #expect(children.map(\.workflowID) == ["scale/alpha-md-0/provision/alpha-md-0-3", "scale/alpha-md-0/provision/alpha-md-0-4"])
        let first = try Activities.decode(ProvisionMachine.Input.self, from: children[0].input)
        #expect(first.kubeletVersion == "v1.34.3")
        let fleet = FakeFleet()
        let simulation = DeciderSimulation(Self.deciders, fleet: fleet)
        let end = simulation.run(input.runID, type: ScaleMachineDeployment.type, input: Activities.encode(input))
        guard case .workflowCompleted(let text) = end else { Issue.record("ended \(String(describing: end))"); return }
        let output = try Activities.decode(ScaleMachineDeployment.Output.self, from: text)
        #expect(output.machines == ["alpha-md-0-1", "alpha-md-0-2", "alpha-md-0-3", "alpha-md-0-4"])
        #expect(fleet.count("vm.create") == 2)
        let history = try #require(simulation.histories[input.runID])
        for end in 1...history.count { expectIdempotent(ScaleMachineDeployment.self, Array(history.prefix(end))) }
    }

    @Test("ScaleMachineDeployment: down: CAPI's order: delete-machine annotation, then unhealthy, then the policy (Oldest)")
    func downOrder() throws {
        // 5 → 2: the marked 4, the unhealthy 5, then the oldest healthy one, 1.
        let machines = [Self.machine(1), Self.machine(2), Self.machine(3), Self.machine(4, marked: true), Self.machine(5, healthy: false)]
        let input = Self.input(replicas: 2, machines: machines)
        #expect(ScaleMachineDeployment.action(input).delete == ["alpha-md-0-4", "alpha-md-0-5", "alpha-md-0-1"])
        let fleet = FakeFleet()
        let simulation = DeciderSimulation(Self.deciders, fleet: fleet)
        let end = simulation.run(input.runID, type: ScaleMachineDeployment.type, input: Activities.encode(input))
        guard case .workflowCompleted(let text) = end else { Issue.record("ended \(String(describing: end))"); return }
        #expect(try Activities.decode(ScaleMachineDeployment.Output.self, from: text).machines == ["alpha-md-0-2", "alpha-md-0-3"])
        // Every victim drained before its VM went.
        for victim in ["alpha-md-0-4", "alpha-md-0-5", "alpha-md-0-1"] {
            let drain = try #require(fleet.effects.firstIndex(of: "drain \(victim)"))
            let vm = try #require(fleet.effects.firstIndex(of: "vm.delete \(victim)"))
            #expect(drain < vm)
        }
    }

    @Test("ScaleMachineDeployment: input: negative replicas fail with a clear reason and touch nothing") func negative() throws {
        let input = Self.input(replicas: -1, machines: [Self.machine(1)])
        let commands = ScaleMachineDeployment.decide(try ScaleMachineDeployment.replay([Given.started(ScaleMachineDeployment.type, input)]))
        #expect(activityIDs(commands).isEmpty)
        #expect(failure(commands) == "MachineDeployment alpha-md-0: replicas -1 is negative")
    }
}
