import Engine
import Fleet
import Testing
@testable import Workflows

@Suite struct InPlaceUpgradeTests {
    static let deciders: [any Workflow.Type] = [InPlaceUpgrade.self, ProvisionMachine.self, DeleteMachine.self]
    static let machines = ["alpha-md-0-1", "alpha-md-0-2", "alpha-md-0-3"]

    static func input(to version: String = "v1.33.5", unavailable: Int = 1) -> InPlaceUpgrade.Input {
        InPlaceUpgrade.Input(
            runID: "inplace/alpha-md-0", cluster: clusterA, deployment: "alpha-md-0", fromVersion: "v1.33.4", toVersion: version,
            machines: machines, maxUnavailable: .count(unavailable), pollIntervalMilliseconds: 100)
    }

    @Test("InPlaceUpgrade: order: asks CanUpdateMachine, then polls UpdateMachine at its retryAfter") func asksThenPolls() {
        let start = Given.started(InPlaceUpgrade.type, Self.input())
        let first = replayed(InPlaceUpgrade.self, ([start]))
        // maxUnavailable 1: one machine at a time.
        #expect(activityIDs(first) == ["alpha-md-0-1/can-update"])
        let yes = [start] + Given.ran("alpha-md-0-1/can-update", Activities.CanUpdateOutput(inPlace: true, message: "ok"))
        #expect(activityIDs(replayed(InPlaceUpgrade.self, (yes))) == ["alpha-md-0-1/update-1"])
        let busy = yes + Given.ran("alpha-md-0-1/update-1", Activities.UpdateOutput(state: .inProgress, retryAfterSeconds: 30))
        #expect(replayed(InPlaceUpgrade.self, (busy)) == [.startTimer(id: "alpha-md-0-1/update-wait-1", after: .seconds(30))])
        let again = busy + Given.waited("alpha-md-0-1/update-wait-1")
        #expect(activityIDs(replayed(InPlaceUpgrade.self, (again))) == ["alpha-md-0-1/update-2"])
        let done = again + Given.ran("alpha-md-0-1/update-2", Activities.UpdateOutput(state: .done))
        #expect(activityIDs(replayed(InPlaceUpgrade.self, (done))) == ["alpha-md-0-2/can-update"])
    }

    @Test("InPlaceUpgrade: run: all in place, none replaced, idempotent at every step") func allInPlace() throws {
        let fleet = FakeFleet()
        let simulation = DeciderSimulation(Self.deciders, fleet: fleet)
        let input = Self.input()
        let end = simulation.run(input.runID, type: InPlaceUpgrade.type, input: Activities.encode(input))
        guard case .workflowCompleted(let text) = end else { Issue.record("ended \(String(describing: end))"); return }
        let output = try Activities.decode(InPlaceUpgrade.Output.self, from: text)
        #expect(output.results.map(\.outcome) == [.inPlace, .inPlace, .inPlace])
        #expect(output.machines == Self.machines)
        #expect(fleet.count("update") == 3)
        #expect(fleet.count("vm.create") == 0)
        let history = try #require(simulation.histories[input.runID])
        for end in 1...history.count { expectIdempotent(InPlaceUpgrade.self, Array(history.prefix(end))) }
    }

    @Test("InPlaceUpgrade: fallback: a decline and a failed update are replaced, with the reason recorded") func fallback() throws {
        // Goal: CAPI leaves a failed in-place update to remediation; Capstan replaces it and says why.
        let fleet = FakeFleet()
        fleet.inPlaceDeclined = ["alpha-md-0-2"]
        fleet.inPlaceFailing = ["alpha-md-0-3"]
        let simulation = DeciderSimulation(Self.deciders, fleet: fleet)
        let input = Self.input()
        let end = simulation.run(input.runID, type: InPlaceUpgrade.type, input: Activities.encode(input))
        guard case .workflowCompleted(let text) = end else { Issue.record("ended \(String(describing: end))"); return }
        let output = try Activities.decode(InPlaceUpgrade.Output.self, from: text)
        #expect(output.results.map(\.outcome) == [.inPlace, .replaced, .replaced])
        #expect(output.results[1].reason == "the update extension declined: image change needs a reboot")
        #expect(output.results[2].reason == "the in-place update failed: kubelet did not restart")
        #expect(output.machines == ["alpha-md-0-1", "alpha-md-0-5", "alpha-md-0-6"])
        // The replacement is Ready before the old machine drains.
        let created = try #require(fleet.effects.firstIndex(of: "providerID alpha-md-0-5"))
        let drained = try #require(fleet.effects.firstIndex(of: "drain alpha-md-0-2"))
        #expect(created < drained)
        #expect(simulation.inputs(of: Activities.createVirtualMachine, as: Activities.VirtualMachineInput.self).map(\.machine) == ["alpha-md-0-5", "alpha-md-0-6"])
    }

    @Test("InPlaceUpgrade: fallback: under OnDelete a decline fails the run instead of replacing") func onDelete() {
        let fleet = FakeFleet()
        fleet.inPlaceDeclined = ["alpha-md-0-1"]
        var input = Self.input()
        input.replaceOnFallback = false
        let simulation = DeciderSimulation(Self.deciders, fleet: fleet)
        let end = simulation.run(input.runID, type: InPlaceUpgrade.type, input: Activities.encode(input))
        guard case .workflowFailed(let reason) = end else { Issue.record("ended \(String(describing: end))"); return }
        #expect(reason.contains("allows no replacement"))
        #expect(fleet.count("vm.create") == 0)
        // Nothing after the failed machine was started.
        #expect(fleet.count("update") == 0)
    }

    @Test("InPlaceUpgrade: minor: a minor release is never asked for in place; the machine is replaced") func minorReplaced() {
        let start = Given.started(InPlaceUpgrade.type, Self.input(to: "v1.34.2"))
        let commands = replayed(InPlaceUpgrade.self, ([start]))
        #expect(activityIDs(commands).isEmpty)
        guard case .startChild(let child)? = commands.first else { Issue.record("asked \(commands)"); return }
        #expect(child.type == ProvisionMachine.type)
        #expect(child.workflowID == "inplace/alpha-md-0/provision/alpha-md-0-1")
    }
}
