import Foundation
import Synchronization

/// Faults the simulator injects into API requests, drawn from the run's seed.
///
/// Rates are probabilities per request in [0, 1]. `/_sim/...` requests are never faulted.
/// The JSON shape (`PUT /_sim/faults`) is the same as the `--faults` flag's and is
/// documented in `tools/kube-sim/README.md`.
public struct FaultConfiguration: Sendable, Equatable {
    /// Added to every request before it is handled.
    public var latencyMilliseconds: Int = 0
    /// Up to this much more latency, uniformly drawn.
    public var latencyJitterMilliseconds: Int = 0
    /// Per verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `apply`, `delete`, `evict`;
    /// `*` for any): the rate of failing before the request is applied, with `errorCode`.
    public var errorRates: [String: Double] = [:]
    /// 500 (InternalError) or 503 (ServiceUnavailable).
    public var errorCode: Int = 500
    /// The rate of 429 TooManyRequests answers with a `Retry-After` of `retryAfterSeconds`.
    public var tooManyRequestsRate: Double = 0
    public var retryAfterSeconds: Int = 1
    /// The rate of closing the connection before answering (nothing is applied).
    public var connectionResetRate: Double = 0
    /// The rate of applying a write and then closing the connection without answering.
    public var dropResponseRate: Double = 0
    /// Faults that happen exactly `count` times for matching requests, before any rate is drawn.
    public var scripted: [ScriptedFault] = []

    public init() {}

    /// A fault for the next `count` requests matching verb, resource and name (nil matches any).
    public struct ScriptedFault: Sendable, Equatable {
        public enum Kind: String, Sendable {
            case error, tooManyRequests, connectionReset, dropResponse
        }
        public var kind: Kind
        public var verb: String?
        public var resource: String?
        public var name: String?
        public var cluster: String?
        public var count: Int
        public var code: Int?

        public init(
            kind: Kind, verb: String? = nil, resource: String? = nil, name: String? = nil, cluster: String? = nil,
            count: Int = 1, code: Int? = nil
        ) {
            self.kind = kind
            self.verb = verb
            self.resource = resource
            self.name = name
            self.cluster = cluster
            self.count = count
            self.code = code
        }
    }

    /// Parses the JSON shape of `PUT /_sim/faults` and `--faults`.
    ///
    /// - Throws: `FaultConfigurationError` naming the field and why.
    public init(json: JSON) throws {
        func rate(_ key: String) throws -> Double {
            guard let value = json[key] else { return 0 }
            guard let rate = value.doubleValue, rate >= 0, rate <= 1 else {
                throw FaultConfigurationError(field: key, reason: "must be a number between 0 and 1")
            }
            return rate
        }
        func count(_ key: String, default fallback: Int) throws -> Int {
            guard let value = json[key] else { return fallback }
            guard let number = value.intValue, number >= 0 else {
                throw FaultConfigurationError(field: key, reason: "must be a non-negative integer")
            }
            return Int(number)
        }
        guard json.objectValue != nil else { throw FaultConfigurationError(field: "(root)", reason: "must be a JSON object") }
        let known: Set<String> = [
            "latencyMilliseconds", "latencyJitterMilliseconds", "errorRates", "errorCode", "tooManyRequestsRate",
            "retryAfterSeconds", "connectionResetRate", "dropResponseRate", "scripted",
        ]
        if let unknown = json.objectValue!.keys.sorted().first(where: { !known.contains($0) }) {
            throw FaultConfigurationError(field: unknown, reason: "unknown field")
        }
        latencyMilliseconds = try count("latencyMilliseconds", default: 0)
        latencyJitterMilliseconds = try count("latencyJitterMilliseconds", default: 0)
        errorCode = try count("errorCode", default: 500)
        guard [500, 503].contains(errorCode) else {
            throw FaultConfigurationError(field: "errorCode", reason: "must be 500 or 503")
        }
        tooManyRequestsRate = try rate("tooManyRequestsRate")
        retryAfterSeconds = try count("retryAfterSeconds", default: 1)
        connectionResetRate = try rate("connectionResetRate")
        dropResponseRate = try rate("dropResponseRate")
        for (verb, value) in json["errorRates"]?.objectValue ?? [:] {
            guard let rate = value.doubleValue, rate >= 0, rate <= 1 else {
                throw FaultConfigurationError(field: "errorRates.\(verb)", reason: "must be a number between 0 and 1")
            }
            errorRates[verb] = rate
        }
        for (index, rule) in (json["scripted"]?.arrayValue ?? []).enumerated() {
            guard let kindText = rule["kind"]?.stringValue, let kind = ScriptedFault.Kind(rawValue: kindText) else {
                throw FaultConfigurationError(
                    field: "scripted[\(index)].kind",
                    reason: "must be one of error, tooManyRequests, connectionReset, dropResponse")
            }
            scripted.append(
                ScriptedFault(
                    kind: kind, verb: rule["verb"]?.stringValue, resource: rule["resource"]?.stringValue,
                    name: rule["name"]?.stringValue, cluster: rule["cluster"]?.stringValue,
                    count: Int(rule["count"]?.intValue ?? 1), code: rule["code"]?.intValue.map { Int($0) }))
        }
    }

