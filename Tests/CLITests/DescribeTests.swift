import Engine
import EventLog
import Fleet
import Foundation
import Testing

/// Goal: `describe cluster` shows the tree with problems first, `history cluster` the audit
/// timeline, and `replay --verify` finds a stored projection that the events do not give.
/// Method: the standard log of QueryTests, queried by the real binary; then a projection is
/// overwritten on purpose and verify must name it.
@Suite struct DescribeTests {
    @Test("CLI: describe and history: the cluster tree (problems first) and its timeline match the expected files")
    func describe() async throws {
        try await QueryTests.withLog({ try await QueryTests.standardLog("describe") }) { fleet in
            let d = ["--data-dir", fleet.directory]
            for (arguments, file) in [
                (["describe", "cluster", "prod"], "describe-prod.txt"),
                (["history", "cluster", "prod"], "history-prod.txt"),
                (["history", "cluster", "stage", "-n", "staging", "-o", "json"], "history-stage.json"),
            ] {
                let result = try await capstan(arguments + d)
                #expect(result.status == 0, "\(arguments): \(result.stderr)")
                try QueryTests.expectMatches(result.stdout, file: file)
            }
            let missing = try await capstan(["describe", "cluster", "nope"] + d)
            #expect(missing.status == 1 && missing.stderr.contains("no cluster default/nope"))
        }
    }

    @Test("CLI: replay: --verify passes on a log written normally and names an overwritten projection")
    func verify() async throws {
        try await QueryTests.withLog({ try await QueryTests.standardLog("verify") }) { fleet in
            let d = ["--data-dir", fleet.directory]
            let clean = try await capstan(["replay", "--verify", "-o", "json"] + d)
            #expect(clean.status == 0, "\(clean.stdout) \(clean.stderr)")
            struct Output: Decodable {
                var events: Int
                var verified: Bool?
                var firstDifference: String?
                var workflows: Int
            }
            let report = try JSONDecoder().decode(Output.self, from: Data(clean.stdout.utf8))
            #expect(report.verified == true && report.workflows == 3)
            #expect(report.events == Int(try fleet.log.reader.lastPosition().rawValue))
            // A projection the events do not give: the machine's phase changed in place.
            let key = "fleet/observed/default/prod"
            let stored = try #require(try fleet.log.reader.state(forKey: key))
            var observed = try JSONDecoder().decode(ObservedCluster.self, from: Data(stored))
            observed.machines["prod-md-0-a"]?.phase = "Deleting"
            _ = try await fleet.log.append([], stateWrites: [.put(key: key, value: Array(try JSONEncoder().encode(observed)))])
            let damaged = try await capstan(["replay", "--verify"] + d)
            #expect(damaged.status == 1)
            #expect(damaged.stdout.contains("DIFFERENT: 1 entries differ; the first: \(key): differs at machines.prod-md-0-a.phase"),
                    "\(damaged.stdout)")
            // A workflow snapshot that is not its stream's fold: another run's under its key.
            let other = try #require(try fleet.log.reader.state(forKey: StateKey.running("delete/default/prod-md-0-z")))
            _ = try await fleet.log.append(
                [], stateWrites: [.put(key: key, value: stored), .put(key: StateKey.running("delete/default/prod-md-0-y"), value: other)])
            let swapped = try await capstan(["replay", "--verify"] + d)
            #expect(swapped.status == 1)
            #expect(swapped.stdout.contains("engine/run/delete/default/prod-md-0-y: the stored snapshot is not the fold"), "\(swapped.stdout)")
            // --to: the fleet as it was after the apply alone (nothing observed yet).
            let applied = fleet.appliedPosition.rawValue
            let early = try await capstan(["replay", "--to", "\(applied)"] + d)
            #expect(early.status == 0 && early.stdout.contains("through position \(applied) "), "\(early.stdout) \(early.stderr)")
            #expect(early.stdout.contains("NotObserved"), "\(early.stdout)")
            let usage = try await capstan(["replay", "--verify", "--to", "3"] + d)
            #expect(usage.status == 2 && usage.stderr.contains("drop --to"))
        }
    }
}
