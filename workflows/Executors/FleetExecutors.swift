public import Engine
import Foundation
public import Logging
public import Providers

/// The executors of every activity in ``Activities``, over one management cluster.
///
/// Each is idempotent under the activity's key `<workflow id>/<activity id>`: deterministic
/// object names, the key as ownership annotation on creates (a 409 read back and verified as
/// ours), server-side apply for updates, 404 on delete taken as done, the key sent to the
/// update extension. Failures are ``ActivityFailure``s classified retryable or not; their
/// messages name objects and causes, never credentials (Secret messages are withheld by the
/// client, kubeconfigs never leave memory).
public struct FleetExecutors: Sendable {
    /// The management cluster (KubeVirt, Kamaji, Secrets).
    public let management: KubernetesClient
    /// The in-place update extension, nil when none is configured (then `machine.canUpdate`
    /// answers "no" and `machine.update` fails without retry).
    public let updateExtension: UpdateExtensionClient?
    /// Recorded time source for drain starts and token expiry (the engine's clock).
    public let clock: any EngineClock
    /// How long a bootstrap token stays valid.
    public let tokenLifetime: Duration
    let workloads: WorkloadClients
    let tokens: TokenSource
    let logger: Logger

    /// - Parameters:
    ///   - management: the management cluster's client.
    ///   - updateExtension: the in-place update extension's client, if any.
    ///   - clock: the engine's clock.
    ///   - tokenGenerator: draws bootstrap tokens; the caller brings the randomness (the system
    ///     generator in `capstan serve`, a seeded one in simulations), so this module has none.
    public init(
        management: KubernetesClient, updateExtension: UpdateExtensionClient? = nil, clock: any EngineClock,
        tokenLifetime: Duration = .seconds(24 * 3600),
        tokenGenerator: @escaping @Sendable () -> BootstrapToken,
        logger: Logger = Logger(label: "capstan.executors")
    ) {
        self.management = management
        self.updateExtension = updateExtension
        self.clock = clock
        self.tokenLifetime = tokenLifetime
        self.workloads = WorkloadClients(kamaji: KamajiProvider(client: management), logger: logger)
        self.tokens = TokenSource(draw: tokenGenerator)
        self.logger = logger
    }

    /// Every executor by activity name, for ``WorkflowEngine``.
    public func registry() -> [String: ActivityExecutor] {
        var executors: [String: ActivityExecutor] = [:]
        func add<Input: Decodable & Sendable, Output: Encodable & Sendable>(
            _ name: String, _ input: Input.Type,
            _ body: @escaping @Sendable (FleetExecutors, Input, IdempotencyKey) async throws -> Output
        ) {
            precondition(executors[name] == nil, "executor \(name) registered twice")
            executors[name] = { [self] context in
                let decoded: Input
                do { decoded = try Activities.decode(Input.self, from: context.input) } catch {
                    throw ActivityFailure(
                        kind: Activities.FailureKind.invalidInput,
                        message: "\(name): input is not \(Input.self): \(error)", retryable: false)
                }
                do {
                    return Activities.encode(try await body(self, decoded, IdempotencyKey(context.idempotencyKey)))
                } catch let failure as ActivityFailure {
                    throw failure
                } catch {
                    throw ExecutorFailure.classify(error, activity: name)
                }
            }
        }
        add(Activities.ensureBootstrap, Activities.BootstrapInput.self) { try await $0.ensureBootstrap($1, key: $2) }
        add(Activities.createVirtualMachine, Activities.VirtualMachineInput.self) {
            try await $0.createVirtualMachine($1, key: $2)
        }
        add(Activities.readVirtualMachine, Activities.MachineRef.self) { executors, input, _ in
            try await executors.readVirtualMachine(input)
        }
        add(Activities.deleteVirtualMachine, Activities.MachineRef.self) { executors, input, _ in
            try await executors.deleteVirtualMachine(input)
        }
        add(Activities.readNode, Activities.MachineRef.self) { executors, input, _ in try await executors.readNode(input) }
        add(Activities.setProviderID, Activities.MachineRef.self) { executors, input, _ in
            try await executors.setProviderID(input)
        }
        add(Activities.drainNode, Activities.DrainInput.self) { executors, input, _ in try await executors.drainNode(input) }
        add(Activities.deleteNode, Activities.MachineRef.self) { executors, input, _ in
            try await executors.deleteNode(input)
        }
        add(Activities.createControlPlane, Activities.ControlPlaneInput.self) {
            try await $0.createControlPlane($1, key: $2)
        }
        add(Activities.setControlPlaneVersion, Activities.ControlPlaneVersionInput.self) {
            try await $0.setControlPlaneVersion($1, key: $2)
        }
        add(Activities.readControlPlane, Activities.ClusterRef.self) { executors, input, _ in
            try await executors.readControlPlane(input)
        }
        add(Activities.readAdminKubeconfig, Activities.ClusterRef.self) { executors, input, _ in
            try await executors.readAdminKubeconfig(input)
        }
        add(Activities.deleteControlPlane, Activities.ClusterRef.self) { executors, input, _ in
            try await executors.deleteControlPlane(input)
        }
        add(Activities.canUpdateMachine, Activities.InPlaceInput.self) { try await $0.canUpdateMachine($1, key: $2) }
        add(Activities.updateMachine, Activities.InPlaceInput.self) { try await $0.updateMachine($1, key: $2) }
        precondition(Set(executors.keys) == Set(Activities.allNames), "every contract activity has one executor")
        return executors
    }
}

/// Draws bootstrap tokens; injected so tests and simulations can seed them.
struct TokenSource: Sendable {
    let draw: @Sendable () -> BootstrapToken
}

/// How an error thrown by Providers becomes an ``ActivityFailure``.
enum ExecutorFailure {
    typealias Kind = Activities.FailureKind

    static func classify(_ error: any Error, activity: String) -> ActivityFailure {
        switch error {
        case let error as KubernetesError:
            return ActivityFailure(kind: kind(of: error), message: "\(activity): \(error)", retryable: retryable(error))
        case let error as KubeconfigError:
            // Kamaji writes the admin kubeconfig; a broken one may be rewritten, so keep trying.
            return ActivityFailure(kind: Kind.notReady, message: "\(activity): \(error)", retryable: true)
        case is CancellationError:
            return ActivityFailure(kind: Kind.transient, message: "\(activity): cancelled", retryable: true)
        default:
            return ActivityFailure(kind: Kind.transient, message: "\(activity): \(error)", retryable: true)
        }
    }

    static func kind(of error: KubernetesError) -> String {
        if error.isTransient { return Kind.transient }
        switch error.code {
        case .notOurs: return Kind.notOurs
        case .notFound: return Kind.notFound
        case .conflict, .alreadyExists: return Kind.conflict
        case .invalidRequest: return Kind.invalidInput
        case .unauthorized: return Kind.notReady
        default: return Kind.rejected
        }
    }

    static func retryable(_ error: KubernetesError) -> Bool {
        if error.isTransient { return true }
        switch error.code {
        // Missing objects may appear; a stale resourceVersion is read again; credentials Kamaji
        // just rotated are read again.
        case .notFound, .conflict, .unauthorized: return true
        default: return false
        }
    }
}
