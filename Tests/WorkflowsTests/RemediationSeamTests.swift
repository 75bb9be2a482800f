import Engine
import Fleet
import Testing
@testable import Workflows

// The controller's health-check step (HealthCheckRemediation.actions, pure). Checked by
// breaking on purpose: without the `break` after the first remediation, "one start per pass"
// fails with two starts.
@Suite struct RemediationSeamTests {
    static let t0: Int64 = 1_700_000_000_000_000_000
    static func ns(_ seconds: Int64) -> Int64 { t0 + seconds * 1_000_000_000 }

    static let desired = DesiredCluster(
        namespace: "team-a", name: "alpha", version: try! KubernetesVersion(parsing: "v1.34.3"),
        deployments: [DesiredCluster.Deployment(name: "alpha-md-0", replicas: 3, version: try! KubernetesVersion(parsing: "v1.34.3"), revision: 4)])

    static func observed(notReady: [String]) -> ObservedCluster {
        var machines: [String: ObservedCluster.Machine] = [:]
        for n in 1...3 {
            let name = "alpha-md-0-\(n)"
            let status = notReady.contains(name) ? "False" : "True"
            machines[name] = ObservedCluster.Machine(
                deployment: "alpha-md-0", phase: "Running", version: try! KubernetesVersion(parsing: "v1.34.3"),
                conditions: ["Ready": .init(status: status, reason: nil, lastTransitionNanoseconds: ns(0))], sinceNanoseconds: ns(0),
                createdNanoseconds: ns(Int64(n)))
        }
        return ObservedCluster(
            controlPlane: .init(
                installedVersion: try! KubernetesVersion(parsing: "v1.34.3"), status: "Ready", ready: true, sinceNanoseconds: ns(0),
                initializedNanoseconds: ns(0)),
            machines: machines)
    }

    static let check = MachineHealthCheck(
        namespace: "team-a", name: "alpha-md-0", clusterName: "alpha", deployments: ["alpha-md-0"],
        spec: HealthCheckSpec(unhealthyNodeConditions: [UnhealthyCondition(type: "Ready", status: .false, timeout: GoDuration(seconds: 300))]))

    @Test("Remediation seam: an unhealthy machine becomes one Remediate start under the cluster's key, its decision recorded once started")
    func start() throws {
        let actions = HealthCheckRemediation.actions(
            cluster: Self.desired, observed: Self.observed(notReady: ["alpha-md-0-2"]), checks: [Self.check],
            now: Timestamp(nanoseconds: Self.ns(1000)), tuning: FleetController.Tuning(pollIntervalMilliseconds: 50))
        let start = try #require(actions.starts.first)
        #expect(actions.starts.count == 1)
        #expect(start.workflowID == "remediate/team-a/alpha/alpha-md-0-2")
        #expect(start.type == Remediate.type)
        #expect(start.uniqueKey == FleetController.uniqueKey(namespace: "team-a", name: "alpha"))
        #expect(FleetController.belongs(start.workflowID, namespace: "team-a", name: "alpha"))
        #expect(FleetController.isTopLevel(start.workflowID))
        #expect(!FleetController.isTopLevel(start.workflowID + "/provision/alpha-md-0-4"))
        let input = try Activities.decode(Remediate.Input.self, from: start.input)
        #expect(input.machine == "alpha-md-0-2" && input.reason == "UnhealthyNode" && input.version == "v1.34.3")
        #expect(input.machines == ["alpha-md-0-1", "alpha-md-0-2", "alpha-md-0-3"] && input.replicas == 3)
        #expect(input.pollIntervalMilliseconds == 50)
        guard case .remediationDecided(_, _, "alpha-md-0", "alpha-md-0-2", "UnhealthyNode", _, start.workflowID, _)? = actions.onStarted[start.workflowID]
        else {
            Issue.record("onStarted \(actions.onStarted)")
            return
        }
        #expect(actions.facts.isEmpty)
    }

    @Test("Remediation seam: one start per pass; too many unhealthy starts none and records the refusal")
    func onePerPass() {
        let two = HealthCheckRemediation.actions(
            cluster: Self.desired, observed: Self.observed(notReady: ["alpha-md-0-1", "alpha-md-0-2"]), checks: [Self.check],
            now: Timestamp(nanoseconds: Self.ns(1000)), tuning: FleetController.Tuning())
        #expect(two.starts.count == 1)
        var limited = Self.check
        limited.spec.trigger = .unhealthyAtMost(.count(1))
        let refused = HealthCheckRemediation.actions(
            cluster: Self.desired, observed: Self.observed(notReady: ["alpha-md-0-1", "alpha-md-0-2"]), checks: [limited],
            now: Timestamp(nanoseconds: Self.ns(1000)), tuning: FleetController.Tuning())
        #expect(refused.starts.isEmpty)
        guard case .remediationSkipped(_, _, _, "TooManyUnhealthy", _, 3, _)? = refused.facts.first else {
            Issue.record("facts \(refused.facts)")
            return
        }
    }
}
