import Foundation
import Testing

@testable import KubeSimKit

/// The simulator's building blocks, without a server.
@Suite("kube-sim units")
struct UnitTests {
    @Test("JSON: parse and serialize: integers stay integers, escapes and unicode round-trip")
    func jsonRoundTrip() throws {
        let text = #"{"b":[1,-2,3.5,true,null],"a":"x\"y\\z\n\u00e9\ud83d\ude00","n":9007199254740993}"#
        let value = try JSON.parse(text)
        #expect(value["n"] == .int(9_007_199_254_740_993))
        #expect(value["b"]?.arrayValue?[2] == .double(3.5))
        #expect(value["a"]?.stringValue == "x\"y\\z\né😀")
        #expect(try JSON.parse(value.serialized()) == value)
        #expect(value.serialized().hasPrefix(#"{"a":"#))  // keys sorted
        for bad in ["{", #"{"a" 1}"#, "[1,]", "tru", #""\x""#, "1 2"] {
            #expect(throws: JSONSyntaxError.self) { try JSON.parse(bad) }
        }
    }

    @Test("JSON: YAML: plain scalars typed, quoted scalars strings")
    func yaml() throws {
        let value = try JSON.parseYAML("a: 1\nb: \"1\"\nc: true\nd: v1.33.0\ne: null\nf: [x, 2]\n")
        #expect(value == ["a": 1, "b": "1", "c": true, "d": "v1.33.0", "e": nil, "f": ["x", 2]])
    }

    @Test("Selectors: labels: =, !=, in, notin, exists, !exists")
    func labelSelectors() throws {
        let labels = ["app": "web", "tier": "front"]
        func matches(_ text: String) throws -> Bool { try LabelSelector(parsing: text).matches(labels) }
        #expect(try matches("app=web,tier==front"))
        #expect(try !matches("app!=web"))
        #expect(try matches("app in (web, db),tier notin (back)"))
        #expect(try !matches("app notin (web)"))
        #expect(try matches("app,!legacy"))
        #expect(try !matches("legacy"))
        #expect(throws: APIError.self) { try LabelSelector(parsing: "app in web") }
        #expect(LabelSelector(object: ["matchExpressions": [["key": "app", "operator": "In", "values": ["web"]]]]).matches(labels))
    }

