import Engine
import Testing
@testable import Fleet

// The fleet controller's health-check step over a cluster's observed state. Cases after CAPI
// v1.12 internal/controllers/machinehealthcheck: machinehealthcheck_targets_test.go
// (TestHealthCheckTargets: "unhealthy node", "node not found", "machine with no node past
// nodeStartupTimeout", the ControlPlaneInitialized guard), machinehealthcheck_controller_test.go
// (TestMachineHealthCheck_Reconcile "when the unhealthy machines exceed MaxUnhealthy" /
// "UnhealthyRange", "should skip remediation" for skip-remediation / paused,
// remediate-machine), and internal/controllers/machineset (sortMachinesToRemediate: the
// annotated first, then newest first). Checked by breaking on purpose: dropping the
// `!deleting.contains` filter fails "a machine already deleting is not remediated again";
// counting remediations outside the window fails "the rate limit frees up after its window".

private let t0: Int64 = 1_700_000_000_000_000_000
private func at(_ seconds: Int64) -> Timestamp { Timestamp(nanoseconds: t0 + seconds * 1_000_000_000) }
private func ns(_ seconds: Int64) -> Int64 { t0 + seconds * 1_000_000_000 }

private let spec = HealthCheckSpec(unhealthyNodeConditions: [
    UnhealthyCondition(type: "Ready", status: .false, timeout: GoDuration(seconds: 300)),
    UnhealthyCondition(type: "Ready", status: .unknown, timeout: GoDuration(seconds: 300)),
])
private func check(_ spec: HealthCheckSpec = spec) -> MachineHealthCheck {
    MachineHealthCheck(namespace: "default", name: "prod-md-0", clusterName: "prod", deployments: ["prod-md-0"], spec: spec)
}

private func machine(
    _ name: String, ready: String? = "True", since: Int64 = 0, created: Int64 = 0, deployment: String = "prod-md-0",
    phase: String = "Running", reason: String? = nil
) -> ClusterSummary.Machine {
    let conditions = ready.map { ["Ready": ObservedCluster.Condition(status: $0, reason: reason, lastTransitionNanoseconds: ns(since))] } ?? [:]
    return ClusterSummary.Machine(
        name: name, deployment: deployment, phase: phase, version: nil, conditions: conditions, createdNanoseconds: ns(created))
}

private func cluster(_ machines: [ClusterSummary.Machine], initialized: Int64? = 0, paused: Bool = false) -> ClusterSummary {
    ClusterSummary(
        namespace: "default", name: "prod", paused: paused, versionCatalog: "default",
        controlPlane: ClusterSummary.ControlPlane(ready: initialized != nil, initializedNanoseconds: initialized.map(ns)),
        deployments: [], machines: machines)
}

@Suite struct DomainHealthChecksTests {
    @Test("HealthChecks: cluster: a NotReady node past its timeout is remediated; inside it, the next evaluation is its deadline")
    func notReady() {
        let summary = cluster([machine("prod-md-0-1"), machine("prod-md-0-2", ready: "False", since: 100), machine("prod-md-0-3")])
        let early = HealthChecks.evaluate(cluster: summary, check: check(), now: at(300), recentRemediations: [])
        #expect(early.remediate.isEmpty)
        #expect(early.nextEvaluation == at(401))
        let late = HealthChecks.evaluate(cluster: summary, check: check(), now: at(401), recentRemediations: [])
        #expect(late.remediate.map(\.machine) == ["prod-md-0-2"])
        #expect(late.remediate.first?.reason == .unhealthyNode)
        #expect(!late.shortCircuited)
    }

    @Test("HealthChecks: cluster: machines of other deployments are not the check's")
    func scope() {
        let summary = cluster([machine("prod-md-1-1", ready: "False", deployment: "prod-md-1"), machine("prod-md-0-1")])
        let decision = HealthChecks.evaluate(cluster: summary, check: check(), now: at(10_000), recentRemediations: [])
        #expect(decision.verdict.expected == 1)
        #expect(decision.remediate.isEmpty)
    }

    @Test("HealthChecks: short-circuit: too many unhealthy remediates none and says TooManyUnhealthy")
    func tooMany() {
        let limited = HealthCheckSpec(unhealthyNodeConditions: spec.unhealthyNodeConditions, trigger: .unhealthyAtMost(.percent(40)))
        let summary = cluster([
            machine("prod-md-0-1", ready: "False"), machine("prod-md-0-2", ready: "Unknown"), machine("prod-md-0-3", ready: "False"),
            machine("prod-md-0-4"), machine("prod-md-0-5"),
        ])
        let decision = HealthChecks.evaluate(cluster: summary, check: check(limited), now: at(1000), recentRemediations: [])
        #expect(decision.shortCircuited)
        #expect(decision.verdict.shortCircuitReason == HealthCheck.tooManyUnhealthy)
        #expect(decision.remediate.isEmpty && decision.rateLimited.isEmpty)
        // Two of five (40% rounds down to 2) are allowed.
        let two = cluster([machine("prod-md-0-1")] + summary.machines.dropFirst())
        #expect(HealthChecks.evaluate(cluster: two, check: check(limited), now: at(1000), recentRemediations: []).remediate.count == 2)
    }

