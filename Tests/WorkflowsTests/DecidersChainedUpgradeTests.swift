import Engine
import Fleet
import Testing
@testable import Workflows

@Suite struct ChainedUpgradeTests {
    static let deciders: [any Workflow.Type] = [
        ChainedUpgrade.self, ControlPlaneUpgradeStep.self, RollingUpdate.self, ProvisionMachine.self, DeleteMachine.self,
    ]

    static func catalog(_ versions: [String]) -> VersionCatalog {
        // The catalog's versions are fixed test data: they parse.
        try! VersionCatalog(versions: versions.map { try! KubernetesVersion(parsing: $0) })
    }

    static let catalog133to136 = catalog(["v1.33.4", "v1.34.1", "v1.34.3", "v1.35.2", "v1.36.0", "v1.36.1"])

    static func input(
        from workers: String = "v1.33.4", target: String = "v1.36.1", catalog: VersionCatalog = catalog133to136,
        approve: Bool = false
    ) -> ChainedUpgrade.Input {
        ChainedUpgrade.Input(
            runID: "upgrade/team-a/alpha", cluster: clusterA, target: target, catalog: catalog,
            deployments: [
                ChainedUpgrade.Deployment(name: "alpha-md-0", version: workers, machines: ["alpha-md-0-1", "alpha-md-0-2"]),
                ChainedUpgrade.Deployment(name: "alpha-md-1", version: workers, machines: ["alpha-md-1-1"]),
            ],
            approveEachStep: approve, stepRetryDelaySeconds: 10, pollIntervalMilliseconds: 100)
    }

    static func fleet(at version: String) -> FakeFleet {
        let fleet = FakeFleet()
        fleet.controlPlaneExists = true
        fleet.controlPlaneVersion = version
        fleet.installedVersion = version
        fleet.controlPlaneReadsToReady = 2
        return fleet
    }

    static func run(_ input: ChainedUpgrade.Input, fleet: FakeFleet, inject: ((String, [WorkflowEvent]) -> [WorkflowEvent])? = nil)
        -> (DeciderSimulation, WorkflowEvent?)
    {
        let simulation = DeciderSimulation(Self.deciders, fleet: fleet)
        if let inject { simulation.inject = inject }
        let end = simulation.run(input.runID, type: ChainedUpgrade.type, input: Activities.encode(input))
        return (simulation, end)
    }

    static func planOf(_ history: [WorkflowEvent]) -> [ChainedUpgradePlan] {
        [(try? ChainedUpgrade.replay(history))?.plan].compactMap { $0 }.compactMap { $0 }
    }