    @Test("Patches: merge patch removes with null; JSON patch add, replace, remove, test")
    func patches() throws {
        let object: JSON = ["spec": ["a": 1, "b": ["x": 1]], "list": [1, 2]]
        #expect(object.mergePatched(with: ["spec": ["a": nil, "b": ["y": 2]], "list": [3]])
            == ["spec": ["b": ["x": 1, "y": 2]], "list": [3]])
        let patched = try object.jsonPatched(with: [
            ["op": "replace", "path": "/spec/a", "value": 5], ["op": "add", "path": "/list/-", "value": 9],
            ["op": "remove", "path": "/spec/b"], ["op": "test", "path": "/spec/a", "value": 5],
        ])
        #expect(patched == ["spec": ["a": 5], "list": [1, 2, 9]])
        #expect(throws: APIError.self) { try object.jsonPatched(with: [["op": "test", "path": "/spec/a", "value": 2]]) }
        #expect(throws: APIError.self) { try object.jsonPatched(with: [["op": "replace", "path": "/nope", "value": 2]]) }
    }

    /// Broken on purpose: comparing whole versions (`kubelet > controlPlane`) refuses the newer
    /// patches below, as kube-sim did before issue 12.
    @Test("Versions: skew: join only at the control plane's minor (any patch), never a newer minor, never 4 minors behind")
    func skew() throws {
        let cp = try #require(KubeVersion("v1.34.2"))
        #expect(SkewRules.joinRefusal(kubelet: try #require(KubeVersion("1.34.0")), controlPlane: cp) == nil)
        #expect(SkewRules.joinRefusal(kubelet: try #require(KubeVersion("v1.33.9")), controlPlane: cp) != nil)
        #expect(SkewRules.joinRefusal(kubelet: try #require(KubeVersion("v1.34.3")), controlPlane: cp) == nil)
        #expect(SkewRules.joinRefusal(kubelet: try #require(KubeVersion("v1.35.0")), controlPlane: cp) != nil)
        #expect(SkewRules.runningSkewProblem(kubelet: try #require(KubeVersion("v1.34.9")), apiServer: cp) == nil)
        #expect(SkewRules.runningSkewProblem(kubelet: try #require(KubeVersion("v1.35.0")), apiServer: cp) != nil)
        #expect(SkewRules.runningSkewProblem(kubelet: try #require(KubeVersion("v1.31.0")), apiServer: cp) == nil)
        #expect(SkewRules.runningSkewProblem(kubelet: try #require(KubeVersion("v1.30.9")), apiServer: cp) != nil)
        #expect(KubeVersion("v1.34") == nil)
        #expect(KubeVersion("v1.34.0-rc.1") == KubeVersion("v1.34.0"))
    }

    @Test("Machines: kubelet version read from userdata in the documented spellings")
    func userdataVersions() {
        #expect(VirtualMachine.kubeletVersion(inUserdata: "x: 1\n  kubernetesVersion: v1.33.2\n") == KubeVersion("v1.33.2"))
        #expect(VirtualMachine.kubeletVersion(inUserdata: "# kubelet-version=1.32.0") == KubeVersion("v1.32.0"))
        #expect(VirtualMachine.kubeletVersion(inUserdata: #"{"kubeletVersion": "v1.31.4"}"#) == KubeVersion("v1.31.4"))
        #expect(VirtualMachine.kubeletVersion(inUserdata: "runcmd: [kubeadm join]") == nil)
    }

    @Test("Machines: kubeadm JoinConfiguration: endpoint and pins read; no pin without unsafeSkip refused")
    func joinConfiguration() throws {
        let text = """
            write_files:
            - content: |
                discovery:
                  bootstrapToken:
                    apiServerEndpoint: "127.0.0.1:40001"
                    caCertHashes:
                    - "sha256:aa"
                    - sha256:bb
                nodeRegistration:
                  name: m1
            """
        let join = try #require(KubeadmJoinConfiguration(userdata: text))
        #expect(join.apiServerEndpoint == "127.0.0.1:40001")
        #expect(join.caCertHashes == ["sha256:aa", "sha256:bb"])
        #expect(join.discoveryRefusal(caPublicKeyHash: "sha256:bb") == nil)
        #expect(join.discoveryRefusal(caPublicKeyHash: "sha256:cc")?.contains("none of the public keys") == true)
        let bare = try #require(KubeadmJoinConfiguration(userdata: "apiServerEndpoint: 127.0.0.1:1\n"))
        #expect(bare.discoveryRefusal(caPublicKeyHash: "sha256:cc")?.contains("unsafeSkipCAVerification") == true)
        let skip = try #require(KubeadmJoinConfiguration(userdata: "apiServerEndpoint: 127.0.0.1:1\nunsafeSkipCAVerification: true\n"))
        #expect(skip.discoveryRefusal(caPublicKeyHash: "sha256:cc") == nil)
        #expect(KubeadmJoinConfiguration(userdata: "kubernetesVersion: v1.33.0\n") == nil)
    }

    @Test("Faults: configuration: unknown fields and bad rates named")
    func faultConfiguration() throws {
        #expect(throws: FaultConfigurationError.self) { try FaultConfiguration(json: ["dropResponse": 0.1]) }
        do {
            _ = try FaultConfiguration(json: ["errorRates": ["create": 1.5]])
            Issue.record("a rate of 1.5 was accepted")
        } catch let error as FaultConfigurationError {
            #expect(error.field == "errorRates.create")
        }
        let parsed = try FaultConfiguration(json: ["scripted": [["kind": "dropResponse", "verb": "create", "count": 2]]])
        #expect(parsed.scripted.first?.count == 2)
    }

    @Test("Faults: the same seed draws the same faults")
    func seededFaults() {
        var configuration = FaultConfiguration()
        configuration.errorRates["*"] = 0.3
        configuration.connectionResetRate = 0.1
        func draws(seed: UInt64) -> [String] {
            let injector = FaultInjector(configuration, random: SimRandom(seed: seed))
            return (0..<200).map { _ in
                switch injector.decide(verb: "get", resource: "pods", name: nil, cluster: "management").outcome {
                case .proceed: return "ok"
                case .fail(let error): return String(error.code)
                case .connectionReset: return "reset"
                case .dropResponse: return "drop"
                }
            }
        }
        #expect(draws(seed: 9) == draws(seed: 9))
        #expect(draws(seed: 9) != draws(seed: 10))
        #expect(draws(seed: 9).contains("500"))
    }

    @Test("Time: RFC 3339 in UTC")
    func timestamps() {
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: 1_795_000_000)) == "2026-11-18T11:06:40Z")
    }
}