    @Test("HealthChecks: control plane: no start-up timeout or condition is judged before it is initialized")
    func beforeControlPlane() {
        let summary = cluster([machine("prod-md-0-1", ready: nil), machine("prod-md-0-2", ready: "False")], initialized: nil)
        let decision = HealthChecks.evaluate(cluster: summary, check: check(), now: at(100_000), recentRemediations: [])
        #expect(decision.remediate.isEmpty && decision.verdict.unhealthy.isEmpty)
        // Initialized at t=1000: the start-up clock runs from there (600 s), not from creation.
        let up = cluster(summary.machines, initialized: 1000)
        #expect(HealthChecks.evaluate(cluster: up, check: check(), now: at(1500), recentRemediations: []).nextEvaluation == at(1601))
        let late = HealthChecks.evaluate(cluster: up, check: check(), now: at(1601), recentRemediations: [])
        #expect(late.remediate.map(\.reason) == [.nodeStartupTimeout, .unhealthyNode])
    }

    @Test("HealthChecks: node gone: a Ready condition with reason NodeNotFound is NodeDeleted, at once")
    func nodeGone() {
        let summary = cluster([machine("prod-md-0-1", ready: "Unknown", since: 999, reason: HealthChecks.nodeNotFoundReason)])
        let decision = HealthChecks.evaluate(cluster: summary, check: check(), now: at(1000), recentRemediations: [])
        #expect(decision.remediate.map(\.reason) == [.nodeDeleted])
    }

    @Test("HealthChecks: annotations: skip-remediation and paused leave a machine out; remediate-machine goes first")
    func annotations() {
        let summary = cluster([
            machine("prod-md-0-1", ready: "False"), machine("prod-md-0-2", ready: "False"), machine("prod-md-0-3"),
            machine("prod-md-0-4", ready: "False"),
        ])
        let marks = [
            "prod-md-0-1": [HealthChecks.skipRemediationAnnotation: ""], "prod-md-0-2": [HealthChecks.pausedAnnotation: "true"],
            "prod-md-0-3": [HealthChecks.remediateMachineAnnotation: ""],
        ]
        let decision = HealthChecks.evaluate(cluster: summary, check: check(), now: at(1000), recentRemediations: [], annotations: marks)
        #expect(decision.skipped == ["prod-md-0-1", "prod-md-0-2"])
        #expect(decision.remediate.map(\.machine) == ["prod-md-0-3", "prod-md-0-4"])
        #expect(decision.remediate.map(\.reason) == [.remediateAnnotation, .unhealthyNode])
    }

    @Test("HealthChecks: order: newest first, as the MachineSet remediates")
    func newestFirst() {
        let summary = cluster([
            machine("prod-md-0-1", ready: "False", created: 10), machine("prod-md-0-2", ready: "False", created: 30),
            machine("prod-md-0-3", ready: "False", created: 20),
        ])
        let decision = HealthChecks.evaluate(cluster: summary, check: check(), now: at(1000), recentRemediations: [])
        #expect(decision.remediate.map(\.machine) == ["prod-md-0-2", "prod-md-0-3", "prod-md-0-1"])
    }

    @Test("HealthChecks: rate limit: at most maxRemediations per window for the cluster; it frees up after its window")
    func rateLimit() {
        let summary = cluster([machine("prod-md-0-1", ready: "False", created: 1), machine("prod-md-0-2", ready: "False", created: 2)])
        let limit = RemediationRateLimit(maxRemediations: 2, windowSeconds: 3600)
        let decision = HealthChecks.evaluate(
            cluster: summary, check: check(), now: at(1000), recentRemediations: [at(500), at(-10_000)], rateLimit: limit)
        #expect(decision.remediate.map(\.machine) == ["prod-md-0-2"])
        #expect(decision.rateLimited.map(\.machine) == ["prod-md-0-1"])
        #expect(decision.nextEvaluation == at(4100))  // 500 + 3600: the window lets one more go
        let full = HealthChecks.evaluate(
            cluster: summary, check: check(), now: at(1000), recentRemediations: [at(500), at(900)], rateLimit: limit)
        #expect(full.remediate.isEmpty && full.rateLimited.count == 2)
        let later = HealthChecks.evaluate(
            cluster: summary, check: check(), now: at(4100), recentRemediations: [at(500), at(900)], rateLimit: limit)
        #expect(later.remediate.map(\.machine) == ["prod-md-0-2"])
    }

