import CapstanSupport
import Engine
import Foundation
import Testing
@testable import Fleet

private func v(_ text: String) -> KubernetesVersion { try! KubernetesVersion(parsing: text) }
private func minor(_ m: Int) -> KubernetesMinor { KubernetesMinor(major: 1, minor: m) }

// Checked by breaking on purpose: allowing a lag of 4 in `kubeletLagMax` fails the 1.30 → 1.34
// and 1.30 → 1.36 cases (workers would leap once); using the first patch of a minor instead of
// the newest fails "newest patch of each minor".

@Suite struct DomainVersionSkewTests {
    @Test("VersionSkew: kubelet: window of 3, 2 before 1.28 / for kubelets before 1.25")
    func kubeletWindow() {
        #expect(VersionSkew.allowsKubelet(minor(33), apiServer: minor(36)))
        #expect(!VersionSkew.allowsKubelet(minor(32), apiServer: minor(36)))
        #expect(VersionSkew.allowsKubelet(minor(36), apiServer: minor(36)))
        #expect(!VersionSkew.allowsKubelet(minor(37), apiServer: minor(36)))
        #expect(VersionSkew.allowsKubelet(minor(25), apiServer: minor(28)))
        #expect(!VersionSkew.allowsKubelet(minor(24), apiServer: minor(27)))  // CP < 1.28: window 2
        #expect(VersionSkew.allowsKubelet(minor(25), apiServer: minor(27)))
        #expect(VersionSkew.kubeletLagMax(apiServer: minor(28), kubelet: minor(24)) == 2)
        #expect(VersionSkew.kubeletLagMax(apiServer: minor(28), kubelet: minor(25)) == 3)
        #expect(!VersionSkew.allowsKubelet(KubernetesMinor(major: 2, minor: 0), apiServer: minor(36)))
    }

    @Test("VersionSkew: kubelet: errors name both versions")
    func kubeletErrors() {
        #expect(throws: DomainError(.versionSkew, "kubelet v1.35.0 is newer than the API server v1.34.2; a kubelet may never be newer")) {
            try VersionSkew.checkKubelet(v("1.35.0"), apiServer: v("1.34.2"))
        }
        #expect(throws: DomainError(.versionSkew, "kubelet v1.30.0 is 4 minors behind the API server v1.34.0; at most 3 are allowed")) {
            try VersionSkew.checkKubelet(v("1.30.0"), apiServer: v("1.34.0"))
        }
        #expect(throws: Never.self) { try VersionSkew.checkKubelet(v("1.33.9"), apiServer: v("1.33.1")) }  // patches mix
    }

    @Test("VersionSkew: join and control-plane steps")
    func joinAndSteps() {
        #expect(throws: Never.self) { try VersionSkew.checkJoin(v("1.34.0"), controlPlane: v("1.34.3")) }
        #expect(throws: DomainError.self) { try VersionSkew.checkJoin(v("1.33.5"), controlPlane: v("1.34.3")) }
        #expect(throws: Never.self) { try VersionSkew.checkControlPlaneStep(from: v("1.33.5"), to: v("1.34.0")) }
        #expect(throws: Never.self) { try VersionSkew.checkControlPlaneStep(from: v("1.33.1"), to: v("1.33.5")) }
        #expect(throws: DomainError.self) { try VersionSkew.checkControlPlaneStep(from: v("1.33.1"), to: v("1.35.0")) }
        do {
            try VersionSkew.checkControlPlaneStep(from: v("1.34.1"), to: v("1.34.0"))
            Issue.record("downgrade accepted")
        } catch let error as DomainError { #expect(error.code == .downgrade) } catch { Issue.record("\(error)") }
    }
}

@Suite struct DomainChainedUpgradePlanTests {
    /// Two patches of each minor 1.29 … 1.37, so "newest patch" is visible.
    static let catalog = try! VersionCatalog(versions: (29...37).flatMap { [v("1.\($0).0"), v("1.\($0).2")] } + [v("1.33.1"), v("1.34.1"), v("1.35.2").bumped])

