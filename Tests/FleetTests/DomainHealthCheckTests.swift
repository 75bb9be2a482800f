import Engine
import Testing
@testable import Fleet

// Cases after CAPI machinehealthcheck_targets_test.go (TestHealthCheckTargets,
// TestNeedsRemediation) and machinehealthcheck_controller_test.go (short-circuit). Checked by
// breaking on purpose: comparing `deadline <= now` fails "exactly at the timeout is not yet
// unhealthy"; counting pending targets as healthy fails "pending counts against maxUnhealthy".

private let t0 = Timestamp(nanoseconds: 1_700_000_000_000_000_000)
private func at(_ seconds: Int64) -> Timestamp { t0 + .seconds(seconds) }

private let readyFalse5m = UnhealthyCondition(type: "Ready", status: .false, timeout: GoDuration(seconds: 300))
private let readyUnknown5m = UnhealthyCondition(type: "Ready", status: .unknown, timeout: GoDuration(seconds: 300))
private let spec = HealthCheckSpec(unhealthyNodeConditions: [readyFalse5m, readyUnknown5m])

private func node(_ status: ConditionStatus, since: Int64) -> HealthCheckTarget.NodeState {
    .joined(conditions: [NodeCondition(type: "Ready", status: status, lastTransitionTime: at(since))])
}

private func evaluate(_ targets: [HealthCheckTarget], spec: HealthCheckSpec = spec, now: Int64, up: Bool = true) -> HealthCheckVerdict {
    HealthCheck.evaluate(spec, targets: targets, controlPlaneInitializedAt: up ? at(0) : nil, infrastructureReadyAt: up ? at(0) : nil, now: at(now))
}

@Suite struct DomainHealthCheckTests {
    @Test("HealthCheck: conditions: NotReady past its timeout is unhealthy, at it is not yet")
    func conditionTimeout() {
        let target = HealthCheckTarget(machine: "m", createdAt: at(0), node: node(.false, since: 100))
        let before = evaluate([target], now: 400)  // exactly 300 s after the transition
        #expect(before.unhealthy.isEmpty)
        #expect(before.pending == ["m"])
        #expect(before.nextEvaluation == at(401))  // one second past the deadline, as CAPI requeues
        let after = evaluate([target], now: 401)
        #expect(after.unhealthy.map(\.reason) == [.unhealthyNode])
        #expect(after.unhealthy[0].message == "condition Ready on the Node has been False for more than 5m0s")
        #expect(after.toRemediate == ["m"])
        #expect(after.nextEvaluation == nil)
    }

    @Test("HealthCheck: conditions: healthy Node, and a status no rule names")
    func healthyNodes() {
        let targets = [
            HealthCheckTarget(machine: "ready", createdAt: at(0), node: node(.true, since: 10)),
            HealthCheckTarget(machine: "other", createdAt: at(0), node: .joined(conditions: [NodeCondition(type: "DiskPressure", status: .true, lastTransitionTime: at(1))])),
        ]
        let verdict = evaluate(targets, now: 10_000)
        #expect(verdict.healthy == ["other", "ready"])
        #expect(verdict.unhealthy.isEmpty && verdict.pending.isEmpty)
        #expect(verdict.nextEvaluation == nil)
        #expect(verdict.remediationsAllowed == 2)
    }

    @Test("HealthCheck: start-up: no Node after nodeStartupTimeout from the latest readiness time")
    func startupTimeout() {
        let target = HealthCheckTarget(machine: "m", createdAt: at(0), infrastructureReadyAt: at(120), node: .notJoined)
        #expect(evaluate([target], now: 600).pending == ["m"])
        #expect(evaluate([target], now: 600).nextEvaluation == at(721))  // 120 + 600 + 1
        let late = evaluate([target], now: 721)
        #expect(late.unhealthy.map(\.reason) == [.nodeStartupTimeout])
        #expect(late.unhealthy[0].message == "the Node failed to report start-up in 10m0s")
        // Disabled (0) start-up timeout: never judged for a missing Node.
        let disabled = HealthCheckSpec(unhealthyNodeConditions: [], nodeStartupTimeout: GoDuration(seconds: 0))
        #expect(evaluate([target], spec: disabled, now: 100_000).unhealthy.isEmpty)
        // The control plane came up later than the machine: the clock starts there.
        let verdict = HealthCheck.evaluate(spec, targets: [target], controlPlaneInitializedAt: at(1000), infrastructureReadyAt: at(0), now: at(1500))
        #expect(verdict.nextEvaluation == at(1601))
    }

