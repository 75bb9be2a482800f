internal import CapstanSupport
public import Engine

/// One machine of a MachineDeployment, as the rollout arithmetic sees it.
public struct RolloutMachine: Hashable, Sendable, Codable {
    public var name: String
    /// Built from the deployment's current template (version, image, bootstrap); old otherwise.
    public var isUpToDate: Bool
    /// Ready (available): its Node joined and reports Ready.
    public var isReady: Bool
    /// Deletion has begun (CAPI: a deletionTimestamp); it still holds its VM until gone.
    public var isDeleting: Bool
    /// Healthy in CAPI's deletion-priority sense: has a Node, `NodeHealthy` and
    /// `HealthCheckSucceeded` are not False.
    public var isHealthy: Bool
    /// Carries the `cluster.x-k8s.io/delete-machine` annotation.
    public var isMarkedForDeletion: Bool
    /// An in-place update is in progress on it.
    public var isUpdatingInPlace: Bool
    public var createdAt: Timestamp

    public init(
        name: String, isUpToDate: Bool, isReady: Bool, isDeleting: Bool = false, isHealthy: Bool? = nil,
        isMarkedForDeletion: Bool = false, isUpdatingInPlace: Bool = false, createdAt: Timestamp
    ) {
        self.name = name
        self.isUpToDate = isUpToDate
        self.isReady = isReady
        self.isDeleting = isDeleting
        self.isHealthy = isHealthy ?? isReady
        self.isMarkedForDeletion = isMarkedForDeletion
        self.isUpdatingInPlace = isUpdatingInPlace
        self.createdAt = createdAt
    }
}

/// The order scale-down picks victims in (`spec.deletion.order`, v1beta1 `strategy.rollingUpdate.deletePolicy`).
public enum DeletionOrder: String, Hashable, Sendable, Codable, CaseIterable {
    case random = "Random"
    case newest = "Newest"
    case oldest = "Oldest"
}

/// How a MachineDeployment replaces machines whose template changed.
public enum RolloutStrategy: Hashable, Sendable, Codable {
    /// New machines first within `maxSurge`, old ones removed within `maxUnavailable`.
    case rollingUpdate(maxSurge: IntOrPercent, maxUnavailable: IntOrPercent)
    /// Old machines stay until someone deletes them; replacements are then new.
    case onDelete

    /// CAPI's default: RollingUpdate with maxSurge 1, maxUnavailable 0.
    public static var `default`: RolloutStrategy { .rollingUpdate(maxSurge: .count(1), maxUnavailable: .count(0)) }
}

/// What to do next for a MachineDeployment: how many new machines to create and which
/// machines to delete, in order. Applying it and observing the result gives the next one.
public struct RolloutAction: Hashable, Sendable, Codable {
    public var create: Int
    public var delete: [String]

    public init(create: Int = 0, delete: [String] = []) {
        self.create = create
        self.delete = delete
    }

    public static var none: RolloutAction { RolloutAction() }
}