    @Test("ChainedUpgradePlan: plan: 1.33 → 1.36, workers leap once at the end (issue's worked example)")
    func workedExample() throws {
        let plan = try ChainedUpgradePlan(
            controlPlane: v("1.33.0"), workers: ["md-a": v("1.33.0"), "md-b": v("1.33.0")], target: v("1.36.0"), catalog: Self.catalog)
        #expect(plan.steps == [
            .controlPlane(v("1.34.2")), .controlPlane(v("1.35.3")), .controlPlane(v("1.36.0")),
            .workers(v("1.36.0"), ["md-a", "md-b"]),
        ])
        #expect(plan.violations() == [])
        #expect(plan.workerVersions == [v("1.36.0")])
    }

    @Test("ChainedUpgradePlan: plan: 1.30 → 1.36 upgrades workers midway (skew)")
    func midwayWorkers() throws {
        let plan = try ChainedUpgradePlan(controlPlane: v("1.30.0"), workers: ["md": v("1.30.0")], target: v("1.36.2"), catalog: Self.catalog)
        #expect(plan.steps.map(\.description) == [
            "control plane → v1.31.2", "control plane → v1.32.2", "control plane → v1.33.2",
            "workers [md] → v1.33.2",
            "control plane → v1.34.2", "control plane → v1.35.3", "control plane → v1.36.2",
            "workers [md] → v1.36.2",
        ])
        #expect(plan.violations() == [])
    }

    // CAPI upgrade_plan_test.go TestComputeUpgradePlan, "upgrade sequence" rows whose control
    // plane plan is the newest-patch-per-minor one, with an equivalent catalog:
    // (control plane, workers, target) → (CP plan, worker plan).
    static let capiCatalog = try! VersionCatalog(versions: [v("1.30.0"), v("1.31.1"), v("1.32.0"), v("1.33.1"), v("1.34.1"), v("1.34.2"), v("1.35.2")])
    static let capiRows: [(String, String?, String, [String], [String])] = [
        ("v1.30.0", nil, "v1.33.1", ["v1.31.1", "v1.32.0", "v1.33.1"], []),
        ("v1.31.1", nil, "v1.33.1", ["v1.32.0", "v1.33.1"], []),
        ("v1.33.1", nil, "v1.33.1", [], []),
        ("v1.30.0", "v1.30.0", "v1.32.0", ["v1.31.1", "v1.32.0"], ["v1.32.0"]),
        ("v1.31.1", "v1.30.0", "v1.32.0", ["v1.32.0"], ["v1.32.0"]),
        ("v1.32.0", "v1.30.0", "v1.32.0", [], ["v1.32.0"]),
        ("v1.32.0", "v1.32.0", "v1.32.0", [], []),
        ("v1.30.0", "v1.30.0", "v1.34.1", ["v1.31.1", "v1.32.0", "v1.33.1", "v1.34.1"], ["v1.33.1", "v1.34.1"]),
        ("v1.31.1", "v1.30.0", "v1.34.1", ["v1.32.0", "v1.33.1", "v1.34.1"], ["v1.33.1", "v1.34.1"]),
        ("v1.32.0", "v1.30.0", "v1.34.1", ["v1.33.1", "v1.34.1"], ["v1.33.1", "v1.34.1"]),
        ("v1.33.1", "v1.30.0", "v1.34.1", ["v1.34.1"], ["v1.33.1", "v1.34.1"]),
        ("v1.33.1", "v1.33.1", "v1.34.1", ["v1.34.1"], ["v1.34.1"]),
        ("v1.34.1", "v1.33.1", "v1.34.1", [], ["v1.34.1"]),
    ]

    @Test("ChainedUpgradePlan: plan: CAPI TestComputeUpgradePlan rows", arguments: capiRows)
    func capiRow(controlPlane: String, worker: String?, target: String, wantCP: [String], wantWorkers: [String]) throws {
        let workers = worker.map { ["md": v($0)] } ?? [:]
        let plan = try ChainedUpgradePlan(controlPlane: v(controlPlane), workers: workers, target: v(target), catalog: Self.capiCatalog)
        #expect(plan.controlPlaneVersions.map(\.description) == wantCP)
        #expect(plan.workerVersions.map(\.description) == wantWorkers)
        #expect(plan.violations() == [])
    }

    @Test("ChainedUpgradePlan: plan: exact target last even when the catalog has a newer patch")
    func exactTarget() throws {
        let plan = try ChainedUpgradePlan(controlPlane: v("1.33.0"), workers: [:], target: v("1.35.0"), catalog: Self.catalog)
        #expect(plan.controlPlaneVersions == [v("1.34.2"), v("1.35.0")])
        let patchOnly = try ChainedUpgradePlan(controlPlane: v("1.35.0"), workers: ["md": v("1.35.0")], target: v("1.35.2"), catalog: Self.catalog)
        #expect(patchOnly.steps == [.controlPlane(v("1.35.2")), .workers(v("1.35.2"), ["md"])])
    }

    @Test("ChainedUpgradePlan: plan: deployments at different versions step separately")
    func mixedWorkers() throws {
        let plan = try ChainedUpgradePlan(
            controlPlane: v("1.32.0"), workers: ["old": v("1.29.0"), "new": v("1.32.0"), "mid": v("1.31.0")], target: v("1.36.0"),
            catalog: Self.catalog)
        #expect(plan.steps.map(\.description) == [
            "workers [old] → v1.32.0",  // 1.29 cannot face 1.33
            "control plane → v1.33.2", "control plane → v1.34.2",
            "workers [mid] → v1.34.2",  // 1.31 cannot face 1.35
            "control plane → v1.35.3",
            "workers [new, old] → v1.35.3",  // 1.32 cannot face 1.36
            "control plane → v1.36.0",
            "workers [mid, new, old] → v1.36.0",
        ])
        #expect(plan.violations() == [])
    }

    @Test("ChainedUpgradePlan: plan: old clusters use the narrower window of 2")
    func narrowWindow() throws {
        let catalog = try VersionCatalog(versions: (23...29).map { v("1.\($0).0") })
        let plan = try ChainedUpgradePlan(controlPlane: v("1.23.0"), workers: ["md": v("1.23.0")], target: v("1.29.0"), catalog: catalog)
        #expect(plan.workerVersions == [v("1.25.0"), v("1.28.0"), v("1.29.0")])
        #expect(plan.violations() == [])
    }

    static let refusals: [(String, [String: String], String, DomainError.Code, String)] = [
        ("1.33.0", [:], "1.36.1", .versionNotInCatalog, "target v1.36.1 is not in the version catalog"),
        ("1.34.0", [:], "1.33.2", .downgrade, "target v1.33.2 is older than the control plane's v1.34.0"),
        ("1.34.2", [:], "1.34.0", .downgrade, "Capstan never downgrades"),
        ("1.34.0", ["md": "1.34.2"], "1.34.0", .downgrade, "older than MachineDeployment md's v1.34.2"),
        ("1.34.0", ["md": "1.35.0"], "1.36.0", .versionSkew, "MachineDeployment md: kubelet v1.35.0 is newer than the API server v1.34.0"),
        ("1.34.0", ["md": "1.30.0"], "1.36.0", .versionSkew, "MachineDeployment md: kubelet v1.30.0 is 4 minors behind"),
    ]

    @Test("ChainedUpgradePlan: validation: refused with the reason", arguments: refusals)
    func refusal(controlPlane: String, workers: [String: String], target: String, code: DomainError.Code, reason: String) {
        do {
            let plan = try ChainedUpgradePlan(
                controlPlane: v(controlPlane), workers: workers.mapValues(v), target: v(target), catalog: Self.catalog)
            Issue.record("planned \(plan.steps)")
        } catch let error as DomainError {
            #expect(error.code == code)
            #expect(error.message.contains(reason), "\(error.message)")
        } catch { Issue.record("\(error)") }
    }

    @Test("ChainedUpgradePlan: validation: a missing minor is named")
    func missingMinor() throws {
        let catalog = try VersionCatalog(versions: [v("1.33.0"), v("1.34.0"), v("1.36.0")])
        #expect(throws: DomainError(.missingMinor, "the version catalog has no release of v1.35, which the control plane must pass through from v1.33.0 to v1.36.0 (one minor per step)")) {
            try ChainedUpgradePlan(controlPlane: v("1.33.0"), workers: [:], target: v("1.36.0"), catalog: catalog)
        }
    }

    @Test("ChainedUpgradePlan: violations: a hand-made bad plan is caught")
    func violationsCaught() throws {
        var plan = try ChainedUpgradePlan(controlPlane: v("1.30.0"), workers: ["md": v("1.30.0")], target: v("1.34.2"), catalog: Self.catalog)
        plan.steps.removeAll { $0.kind == .workers && $0.version == v("1.33.2") }  // workers left 4 behind
        #expect(plan.violations() == ["step 3: MachineDeployment md at v1.30.0 is outside the window of v1.34.2"])
        plan.steps.remove(at: 1)  // skip 1.32
        #expect(plan.violations().contains { $0.contains("at most one minor") })
    }

    @Test("ChainedUpgradePlan: codable: stored format round trip")
    func codable() throws {
        let plan = try ChainedUpgradePlan(controlPlane: v("1.30.0"), workers: ["md": v("1.30.0")], target: v("1.34.2"), catalog: Self.catalog)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(plan.steps[3])
        #expect(String(decoding: data, as: UTF8.self) == #"{"kind":"workers","machineDeployments":["md"],"version":"v1.33.2"}"#)
        #expect(try JSONDecoder().decode(ChainedUpgradePlan.self, from: encoder.encode(plan)) == plan)
    }

    @Test("ChainedUpgradePlan: property: every plan from random states is valid and minimal (seeds 1…300)")
    func randomPlans() throws {
        // Goal: across random clusters, the planner never produces a step that breaks a rule,
        // and each deployment steps no more often than the skew forces: ceil(gap/3) rollouts
        // for a gap of `gap` minors when the window is 3 throughout.
        for seed in UInt64(1)...300 {
            var random = SplitMix64(seed: seed)
            let cpMinor = Int.random(in: 29...34, using: &random)
            let targetMinor = Int.random(in: cpMinor...37, using: &random)
            var workers: [String: KubernetesVersion] = [:]
            for index in 0..<Int.random(in: 0...3, using: &random) {
                workers["md-\(index)"] = v("1.\(Int.random(in: max(25, cpMinor - 3)...cpMinor, using: &random)).0")
            }
            let plan = try ChainedUpgradePlan(controlPlane: v("1.\(cpMinor).0"), workers: workers, target: v("1.\(targetMinor).2"), catalog: Self.catalog)
            #expect(plan.violations() == [], "seed \(seed)")
            for (name, source) in workers {
                let rollouts = plan.steps.filter { $0.machineDeployments.contains(name) }.count
                let gap = targetMinor - source.minor
                #expect(rollouts == max(1, (gap + 2) / 3), "seed \(seed) \(name) from \(source): \(plan.steps)")
            }
        }
    }
}

private extension KubernetesVersion {
    var bumped: KubernetesVersion { KubernetesVersion(major: major, minor: minor, patch: patch + 1) }
}