    @Test("HealthCheck: cluster: nothing judged before the control plane is up, except annotation and deleted Node")
    func beforeControlPlane() {
        let targets = [
            HealthCheckTarget(machine: "a-not-joined", createdAt: at(0), node: .notJoined),
            HealthCheckTarget(machine: "b-not-ready", createdAt: at(0), node: node(.false, since: 0)),
            HealthCheckTarget(machine: "c-annotated", createdAt: at(0), node: node(.true, since: 0), hasRemediateAnnotation: true),
            HealthCheckTarget(machine: "d-node-gone", createdAt: at(0), node: .missing),
        ]
        let verdict = evaluate(targets, now: 100_000, up: false)
        #expect(verdict.unhealthy.map(\.machine) == ["c-annotated", "d-node-gone"])
        #expect(verdict.unhealthy.map(\.reason) == [.remediateAnnotation, .nodeDeleted])
        #expect(verdict.pending.isEmpty)
        #expect(verdict.nextEvaluation == nil)
    }

    @Test("HealthCheck: annotations: skip-remediation leaves the target out")
    func skipped() {
        let targets = [
            HealthCheckTarget(machine: "skipped", createdAt: at(0), node: node(.false, since: 0), isSkipped: true),
            HealthCheckTarget(machine: "ok", createdAt: at(0), node: node(.true, since: 0)),
        ]
        let verdict = evaluate(targets, now: 10_000)
        #expect(verdict.expected == 1)
        #expect(verdict.unhealthy.isEmpty)
        #expect(verdict.healthy == ["ok"])
    }

    @Test("HealthCheck: short-circuit: maxUnhealthy 40% of 5 (2) allows 2, refuses 3 with TooManyUnhealthy")
    func maxUnhealthy() {
        let limited = HealthCheckSpec(unhealthyNodeConditions: [readyFalse5m], trigger: .unhealthyAtMost(.percent(40)))
        func targets(unhealthy: Int) -> [HealthCheckTarget] {
            (0..<5).map { HealthCheckTarget(machine: "m-\($0)", createdAt: at(0), node: node($0 < unhealthy ? .false : .true, since: 0)) }
        }
        let two = evaluate(targets(unhealthy: 2), spec: limited, now: 1000)
        #expect(two.remediationAllowed && two.toRemediate == ["m-0", "m-1"] && two.remediationsAllowed == 0)
        let three = evaluate(targets(unhealthy: 3), spec: limited, now: 1000)
        #expect(!three.remediationAllowed)
        #expect(three.shortCircuitReason == "TooManyUnhealthy")
        #expect(three.toRemediate.isEmpty && three.remediationsAllowed == 0)
        #expect(three.unhealthy.count == 3)  // still reported, just not remediated
    }

    @Test("HealthCheck: short-circuit: pending and not-started targets count against maxUnhealthy")
    func pendingCounts() {
        let limited = HealthCheckSpec(unhealthyNodeConditions: [readyFalse5m], trigger: .unhealthyAtMost(.count(1)))
        let targets = [
            HealthCheckTarget(machine: "bad", createdAt: at(0), node: node(.false, since: 0)),
            HealthCheckTarget(machine: "starting", createdAt: at(900), node: .notJoined),
            HealthCheckTarget(machine: "ok", createdAt: at(0), node: node(.true, since: 0)),
        ]
        let verdict = evaluate(targets, spec: limited, now: 1000)
        #expect(verdict.unhealthy.map(\.machine) == ["bad"])
        #expect(verdict.pending == ["starting"])
        #expect(!verdict.remediationAllowed)
    }

