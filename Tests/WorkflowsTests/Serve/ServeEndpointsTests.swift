@testable import CapstanCLI
import Fleet
import Foundation
import KubeSimKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `capstan serve --metrics-address`: `/healthz` follows the engine and the management
/// cluster's API; `/metrics` carries workflows by state, activity latency and retries, and
/// append latency.
@Suite(.serialized) struct ServeEndpointsTests {
    /// Goal: with a real serve against kube-sim: /healthz 200 (JSON) while both run; after
    /// provisioning one cluster, /metrics has every `capstan_workflows` state with completed > 0
    /// and running ≥ 0, activity latency histograms with counts for the activities that ran,
    /// their retry counters, and append latency with a count > 0; kube-sim stopped, /healthz
    /// turns 503 naming the management cluster API, with no credential in the body.
    ///
    /// Broken on purpose once each: the probe's result ignored (healthz always 200): the
    /// 503 wait timed out; the finished workflows not loaded from the commits (completed
    /// stayed 0): the completed wait timed out.
    @Test("Serve: endpoints: /metrics after provisioning; /healthz 200, then 503 once the management cluster is gone")
    func endpoints() async throws {
        let work = try makeTemporaryDirectory("endpoints")
        defer { try? FileManager.default.removeItem(atPath: work) }
        var configuration = KubeSimConfiguration(stateDirectory: work + "/sim", port: 0, seed: 20261205)
        configuration.delays.virtualMachineReady = .milliseconds(100)
        configuration.delays.nodeJoin = .milliseconds(100)
        configuration.delays.controlPlaneProvision = .milliseconds(200)
        let sim = try await KubeSim.start(configuration)
        let data = work + "/data"
        let logPath = work + "/serve.log"
        let supervisor = ServeSupervisor(
            executable: try builtExecutable("capstan"),
            arguments: [
                "serve", "--data-dir", data, "--kubeconfig", sim.managementKubeconfigPath, "--log-level", "info",
                "--poll-interval", "50", "--metrics-address", "127.0.0.1:0",
            ],
            logPath: logPath)
        var simRunning = true
        do {
            try await supervisor.ensureRunning()
            let base = try await Self.metricsURL(logPath + ".out")
            // Up: the first probe answered.
            let up = try await Self.wait("healthz 200", { try await Self.get(base + "/healthz") }) { $0.status == 200 }
            let upJSON = try #require(try JSONSerialization.jsonObject(with: Data(up.body.utf8)) as? [String: Any])
            #expect(upJSON["status"] as? String == "ok" && upJSON["managementCluster"] as? String == "ok", "\(up.body)")

            try FleetManifests.catalog(["v1.33.0"]).write(toFile: work + "/catalog.yaml", atomically: true, encoding: .utf8)
            try FleetManifests.cluster("m1", version: "v1.33.0", deployments: 1, replicas: 1)
                .write(toFile: work + "/fleet.yaml", atomically: true, encoding: .utf8)
            let apply = try await applyOnceServeCreatedLog(["apply", "-f", "catalog.yaml", "-f", "fleet.yaml", "--data-dir", data], in: work)
            #expect(apply.status == 0, "apply: \(apply.stderr)")
            try await ServeControllerProofTests.waitFleet(data, "provisioned", supervisor: supervisor, timeout: .seconds(120)) { fleet in
                fleet.first?.controlPlane.ready == true && fleet.first?.deployments.first?.readyMachines == 1
            }
            // CreateCluster and its ProvisionMachine child completed (the gauge is published once a second).
            let scrape = try await Self.wait("completed workflows in /metrics", { try await Self.get(base + "/metrics") }) {
                (Self.sample($0.body, "capstan_workflows", ["state": "completed"]) ?? 0) >= 2
            }
            let text = scrape.body
            for state in EngineGauges.states {
                #expect(Self.sample(text, "capstan_workflows", ["state": state]) != nil, "capstan_workflows{state=\"\(state)\"} missing")
            }
            #expect((Self.sample(text, "capstan_workflows", ["state": "running"]) ?? -1) >= 0)
            #expect(Self.sample(text, "capstan_workflows", ["state": "failed"]) == 0)
            for activity in ["vm.create", "bootstrap.ensure", "node.read"] where text.contains("activity=\"\(activity)\"") {
                #expect((Self.sample(text, "capstan_activity_duration_seconds_count", ["activity": activity]) ?? 0) >= 1, "\(activity)")
                #expect(Self.sample(text, "capstan_activity_retries_total", ["activity": activity]) != nil, "\(activity)")
            }
            #expect((Self.sample(text, "capstan_activity_duration_seconds_count", ["activity": "vm.create"]) ?? 0) >= 1,
                    "no vm.create latency in:\n\(text.split(separator: "\n").filter { $0.contains("activity_duration") }.prefix(10).joined(separator: "\n"))")
            #expect((Self.sample(text, "capstan_log_append_duration_seconds_count", [:]) ?? 0) > 0)
            #expect((Self.sample(text, "capstan_log_append_duration_seconds_sum", [:]) ?? 0) > 0)

            // The management cluster goes away: 503, naming it, without a credential.
            let kubeconfig = try String(contentsOfFile: sim.managementKubeconfigPath, encoding: .utf8)
            let secrets = kubeconfig.split(separator: "\n").compactMap { line -> String? in
                let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, ["token", "client-key-data", "client-certificate-data"].contains(parts[0]) else { return nil }
                return parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            }
            #expect(!secrets.isEmpty, "the kubeconfig has a credential to look for")
            await sim.shutdown()
            simRunning = false
            let down = try await Self.wait("healthz 503", { try await Self.get(base + "/healthz") }) { $0.status == 503 }
            let downJSON = try #require(try JSONSerialization.jsonObject(with: Data(down.body.utf8)) as? [String: Any])
            #expect(downJSON["status"] as? String == "unavailable")
            #expect((downJSON["reason"] as? String)?.hasPrefix("management cluster API: ") == true, "\(down.body)")
            for secret in secrets { #expect(!down.body.contains(secret), "a credential in /healthz") }
            #expect(!down.body.contains("BEGIN"), "key material in /healthz")
        } catch {
            Issue.record("\(error)\nserve log:\n\(supervisor.logTail(lines: 60))")
        }
        let status = await supervisor.terminate()
        #expect(status == 0, "serve exits 0 on SIGTERM, got \(String(describing: status))")
        if simRunning { await sim.shutdown() }
    }

