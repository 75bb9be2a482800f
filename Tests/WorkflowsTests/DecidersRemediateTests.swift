import Engine
import Fleet
import Testing
@testable import Workflows

// Remediate replaces one machine a health check judged unhealthy. Checked by breaking on
// purpose: swapping the two branches of `order` fails "replacement first"; dropping the
// `state.recorded` filter in `decide` fails the idempotence checks (a fact asked again).
@Suite struct RemediateTests {
    static let deciders: [any Workflow.Type] = [Remediate.self, ProvisionMachine.self, DeleteMachine.self]
    static let machines = ["alpha-md-0-1", "alpha-md-0-2", "alpha-md-0-3"]

    static func input(maxSurge: IntOrPercent = .count(1), startup: Int = 600) -> Remediate.Input {
        Remediate.Input(
            runID: "remediate/team-a/alpha/alpha-md-0-2", cluster: clusterA, deployment: "alpha-md-0", check: "alpha-md-0",
            machine: "alpha-md-0-2", reason: UnhealthyReason.unhealthyNode.rawValue,
            message: "condition Ready on the Node has been False for more than 5m0s", version: "v1.34.3", replicas: 3,
            machines: machines, maxSurge: maxSurge, nodeStartupTimeoutSeconds: startup, pollIntervalMilliseconds: 100)
    }

    static func recorded(_ history: [WorkflowEvent]) -> [DomainEvent] {
        history.compactMap { if case .domainEvent(let event) = $0 { event } else { nil } }
    }

    @Test("Remediate: first decision: the reason is recorded and the replacement provisioned, at the next ordinal")
    func first() throws {
        let commands = Remediate.decide(try Remediate.replay([Given.started(Remediate.type, Self.input())]))
        #expect(commands.count == 2)
        guard case .recordEvent(let started)? = commands.first, case .startChild(let child)? = commands.last else {
            Issue.record("asked \(commands)")
            return
        }
        let fact = try started.value(as: Remediate.Started.self)
        #expect(fact.machine == "alpha-md-0-2" && fact.reason == "UnhealthyNode" && fact.replacement == "alpha-md-0-4")
        #expect(fact.order == .replacementFirst)
        #expect(fact.orderReason == "maxSurge 1 allows 4 machines, 3 exist")
        #expect(child.workflowID == "remediate/team-a/alpha/alpha-md-0-2/provision/alpha-md-0-4")
        let provision = try Activities.decode(ProvisionMachine.Input.self, from: child.input)
        #expect(provision.kubeletVersion == "v1.34.3" && provision.deployment == "alpha-md-0")
        expectIdempotent(Remediate.self, [Given.started(Remediate.type, Self.input())])
    }

    @Test("Remediate: replacement first: new machine Ready, then the unhealthy one drained and deleted; facts in order")
    func replacementFirst() throws {
        let fleet = FakeFleet()
        let simulation = DeciderSimulation(Self.deciders, fleet: fleet)
        let input = Self.input()
        let end = simulation.run(input.runID, type: Remediate.type, input: Activities.encode(input))
        guard case .workflowCompleted(let text) = end else { Issue.record("ended \(String(describing: end))"); return }
        let output = try Activities.decode(Remediate.Output.self, from: text)
        #expect(output.machines == ["alpha-md-0-1", "alpha-md-0-3", "alpha-md-0-4"])
        #expect(output.replacement == "alpha-md-0-4" && output.drained)
        #expect(fleet.count("vm.create") == 1)
        let created = try #require(fleet.effects.firstIndex(of: "vm.create alpha-md-0-4"))
        let drained = try #require(fleet.effects.firstIndex(of: "drain alpha-md-0-2"))
        let deleted = try #require(fleet.effects.firstIndex(of: "vm.delete alpha-md-0-2"))
        #expect(created < drained && drained < deleted)
        #expect(!fleet.effects.contains { $0.hasSuffix("alpha-md-0-1") || $0.hasSuffix("alpha-md-0-3") })
        let history = try #require(simulation.histories[input.runID])
        #expect(Self.recorded(history).map(\.name) == [Remediate.started, Remediate.replacementReady, Remediate.machineDeleted])
        for end in 1...history.count { expectIdempotent(Remediate.self, Array(history.prefix(end))) }
    }

    @Test("Remediate: maxSurge 0: the unhealthy machine goes first, and the record says why")
    func deleteFirst() throws {
        let fleet = FakeFleet()
        let simulation = DeciderSimulation(Self.deciders, fleet: fleet)
        let input = Self.input(maxSurge: .count(0))
        let end = simulation.run(input.runID, type: Remediate.type, input: Activities.encode(input))
        guard case .workflowCompleted = end else { Issue.record("ended \(String(describing: end))"); return }
        let deleted = try #require(fleet.effects.firstIndex(of: "vm.delete alpha-md-0-2"))
        let created = try #require(fleet.effects.firstIndex(of: "vm.create alpha-md-0-4"))
        #expect(deleted < created)
        let history = try #require(simulation.histories[input.runID])
        let started = try #require(Self.recorded(history).first).value(as: Remediate.Started.self)
        #expect(started.order == .deleteFirst)
        #expect(started.orderReason == "maxSurge 0 allows 3 machines and 3 exist: no room for a replacement first")
        #expect(Self.recorded(history).map(\.name) == [Remediate.started, Remediate.machineDeleted, Remediate.replacementReady])
    }

    @Test("Remediate: a replacement that never becomes Ready fails the run and leaves the unhealthy machine alone")
    func replacementFails() throws {
        let fleet = FakeFleet()
        fleet.neverReady = ["alpha-md-0-4"]
        let simulation = DeciderSimulation(Self.deciders, fleet: fleet)
        let input = Self.input(startup: 5)
        let end = simulation.run(input.runID, type: Remediate.type, input: Activities.encode(input))
        guard case .workflowFailed(let reason) = end else { Issue.record("ended \(String(describing: end))"); return }
        #expect(reason.contains("alpha-md-0-4") && reason.contains("within 5s"))
        #expect(!fleet.effects.contains("drain alpha-md-0-2"))
        #expect(!fleet.effects.contains("vm.delete alpha-md-0-2"))
    }

    @Test("Remediate: input: a machine that is not the deployment's fails with a clear reason and touches nothing")
    func notOurs() throws {
        var input = Self.input()
        input.machine = "beta-md-0-1"
        let commands = Remediate.decide(try Remediate.replay([Given.started(Remediate.type, input)]))
        #expect(!commands.contains { if case .startChild = $0 { true } else { false } })
        #expect(failure(commands) == "machine beta-md-0-1 is not one of MachineDeployment alpha-md-0's machines")
    }
}