    @Test("ChainedUpgrade: run: 1.33 → 1.36: control plane one minor per step, workers in one leap at the end")
    func chain133to136() throws {
        // Goal: the issue's headline chain, end to end against a fake cluster. Method: run the
        // whole tree of deciders and read the fake cluster's effects.
        let fleet = Self.fleet(at: "v1.33.4")
        let input = Self.input()
        let (simulation, end) = Self.run(input, fleet: fleet)
        guard case .workflowCompleted(let text) = end else { Issue.record("ended \(String(describing: end))"); return }
        let output = try Activities.decode(ChainedUpgrade.Output.self, from: text)
        #expect(output.controlPlaneVersion == "v1.36.1")
        // Each control-plane version applied once, in order, newest patch of each minor, target last.
        #expect(fleet.effects.filter { $0.hasPrefix("controlPlane.setVersion") } == [
            "controlPlane.setVersion v1.34.3", "controlPlane.setVersion v1.35.2", "controlPlane.setVersion v1.36.1",
        ])
        // Workers only after the last control-plane step, straight to the target.
        let lastCP = try #require(fleet.effects.lastIndex { $0.hasPrefix("controlPlane.setVersion") })
        let firstWorker = try #require(fleet.effects.firstIndex { $0.hasPrefix("bootstrap") })
        #expect(lastCP < firstWorker)
        #expect(Set(fleet.effects.filter { $0.hasPrefix("bootstrap") }.map { $0.split(separator: " ")[2] }) == ["v1.36.1"])
        #expect(output.machines["alpha-md-0"] == ["alpha-md-0-3", "alpha-md-0-4"])
        #expect(output.machines["alpha-md-1"] == ["alpha-md-1-2"])
        for old in ["alpha-md-0-1", "alpha-md-0-2", "alpha-md-1-1"] { #expect(fleet.effects.contains("vm.delete \(old)")) }
        // The plan is recorded once, as a domain event.
        let history = try #require(simulation.histories[input.runID])
        #expect(Self.planOf(history).count == 1)
        for end in 1...history.count { expectIdempotent(ChainedUpgrade.self, Array(history.prefix(end))) }
    }

    @Test("ChainedUpgrade: skew: 1.30 → 1.36 upgrades workers midway, at the control plane's version then")
    func chain130to136() throws {
        let catalog = Self.catalog(["v1.30.5", "v1.31.4", "v1.32.3", "v1.33.2", "v1.34.1", "v1.35.0", "v1.36.0"])
        let fleet = Self.fleet(at: "v1.30.5")
        let input = Self.input(from: "v1.30.5", target: "v1.36.0", catalog: catalog)
        let (simulation, end) = Self.run(input, fleet: fleet)
        guard case .workflowCompleted = end else { Issue.record("ended \(String(describing: end))"); return }
        let joins = fleet.effects.filter { $0.hasPrefix("bootstrap") }.map { String($0.split(separator: " ")[2]) }
        // 3 machines at 1.33 midway (before the control plane leaves 1.33), then 3 at 1.36.
        #expect(joins == ["v1.33.2", "v1.33.2", "v1.33.2", "v1.36.0", "v1.36.0", "v1.36.0"])
        let toCP134 = try #require(fleet.effects.firstIndex(of: "controlPlane.setVersion v1.34.1"))
        let lastMidway = try #require(fleet.effects.lastIndex(of: "bootstrap alpha-md-1-2 v1.33.2"))
        #expect(lastMidway < toCP134)
        let history = try #require(simulation.histories[input.runID])
        #expect(Self.planOf(history).first?.workerVersions.map(\.description) == ["v1.33.2", "v1.36.0"])
    }

    @Test("ChainedUpgrade: plan: a downgrade is refused with the planner's reason, nothing applied") func downgrade() {
        let fleet = Self.fleet(at: "v1.36.1")
        let (_, end) = Self.run(Self.input(from: "v1.36.1", target: "v1.34.3"), fleet: fleet)
        guard case .workflowFailed(let reason) = end else { Issue.record("ended \(String(describing: end))"); return }
        #expect(reason.contains("never downgrades"))
        #expect(fleet.count("controlPlane.setVersion") == 0)
    }

    @Test("ChainedUpgrade: approve: each step waits for an approve signal") func approval() {
        let fleet = Self.fleet(at: "v1.34.3")
        var approvals = 0
        let input = Self.input(from: "v1.34.3", target: "v1.35.2", approve: true)
        let (simulation, end) = Self.run(input, fleet: fleet) { id, history in
            // Approve only when asked (the run waits on the signal), and count it.
            guard id == input.runID, case .waitForSignal(ChainedUpgrade.Signal.approve, _)? = (try? ChainedUpgrade.replay(history)).map(ChainedUpgrade.decide)?.last
            else { return [] }
            approvals += 1
            return [.signalReceived(name: ChainedUpgrade.Signal.approve, payload: "")]
        }
        guard case .workflowCompleted = end else { Issue.record("ended \(String(describing: end))"); return }
        // Plan: control plane → 1.35.2, then workers [md-0, md-1] → 1.35.2: two steps, two approvals.
        #expect(approvals == 2)
        let history = simulation.histories[input.runID] ?? []
        let approved = history.firstIndex(of: WorkflowEvent.signalReceived(name: ChainedUpgrade.Signal.approve, payload: "")) ?? 0
        let firstChild = history.firstIndex { if case .childStarted = $0 { true } else { false } } ?? 0
        #expect(approved < firstChild)
    }

    @Test("ChainedUpgrade: stuck: a step that keeps failing stops as Stuck with its reason, and retry-step resumes")
    func stuck() throws {
        let fleet = Self.fleet(at: "v1.33.4")
        fleet.refusedVersions = ["v1.34.3"]
        let input = Self.input()
        var retried = false
        let (simulation, end) = Self.run(input, fleet: fleet) { id, history in
            guard id == input.runID, !retried else { return [] }
            guard let state = try? ChainedUpgrade.replay(history), let progress = ChainedUpgrade.progress(state), progress.phase == .stuck else { return [] }
            // Goal: Stuck says why and waits. Method: inspect the progress view, then fix the cause.
            #expect(progress.step == 1)
            #expect(progress.attempt == 3)
            #expect(progress.reason?.contains("webhook refused v1.34.3") == true)
            #expect(progress.waitingOn == ChainedUpgrade.Signal.retryStep)
            fleet.refusedVersions = []
            retried = true
            return [.signalReceived(name: ChainedUpgrade.Signal.retryStep, payload: "")]
        }
        #expect(retried)
        guard case .workflowCompleted = end else { Issue.record("ended \(String(describing: end))"); return }
        let children = (simulation.histories[input.runID] ?? []).compactMap { event -> String? in
            if case .childStarted(let id, _) = event, id.contains("step-1/") { id } else { nil }
        }
        #expect(children == (1...4).map { "upgrade/team-a/alpha/step-1/controlplane/\($0)" })
    }

    @Test("ChainedUpgrade: pause: a pause during a step holds the next step until resume") func pauseBetweenSteps() {
        let fleet = Self.fleet(at: "v1.33.4")
        let input = Self.input()
        var paused = false, resumed = false
        var startedWhilePaused: [String] = []
        let (simulation, end) = Self.run(input, fleet: fleet) { id, history in
            guard id == input.runID else { return [] }
            let started = history.filter { if case .childStarted = $0 { true } else { false } }.count
            if !paused, started == 1 {
                paused = true
                return [.signalReceived(name: ChainedUpgrade.Signal.pause, payload: "")]
            }
            if paused, !resumed, case .waitForSignal(ChainedUpgrade.Signal.resume, _)? = (try? ChainedUpgrade.replay(history)).map(ChainedUpgrade.decide)?.last {
                startedWhilePaused = history.compactMap { if case .childStarted(let id, _) = $0 { id } else { nil } }
                resumed = true
                return [.signalReceived(name: ChainedUpgrade.Signal.resume, payload: "")]
            }
            return []
        }
        guard case .workflowCompleted = end else { Issue.record("ended \(String(describing: end))"); return }
        #expect(resumed)
        // Step 1 ran to its end; step 2 had not started when the run asked to be resumed.
        #expect(startedWhilePaused == ["upgrade/team-a/alpha/step-1/controlplane/1"])
        #expect(simulation.histories[input.runID]?.contains(.signalReceived(name: "resume", payload: "")) == true)
    }

    @Test("ChainedUpgrade: progress: which step and what it waits on") func progress() throws {
        let input = Self.input()
        let source = Activities.ControlPlaneObservation(exists: true, installedVersion: "v1.33.4", status: "Ready")
        var events: [WorkflowEvent] = [Given.started(ChainedUpgrade.type, input)] + Given.ran("source", source)
        #expect(try ChainedUpgrade.replay(events).plan?.controlPlaneVersions.map(\.description) == ["v1.34.3", "v1.35.2", "v1.36.1"])
        let first = ChainedUpgrade.decide(try ChainedUpgrade.replay(events))
        guard case .startChild(let child)? = first.first else { Issue.record("asked \(first)"); return }
        events.append(.childStarted(childID: child.workflowID, type: child.type))
        let progress = try #require(ChainedUpgrade.progress(try ChainedUpgrade.replay(events)))
        #expect(progress.phase == .running)
        #expect(progress.step == 1)
        #expect(progress.steps == 4)
        #expect(progress.description == "control plane → v1.34.3")
        #expect(progress.waitingOn == "upgrade/team-a/alpha/step-1/controlplane/1")
        #expect(progress.controlPlaneVersion == "v1.33.4")
    }
}