    @Test("HealthChecks: deleting: a machine already deleting is not remediated again")
    func deleting() {
        let summary = cluster([machine("prod-md-0-1", ready: "False", phase: HealthChecks.deletingPhase), machine("prod-md-0-2")])
        let decision = HealthChecks.evaluate(cluster: summary, check: check(), now: at(1000), recentRemediations: [])
        #expect(decision.remediate.isEmpty)
        #expect(decision.verdict.expected == 2)
    }

    @Test("HealthChecks: paused cluster: nothing is judged")
    func paused() {
        let summary = cluster([machine("prod-md-0-1", ready: "False")], paused: true)
        let decision = HealthChecks.evaluate(cluster: summary, check: check(), now: at(1000), recentRemediations: [])
        #expect(decision.notJudged == .clusterPaused)
        #expect(decision.remediate.isEmpty && decision.nextEvaluation == nil)
    }

    @Test("HealthChecks: recording: a condition change is one event, an unchanged poll none, a Node gone NodeNotFound once")
    func conditionChanges() {
        let ready = ObservedCluster.Condition(status: "True", reason: "KubeletReady", lastTransitionNanoseconds: ns(0))
        let notReady = ObservedCluster.Condition(status: "False", reason: "KubeletNotReady", lastTransitionNanoseconds: ns(50))
        func changes(_ previous: [String: ObservedCluster.Condition], _ node: HealthChecks.ObservedNode?) -> [FleetEvent] {
            HealthChecks.conditionChanges(namespace: "default", cluster: "prod", machine: "m", previous: previous, node: node, at: at(60))
        }
        #expect(changes(["Ready": ready], .init(conditions: ["Ready": ready])).isEmpty)
        let first = changes([:], .init(conditions: ["Ready": ready]))
        #expect(first.count == 1)
        let flipped = changes(["Ready": ready], .init(conditions: ["Ready": notReady]))
        guard case .machineConditionChanged(_, _, "m", "Ready", "False", "KubeletNotReady", ns(50), ns(60))? = flipped.first,
            flipped.count == 1
        else {
            Issue.record("recorded \(flipped)")
            return
        }
        let gone = changes(["Ready": notReady], nil)
        guard case .machineConditionChanged(_, _, _, "Ready", "Unknown", HealthChecks.nodeNotFoundReason?, _, _)? = gone.first else {
            Issue.record("recorded \(gone)")
            return
        }
        let goneCondition = ObservedCluster.Condition(status: "Unknown", reason: HealthChecks.nodeNotFoundReason, lastTransitionNanoseconds: ns(60))
        #expect(changes(["Ready": goneCondition], nil).isEmpty)
        #expect(changes([:], nil).isEmpty)  // never had a Node: nothing to say
        // The Node came back (a new one of the same name): recorded even with the same status.
        #expect(changes(["Ready": goneCondition], .init(conditions: ["Ready": goneCondition])).count == 1)
    }

    @Test("HealthChecks: projection: the control plane's first ready instant and a machine's first sighting are kept")
    func projection() {
        var observed = ObservedCluster()
        FleetProjection.fold(.controlPlaneObserved(namespace: "default", cluster: "prod", installedVersion: nil, status: "Provisioning", ready: false, atNanoseconds: 10), into: &observed)
        #expect(observed.controlPlane?.initializedNanoseconds == nil)
        FleetProjection.fold(.controlPlaneObserved(namespace: "default", cluster: "prod", installedVersion: nil, status: "Ready", ready: true, atNanoseconds: 20), into: &observed)
        FleetProjection.fold(.controlPlaneObserved(namespace: "default", cluster: "prod", installedVersion: nil, status: "Upgrading", ready: false, atNanoseconds: 30), into: &observed)
        #expect(observed.controlPlane?.initializedNanoseconds == 20)
        FleetProjection.fold(.machineObserved(namespace: "default", cluster: "prod", machine: "m", deployment: "d", phase: "Provisioning", version: nil, atNanoseconds: 40), into: &observed)
        FleetProjection.fold(.machineObserved(namespace: "default", cluster: "prod", machine: "m", deployment: "d", phase: "Running", version: nil, atNanoseconds: 50), into: &observed)
        #expect(observed.machines["m"]?.createdNanoseconds == 40)
    }