    @Test("HealthCheck: short-circuit: unhealthyRange [1-2]")
    func range() throws {
        let ranged = HealthCheckSpec(unhealthyNodeConditions: [readyFalse5m], trigger: try RemediationTrigger.range(parsing: "[1-2]"))
        func count(_ unhealthy: Int) -> HealthCheckVerdict {
            evaluate((0..<4).map { HealthCheckTarget(machine: "m-\($0)", createdAt: at(0), node: node($0 < unhealthy ? .false : .true, since: 0)) }, spec: ranged, now: 1000)
        }
        #expect(count(1).remediationAllowed && count(1).remediationsAllowed == 1)
        #expect(count(2).remediationAllowed)
        #expect(!count(3).remediationAllowed && count(3).shortCircuitReason == HealthCheck.tooManyUnhealthy)
        #expect(!count(0).remediationAllowed)  // below the range: nothing to do, as CAPI reports it
    }

    @Test("HealthCheck: spec: range syntax", arguments: ["[1-3", "1-3", "[3-1]", "[a-2]", "[-2]", "[1-2-3]", ""])
    func badRange(text: String) {
        #expect(throws: DomainError.self) { try RemediationTrigger.range(parsing: text) }
    }

    @Test("HealthCheck: spec: v1beta1 and v1beta2 shapes map onto one model")
    func shapes() throws {
        let old = try HealthCheckSpec.v1beta1(
            unhealthyConditions: [("Ready", .false, "300s"), ("Ready", .unknown, "5m0s")], nodeStartupTimeout: "10m",
            maxUnhealthy: .percent(40), unhealthyRange: nil)
        let new = try HealthCheckSpec.v1beta2(
            unhealthyNodeConditions: [("Ready", .false, 300), ("Ready", .unknown, 300)], nodeStartupTimeoutSeconds: 600,
            unhealthyLessThanOrEqualTo: .percent(40), unhealthyInRange: nil)
        #expect(old == new)
        let ranged = try HealthCheckSpec.v1beta1(unhealthyConditions: [], nodeStartupTimeout: nil, maxUnhealthy: .count(1), unhealthyRange: "[1-3]")
        #expect(ranged.trigger == .unhealthyInRange(min: 1, max: 3))  // range wins
        #expect(ranged.nodeStartupTimeout == HealthCheckSpec.defaultNodeStartupTimeout)
        #expect(try HealthCheckSpec.v1beta2(unhealthyNodeConditions: [], nodeStartupTimeoutSeconds: 0, unhealthyLessThanOrEqualTo: nil, unhealthyInRange: nil).nodeStartupTimeout == nil)
        #expect(throws: DomainError.self) { try HealthCheckSpec.v1beta1(unhealthyConditions: [("Ready", .false, "5 minutes")], nodeStartupTimeout: nil, maxUnhealthy: nil, unhealthyRange: nil) }
        #expect(throws: DomainError.self) { try HealthCheckSpec.v1beta2(unhealthyNodeConditions: [("Ready", .false, -1)], nodeStartupTimeoutSeconds: nil, unhealthyLessThanOrEqualTo: nil, unhealthyInRange: nil) }
    }

    @Test("HealthCheck: timer: nextEvaluation is the earliest deadline over all targets")
    func nextEvaluation() {
        let targets = [
            HealthCheckTarget(machine: "a", createdAt: at(0), node: node(.false, since: 200)),  // due 501
            HealthCheckTarget(machine: "b", createdAt: at(0), node: node(.unknown, since: 100)),  // due 401
            HealthCheckTarget(machine: "c", createdAt: at(0), node: .notJoined),  // due 601
        ]
        #expect(evaluate(targets, now: 300).nextEvaluation == at(401))
        // Evaluating at that instant changes the verdict, as promised.
        #expect(evaluate(targets, now: 401).unhealthy.map(\.machine) == ["b"])
    }
}