/// The arithmetic of scaling and rolling a MachineDeployment, after CAPI's MachineDeployment
/// and MachineSet controllers (which follow the Kubernetes Deployment controller).
///
/// Pure: every fact arrives in the arguments, and the same arguments give the same answer.
public enum Rollout {
    /// The next action for a deployment that wants `desired` machines.
    ///
    /// Machines already deleting are on their way out: they are not counted as replicas,
    /// never as available, but they still count toward the surge limit (their VMs still run).
    /// RollingUpdate: creates up to `desired + maxSurge` machines in all; deletes old machines
    /// that are not ready at once (they give no capacity), and old ready ones only while at
    /// least `desired - maxUnavailable` stay ready; excess up-to-date machines go last, under
    /// the same limit. OnDelete: never deletes an old machine for being old; creates new
    /// ones only to fill `desired`, and scales down by the deletion order.
    ///
    /// - Parameters:
    ///   - seed: orders `Random` deletion deterministically (the same seed, the same victims).
    public static func next(
        desired: Int, strategy: RolloutStrategy, machines: [RolloutMachine], deletionOrder: DeletionOrder = .random,
        seed: UInt64 = 0
    ) -> RolloutAction {
        precondition(desired >= 0, "desired replicas are never negative")
        let live = machines.filter { !$0.isDeleting }
        let old = live.filter { !$0.isUpToDate }
        let new = live.filter(\.isUpToDate)
        func victims(_ candidates: [RolloutMachine], _ count: Int) -> [String] {
            Array(victimOrder(candidates, order: deletionOrder, seed: seed).prefix(max(0, count)).map(\.name))
        }
        switch strategy {
        case .onDelete:
            if live.count > desired {
                // Old machines go before new ones; within each, the deletion order.
                let ordered = victims(old, old.count) + victims(new, new.count)
                return RolloutAction(delete: Array(ordered.prefix(live.count - desired)))
            }
            return RolloutAction(create: desired - live.count)

        case .rollingUpdate(let maxSurge, let maxUnavailable):
            let fenceposts = RolloutFenceposts(maxSurge: maxSurge, maxUnavailable: maxUnavailable, replicas: desired)
            if old.isEmpty {
                if new.count > desired { return RolloutAction(delete: victims(new, new.count - desired)) }
                return RolloutAction(create: desired - new.count)
            }
            let total = machines.count
            let create = max(0, min(desired + fenceposts.surge - total, desired - new.count))
            var delete = victims(old.filter { !$0.isReady }, .max)
            var budget = live.filter(\.isReady).count - max(0, desired - fenceposts.unavailable)
            let oldReady = victims(old.filter(\.isReady), budget)
            delete += oldReady
            budget -= oldReady.count
            if new.count > desired { delete += victims(new, min(budget, new.count - desired)) }
            return RolloutAction(create: create, delete: delete)
        }
    }

    /// Whether the rollout is done: no old machine, none deleting, `desired` up-to-date ready machines.
    public static func isComplete(desired: Int, machines: [RolloutMachine]) -> Bool {
        machines.allSatisfy { $0.isUpToDate && !$0.isDeleting && $0.isReady } && machines.count == desired
    }

    /// `machines` in the order scale-down deletes them, first victim first (CAPI
    /// `machineset_deletion_order.go`): deleting (100) › marked with `delete-machine` (80) ›
    /// in-place update in progress (75) › unhealthy (50) › the rest by `order`. Equal
    /// priorities break on name, so the order is stable.
    ///
    /// CAPI's `Random` is in fact a flat priority broken by name; Capstan makes it random as
    /// named but reproducible: the rest are ordered by a hash of `seed` and the name.
    public static func victimOrder(_ machines: [RolloutMachine], order: DeletionOrder, seed: UInt64) -> [RolloutMachine] {
        func rank(_ machine: RolloutMachine) -> Int {
            if machine.isDeleting { return 0 }
            if machine.isMarkedForDeletion { return 1 }
            if machine.isUpdatingInPlace { return 2 }
            if !machine.isHealthy { return 3 }
            return 4
        }
        return machines.sorted { a, b in
            let (rankA, rankB) = (rank(a), rank(b))
            if rankA != rankB { return rankA < rankB }
            if rankA == 4 {
                switch order {
                case .oldest where a.createdAt != b.createdAt: return a.createdAt < b.createdAt
                case .newest where a.createdAt != b.createdAt: return a.createdAt > b.createdAt
                case .random:
                    let (keyA, keyB) = (shuffleKey(a.name, seed: seed), shuffleKey(b.name, seed: seed))
                    if keyA != keyB { return keyA < keyB }
                default: break
                }
            }
            return a.name < b.name
        }
    }

    /// A seeded, well-mixed key per name: FNV-1a over the name, mixed with the seed through SplitMix64.
    private static func shuffleKey(_ name: String, seed: UInt64) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        var generator = SplitMix64(seed: seed ^ hash)
        return generator.next()
    }
}
