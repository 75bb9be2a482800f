public import Foundation
import Synchronization

/// One change the simulator applied, in the order it was applied.
public struct LedgerEntry: Sendable {
    /// 1, 2, 3... across all clusters.
    public var sequence: Int64
    public var time: Date
    /// `management`, or `<namespace>/<name>` of a workload cluster.
    public var cluster: String
    /// `create`, `update`, `patch`, `apply`, `delete`, `evict`, or a controller's own word.
    public var verb: String
    public var group: String
    public var version: String
    public var resource: String
    public var namespace: String
    public var name: String
    public var uid: String
    public var resourceVersion: String
    /// Who did it: `client` for API requests, `controller/<name>` for the simulator.
    public var actor: String
    /// Field-level changes (`spec.kubernetes.version`: `v1.33.0` → `v1.34.0`); secret values redacted.
    public var changes: [FieldChange]

    public struct FieldChange: Sendable, Equatable {
        public var path: String
        public var from: String?
        public var to: String?
    }

    var json: JSON {
        [
            "seq": .int(sequence), "time": .string(Timestamp.rfc3339Micro(time)), "cluster": .string(cluster),
            "verb": .string(verb), "group": .string(group), "version": .string(version),
            "resource": .string(resource), "namespace": .string(namespace), "name": .string(name),
            "uid": .string(uid), "resourceVersion": .string(resourceVersion), "actor": .string(actor),
            "changes": .array(
                changes.map { ["path": .string($0.path), "from": $0.from.map(JSON.string) ?? .null, "to": $0.to.map(JSON.string) ?? .null] }),
        ]
    }
}

/// The effect ledger: every change any cluster applied, queryable over `GET /_sim/ledger`,
/// so tests can assert that each object was created once and each version change applied once.
public final class Ledger: Sendable {
    private let entries = Mutex<[LedgerEntry]>([])

    init() {}

    @discardableResult
    func record(_ make: (Int64) -> LedgerEntry) -> Int64 {
        entries.withLock { entries in
            let sequence = Int64(entries.count + 1)
            entries.append(make(sequence))
            return sequence
        }
    }

    /// Entries after `sequence`, in order.
    public func entries(after sequence: Int64 = 0) -> [LedgerEntry] {
        entries.withLock { entries in
            let start = Int(max(0, min(sequence, Int64(entries.count))))
            return Array(entries[start...])
        }
    }

    public var count: Int { entries.withLock { $0.count } }

    /// The scalar leaves that differ between two objects (at most `limit`), skipping
    /// bookkeeping (`resourceVersion`, `managedFields`) and redacting Secret values.
    static func changes(from old: JSON?, to new: JSON?, redact: Bool, limit: Int = 32) -> [LedgerEntry.FieldChange] {
        var changes: [LedgerEntry.FieldChange] = []
        diff(old, new, path: "", redact: redact, into: &changes, limit: limit)
        return changes
    }

    private static let skipped: Set<String> = [
        "metadata.resourceVersion", "metadata.managedFields", "metadata.uid", "metadata.creationTimestamp",
    ]
    private static let redactedRoots: Set<String> = ["data", "stringData"]

    private static func diff(
        _ old: JSON?, _ new: JSON?, path: String, redact: Bool, into changes: inout [LedgerEntry.FieldChange],
        limit: Int
    ) {
        guard changes.count < limit, old != new, !skipped.contains(path) else { return }
        if case .object(let oldMembers)? = old, case .object(let newMembers)? = new {
            for key in Set(oldMembers.keys).union(newMembers.keys).sorted() {
                diff(
                    oldMembers[key], newMembers[key], path: path.isEmpty ? key : "\(path).\(key)", redact: redact,
                    into: &changes, limit: limit)
            }
            return
        }
        if (old == nil || old?.objectValue != nil) && new?.objectValue != nil || old?.objectValue != nil && new == nil {
            // A whole subtree appeared or went: list its leaves against nothing.
            for key in Set((old?.objectValue ?? [:]).keys).union((new?.objectValue ?? [:]).keys).sorted() {
                diff(
                    old?[key], new?[key], path: path.isEmpty ? key : "\(path).\(key)", redact: redact, into: &changes,
                    limit: limit)
            }
            return
        }
        let root = String(path.prefix { $0 != "." })
        let hidden = redact && redactedRoots.contains(root)
        changes.append(
            LedgerEntry.FieldChange(
                path: path, from: hidden ? old.map { _ in "<redacted>" } : old.map(text),
                to: hidden ? new.map { _ in "<redacted>" } : new.map(text)))
    }

    private static func text(_ value: JSON) -> String {
        if let scalar = value.scalarText { return scalar }
        let serialized = value.serialized()
        return serialized.count > 200 ? String(serialized.prefix(200)) + "…" : serialized
    }
}