    @Test("HealthChecks: resolve: an applied v1beta2 check covers the deployments its selector matches, with its rules")
    func resolve() async throws {
        try await FleetFixtures.withLog("mhc-resolve") { log in
            _ = try await FleetFixtures.apply([("catalog.yaml", FleetFixtures.catalog), ("fleet.yaml", FleetFixtures.fleet())], on: log)
            let checks = try FleetView.healthChecks(log.reader, namespace: "default", cluster: "prod")
            #expect(checks.map(\.name) == ["prod-md-0"])
            #expect(checks.first?.deployments == ["prod-md-0"])
            #expect(checks.first?.spec.trigger == .unhealthyAtMost(.percent(40)))
            #expect(checks.first?.spec.unhealthyNodeConditions == [UnhealthyCondition(type: "Ready", status: .false, timeout: GoDuration(seconds: 300))])
            #expect(try FleetView.healthChecks(log.reader, namespace: "default", cluster: "other").isEmpty)
        }
    }

    /// The v1beta1 shape keeps each condition's `timeout` (a Go duration inside a list item).
    /// It once read as 0s, because the field path walked maps only: serve then remediated a
    /// NotReady node the moment it saw it, and the serve remediation proof caught it.
    @Test("HealthChecks: resolve: a v1beta1 check keeps its conditions' Go-duration timeouts")
    func resolveBeta1() async throws {
        let beta2 = """
            apiVersion: cluster.x-k8s.io/v1beta2
            kind: MachineHealthCheck
            metadata:
              name: prod-md-0
            spec:
              clusterName: prod
              selector:
                matchLabels: {pool: md-0}
              checks:
                nodeStartupTimeoutSeconds: 600
                unhealthyNodeConditions:
                - type: Ready
                  status: "False"
                  timeoutSeconds: 300
              remediation:
                triggerIf:
                  unhealthyLessThanOrEqualTo: 40%
            """
        let beta1 = """
            apiVersion: cluster.x-k8s.io/v1beta1
            kind: MachineHealthCheck
            metadata:
              name: prod-md-0
            spec:
              clusterName: prod
              selector:
                matchLabels: {pool: md-0}
              nodeStartupTimeout: 10m
              maxUnhealthy: 40%
              unhealthyConditions:
              - type: Ready
                status: "False"
                timeout: 5m0s
            """
        let fleet = FleetFixtures.fleet()
        #expect(fleet.contains(beta2))
        try await FleetFixtures.withLog("mhc-resolve-beta1") { log in
            _ = try await FleetFixtures.apply(
                [("catalog.yaml", FleetFixtures.catalog), ("fleet.yaml", fleet.replacingOccurrences(of: beta2, with: beta1))], on: log)
            let checks = try FleetView.healthChecks(log.reader, namespace: "default", cluster: "prod")
            #expect(checks.first?.spec.unhealthyNodeConditions == [UnhealthyCondition(type: "Ready", status: .false, timeout: GoDuration(seconds: 300))])
        }
    }
}

// One reconcile step over a cluster's checks, and its audit facts through the real log.
// Checked by breaking on purpose: recording RemediationSkipped without the `refusing` check
// fails "a refusal is recorded when it begins, not on every evaluation".
@Suite struct DomainHealthCheckStepTests {
    static let limited = HealthCheckSpec(unhealthyNodeConditions: spec.unhealthyNodeConditions, trigger: .unhealthyAtMost(.count(1)))

    @Test("HealthChecks: step: a refusal is recorded when it begins, not on every evaluation, and its end once")
    func refusalOnce() {
        let bad = cluster([machine("prod-md-0-1", ready: "False"), machine("prod-md-0-2", ready: "False"), machine("prod-md-0-3")])
        let first = HealthChecks.step(cluster: bad, checks: [check(Self.limited)], now: at(1000))
        #expect(first.remediations.isEmpty)
        guard case .remediationSkipped(_, _, "prod-md-0", "TooManyUnhealthy", let unhealthy, 3, _)? = first.audit.first, first.audit.count == 1
        else {
            Issue.record("audit \(first.audit)")
            return
        }
        #expect(unhealthy == ["prod-md-0-1", "prod-md-0-2"])
        var recorded = bad
        recorded.shortCircuitedChecks = ["prod-md-0"]
        #expect(HealthChecks.step(cluster: recorded, checks: [check(Self.limited)], now: at(1030)).audit.isEmpty)
        var better = cluster([machine("prod-md-0-1", ready: "False"), machine("prod-md-0-2"), machine("prod-md-0-3")])
        better.shortCircuitedChecks = ["prod-md-0"]
        let allowed = HealthChecks.step(cluster: better, checks: [check(Self.limited)], now: at(1060))
        #expect(allowed.audit == [.remediationAllowed(namespace: "default", cluster: "prod", check: "prod-md-0", atNanoseconds: ns(1060))])
        #expect(allowed.remediations.map(\.workflowID) == ["remediate/default/prod/prod-md-0-1"])
    }