    @Test("Serve: healthz: 503 with the reason when the engine stopped, before the first probe, after a failed or stale one; 200 otherwise")
    func answers() throws {
        let now = ContinuousClock.now
        let fresh = ManagementProbe.Result(at: now - .seconds(1), failure: nil)
        let ok = ServeHealth.answer(engineRunning: true, probe: fresh, now: now, staleAfter: .seconds(12), workflowsRunning: 3)
        #expect(ok.status == 200)
        #expect(ok.body == #"{"status":"ok","workflowsRunning":3,"managementCluster":"ok"}"# + "\n")
        func reason(_ answer: (status: Int, body: String)) throws -> String {
            #expect(answer.status == 503)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any])
            #expect(json["status"] as? String == "unavailable")
            return try #require(json["reason"] as? String)
        }
        #expect(try reason(ServeHealth.answer(engineRunning: false, probe: fresh, now: now, staleAfter: .seconds(12), workflowsRunning: 0))
                == "engine stopped")
        #expect(try reason(ServeHealth.answer(engineRunning: true, probe: nil, now: now, staleAfter: .seconds(12), workflowsRunning: 0))
                == "management cluster API not probed yet")
        let failed = ManagementProbe.Result(at: now - .seconds(2), failure: "get /readyz: connection refused")
        #expect(try reason(ServeHealth.answer(engineRunning: true, probe: failed, now: now, staleAfter: .seconds(12), workflowsRunning: 0))
                == "management cluster API: get /readyz: connection refused (2s ago)")
        let stale = ManagementProbe.Result(at: now - .seconds(30), failure: nil)
        #expect(try reason(ServeHealth.answer(engineRunning: true, probe: stale, now: now, staleAfter: .seconds(12), workflowsRunning: 0))
                == "management cluster API: no probe answered for 30s")
    }

    // MARK: helpers

    /// The metrics base URL serve printed on standard output.
    static func metricsURL(_ outPath: String) async throws -> String {
        let prefix = "capstan serve: metrics on "
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) { return String(line.dropFirst(prefix.count)) }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ServeTestError("serve printed no metrics address in \(outPath)")
    }

    /// GET through curl (plain HTTP): the status and body.
    static func get(_ url: String) async throws -> (status: Int, body: String) {
        let directory = try makeTemporaryDirectory("curl")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sS", "--noproxy", "*", "--max-time", "10", "-o", directory + "/body", "-w", "%{http_code}", url]
        FileManager.default.createFile(atPath: directory + "/code", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: directory + "/code")
        process.standardError = FileHandle.nullDevice
        try process.run()
        while process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
        let code = Int((try? String(contentsOfFile: directory + "/code", encoding: .utf8)) ?? "") ?? 0
        let body = (try? String(contentsOfFile: directory + "/body", encoding: .utf8)) ?? ""
        return (code, body)
    }

    /// Polls `read` until `condition` holds (60 s), returning the reply that satisfied it.
    static func wait(
        _ what: String, _ read: () async throws -> (status: Int, body: String), until condition: ((status: Int, body: String)) -> Bool
    ) async throws -> (status: Int, body: String) {
        let deadline = ContinuousClock.now + .seconds(60)
        var last: (status: Int, body: String) = (0, "")
        while ContinuousClock.now < deadline {
            last = try await read()
            if condition(last) { return last }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw ServeTestError("\(what) not seen within 60 s; last: \(last.status) \(last.body.prefix(2000))")
    }

    /// The value of the Prometheus sample `name` whose labels include `labels` (nil: none).
    static func sample(_ text: String, _ name: String, _ labels: [String: String]) -> Double? {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            let series = line[..<space]
            let seriesName = series.split(separator: "{", maxSplits: 1).first.map(String.init) ?? ""
            guard seriesName == name else { continue }
            let matches = labels.allSatisfy { series.contains("\($0.key)=\"\($0.value)\"") }
            if matches, let value = Double(line[line.index(after: space)...]) { return value }
        }
        return nil
    }
}