    var json: JSON {
        [
            "latencyMilliseconds": .int(Int64(latencyMilliseconds)),
            "latencyJitterMilliseconds": .int(Int64(latencyJitterMilliseconds)),
            "errorRates": .object(errorRates.mapValues { .double($0) }), "errorCode": .int(Int64(errorCode)),
            "tooManyRequestsRate": .double(tooManyRequestsRate), "retryAfterSeconds": .int(Int64(retryAfterSeconds)),
            "connectionResetRate": .double(connectionResetRate), "dropResponseRate": .double(dropResponseRate),
            "scripted": .array(
                scripted.map { fault in
                    var rule: JSON = ["kind": .string(fault.kind.rawValue), "count": .int(Int64(fault.count))]
                    rule["verb"] = fault.verb.map(JSON.string)
                    rule["resource"] = fault.resource.map(JSON.string)
                    rule["name"] = fault.name.map(JSON.string)
                    rule["cluster"] = fault.cluster.map(JSON.string)
                    rule["code"] = fault.code.map { .int(Int64($0)) }
                    return rule
                }),
        ]
    }
}

public struct FaultConfigurationError: Error, Sendable, CustomStringConvertible {
    public var field: String
    public var reason: String
    public var description: String { "fault configuration: \(field): \(reason)" }
}

/// What the fault injector decided for one request.
struct FaultDecision: Sendable {
    enum Outcome: Sendable {
        case proceed
        case fail(APIError)
        case connectionReset
        case dropResponse
    }
    var delay: Duration
    var outcome: Outcome
}

/// Draws faults for requests from the configuration and the seeded generator.
final class FaultInjector: Sendable {
    private let configuration: Mutex<FaultConfiguration>
    private let random: SimRandom

    init(_ configuration: FaultConfiguration, random: SimRandom) {
        self.configuration = Mutex(configuration)
        self.random = random
    }

    var current: FaultConfiguration { configuration.withLock { $0 } }

    func set(_ new: FaultConfiguration) { configuration.withLock { $0 = new } }

    func decide(verb: String, resource: String, name: String?, cluster: String) -> FaultDecision {
        configuration.withLock { configuration in
            var delay = Duration.milliseconds(configuration.latencyMilliseconds)
            if configuration.latencyJitterMilliseconds > 0 {
                delay += .milliseconds(Int(random.next() % UInt64(configuration.latencyJitterMilliseconds + 1)))
            }
            if let index = configuration.scripted.firstIndex(where: { fault in
                fault.count > 0 && (fault.verb == nil || fault.verb == verb)
                    && (fault.resource == nil || fault.resource == resource)
                    && (fault.name == nil || fault.name == name) && (fault.cluster == nil || fault.cluster == cluster)
            }) {
                let fault = configuration.scripted[index]
                configuration.scripted[index].count -= 1
                if configuration.scripted[index].count == 0 { configuration.scripted.remove(at: index) }
                return FaultDecision(delay: delay, outcome: FaultInjector.outcome(fault.kind, code: fault.code, retryAfter: configuration.retryAfterSeconds))
            }
            if random.chance(configuration.connectionResetRate) {
                return FaultDecision(delay: delay, outcome: .connectionReset)
            }
            if random.chance(configuration.tooManyRequestsRate) {
                return FaultDecision(delay: delay, outcome: FaultInjector.outcome(.tooManyRequests, code: nil, retryAfter: configuration.retryAfterSeconds))
            }
            if random.chance(configuration.errorRates[verb] ?? configuration.errorRates["*"] ?? 0) {
                return FaultDecision(delay: delay, outcome: FaultInjector.outcome(.error, code: configuration.errorCode, retryAfter: configuration.retryAfterSeconds))
            }
            if random.chance(configuration.dropResponseRate) {
                return FaultDecision(delay: delay, outcome: .dropResponse)
            }
            return FaultDecision(delay: delay, outcome: .proceed)
        }
    }

    private static func outcome(_ kind: FaultConfiguration.ScriptedFault.Kind, code: Int?, retryAfter: Int) -> FaultDecision.Outcome {
        switch kind {
        case .error:
            if code == 503 {
                return .fail(.serviceUnavailable("kube-sim: injected fault", retryAfterSeconds: retryAfter))
            }
            return .fail(.internalError("kube-sim: injected fault"))
        case .tooManyRequests:
            return .fail(.tooManyRequests("kube-sim: injected throttling, please try again later", retryAfterSeconds: retryAfter))
        case .connectionReset: return .connectionReset
        case .dropResponse: return .dropResponse
        }
    }
}