    @Test("HealthChecks: step: the rate limit spans the cluster's checks and its recorded remediations")
    func rateAcrossChecks() {
        var summary = cluster([
            machine("prod-md-0-1", ready: "False"), machine("prod-md-1-1", ready: "False", deployment: "prod-md-1"),
        ])
        let checks = [
            check(),
            MachineHealthCheck(namespace: "default", name: "prod-md-1", clusterName: "prod", deployments: ["prod-md-1"], spec: spec),
        ]
        let limit = RemediationRateLimit(maxRemediations: 1, windowSeconds: 600)
        let step = HealthChecks.step(cluster: summary, checks: checks, now: at(1000), rateLimit: limit)
        #expect(step.remediations.map(\.finding.machine) == ["prod-md-0-1"])
        #expect(step.remediations.first?.deployment == "prod-md-0")
        #expect(step.decisions.last?.rateLimited.map(\.machine) == ["prod-md-1-1"])
        #expect(step.nextEvaluation == at(1600))
        summary.remediations = [ObservedCluster.Remediation(check: "x", machine: "y", atNanoseconds: ns(900))]
        #expect(HealthChecks.step(cluster: summary, checks: checks, now: at(1000), rateLimit: limit).remediations.isEmpty)
    }

    @Test("HealthChecks: audit: decided, skipped and allowed are stored, folded into the projection and the timeline")
    func recorded() async throws {
        try await FleetFixtures.withLog("mhc-audit") { log in
            _ = try await FleetFixtures.apply([("catalog.yaml", FleetFixtures.catalog), ("fleet.yaml", FleetFixtures.fleet())], on: log)
            let finding = HealthCheckVerdict.Finding(machine: "prod-md-0-2", reason: .unhealthyNode, message: "condition Ready on the Node has been False for more than 5m0s")
            let remediation = HealthCheckStep.Remediation(
                check: "prod-md-0", deployment: "prod-md-0", finding: finding,
                workflowID: HealthChecks.workflowID(namespace: "default", cluster: "prod", machine: "prod-md-0-2"))
            let before = try #require(try FleetView.clusters(log.reader).first)
            let events: [FleetEvent] = [
                .remediationSkipped(namespace: "default", cluster: "prod", check: "prod-md-0", reason: "TooManyUnhealthy",
                                    unhealthy: ["prod-md-0-1", "prod-md-0-2"], expected: 3, atNanoseconds: ns(10)),
                .remediationAllowed(namespace: "default", cluster: "prod", check: "prod-md-0", atNanoseconds: ns(20)),
                HealthChecks.decided(remediation, cluster: before, at: at(30)),
            ]
            // Stored and read back unchanged.
            for event in events {
                let proposed = event.proposedEvent(actor: "controller")
                #expect(try FleetEvent.decode(type: proposed.type, schemaVersion: 1, payload: proposed.payload) == event)
            }
            _ = try await FleetRecorder.recordObserved(Array(events.prefix(1)), actor: "controller", to: log)
            #expect(try FleetView.clusters(log.reader).first?.shortCircuitedChecks == ["prod-md-0"])
            _ = try await FleetRecorder.recordObserved(Array(events.dropFirst()), actor: "controller", to: log)
            let after = try #require(try FleetView.clusters(log.reader).first)
            #expect(after.shortCircuitedChecks == nil)
            #expect(after.remediations == [ObservedCluster.Remediation(check: "prod-md-0", machine: "prod-md-0-2", atNanoseconds: ns(30))])
            let timeline = try FleetView.audit(log.reader, namespace: "default", cluster: "prod").filter { $0.event.hasPrefix("Remediation") }
            #expect(timeline.map(\.event) == ["RemediationSkipped", "RemediationAllowed", "RemediationDecided"])
            #expect(timeline.first?.summary == "MachineHealthCheck prod-md-0: remediation skipped, TooManyUnhealthy: 2 of 3 unhealthy (prod-md-0-1, prod-md-0-2)")
            #expect(timeline.last?.summary.hasSuffix("replaced by remediate/default/prod/prod-md-0-2") == true)
            #expect(timeline.allSatisfy { $0.actor == "controller" })
            // The projection is what a fold of the log gives.
            #expect(try FleetProjection.rebuild(log.reader) == (try FleetProjection.stored(log.reader)))
        }
    }
}
