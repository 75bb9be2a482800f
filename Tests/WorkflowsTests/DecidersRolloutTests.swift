import Engine
import Fleet
import Testing
@testable import Workflows

@Suite struct RollingUpdateTests {
    static let deciders: [any Workflow.Type] = [RollingUpdate.self, ProvisionMachine.self, DeleteMachine.self]
    static let old = ["alpha-md-0-1", "alpha-md-0-2", "alpha-md-0-3"]

    static func input(surge: IntOrPercent = .count(1), unavailable: IntOrPercent = .count(0)) -> RollingUpdate.Input {
        RollingUpdate.Input(
            runID: "roll/alpha-md-0", cluster: clusterA, deployment: "alpha-md-0", version: "v1.36.1", replicas: 3,
            maxSurge: surge, maxUnavailable: unavailable, machines: old, pollIntervalMilliseconds: 100)
    }

    /// Replays `fleet.effects` and returns the most machines standing and the fewest available at any point.
    static func extremes(_ effects: [String], old: [String]) -> (standingMax: Int, availableMin: Int) {
        var standing = Set(old), available = Set(old)
        var standingMax = standing.count, availableMin = available.count
        for effect in effects {
            let parts = effect.split(separator: " ").map(String.init)
            switch parts[0] {
            case "vm.create": standing.insert(parts[1])
            case "providerID": available.insert(parts[1])
            case "drain": available.remove(parts[1])
            case "vm.delete": standing.remove(parts[1]); available.remove(parts[1])
            default: break
            }
            standingMax = max(standingMax, standing.count)
            availableMin = min(availableMin, available.count)
        }
        return (standingMax, availableMin)
    }

    @Test("RollingUpdate: run: defaults 1/0 keep 3 available and at most 4 standing; every old machine drained and deleted")
    func defaults() throws {
        // Goal: the limits hold over a whole rollout, in the order of effects. Method: replay the
        // fake cluster's effects counting standing and available machines.
        let fleet = FakeFleet()
        let simulation = DeciderSimulation(Self.deciders, fleet: fleet)
        let input = Self.input()
        let end = simulation.run(input.runID, type: RollingUpdate.type, input: Activities.encode(input))
        guard case .workflowCompleted(let text) = end else { Issue.record("ended \(String(describing: end))"); return }
        let output = try Activities.decode(RollingUpdate.Output.self, from: text)
        #expect(output.machines == ["alpha-md-0-4", "alpha-md-0-5", "alpha-md-0-6"])
        let extremes = Self.extremes(fleet.effects, old: Self.old)
        #expect(extremes.standingMax == 4)
        #expect(extremes.availableMin == 3)
        #expect(fleet.effects.first == "bootstrap alpha-md-0-4 v1.36.1")
        for machine in Self.old {
            let drain = try #require(fleet.effects.firstIndex(of: "drain \(machine)"))
            let vm = try #require(fleet.effects.firstIndex(of: "vm.delete \(machine)"))
            let node = try #require(fleet.effects.firstIndex(of: "node.delete \(machine)"))
            #expect(drain < vm && vm < node)
        }
        let history = try #require(simulation.histories[input.runID])
        for end in 1...history.count { expectIdempotent(RollingUpdate.self, Array(history.prefix(end))) }
    }

    @Test("RollingUpdate: run: 0/1 drains an old machine before creating, never more than 3 standing") func unavailableFirst() {
        let fleet = FakeFleet()
        let simulation = DeciderSimulation(Self.deciders, fleet: fleet)
        let input = Self.input(surge: .count(0), unavailable: .count(1))
        let end = simulation.run(input.runID, type: RollingUpdate.type, input: Activities.encode(input))
        guard case .workflowCompleted = end else { Issue.record("ended \(String(describing: end))"); return }
        #expect(fleet.effects.first == "drain alpha-md-0-1")
        let extremes = Self.extremes(fleet.effects, old: Self.old)
        #expect(extremes.standingMax == 3)
        #expect(extremes.availableMin == 2)
        #expect(fleet.count("vm.create") == 3)
        #expect(fleet.count("vm.delete") == 3)
    }

    @Test("RollingUpdate: failure: a new machine that never gets Ready stops the rollout before any old one goes") func newFails() {
        let fleet = FakeFleet()
        fleet.neverReady = ["alpha-md-0-4"]
        var input = Self.input()
        input.nodeStartupTimeoutSeconds = 30
        let simulation = DeciderSimulation(Self.deciders, fleet: fleet)
        let end = simulation.run(input.runID, type: RollingUpdate.type, input: Activities.encode(input))
        guard case .workflowFailed(let reason) = end else { Issue.record("ended \(String(describing: end))"); return }
        #expect(reason.contains("new machine alpha-md-0-4 failed"))
        #expect(fleet.count("drain") == 0)
        #expect(fleet.count("vm.delete") == 0)
    }
}
