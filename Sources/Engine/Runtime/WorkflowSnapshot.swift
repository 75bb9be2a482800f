import CapstanSupport
import Foundation

/// The snapshot of a workflow kept in the `state` database, written in the same append as
/// the events it covers, so recovery reads one entry per unfinished workflow instead of
/// replaying its history.
///
/// Stored format: one line of JSON `{"v":1,"decider":…,"record":…,"view":…}`, a newline,
/// then the decider's state as JSON (JSON from `JSONEncoder` holds no raw newline). It
/// names what it covers: the decider's type (`record.type`) and version (`decider`, the
/// version whose `State` the state line is; absent in snapshots written before it was
/// recorded) and the stream revision (`record.lastRevision`).
enum WorkflowSnapshot {
    static let version = 1

    private struct Header: Codable {
        var v: Int
        var decider: Int?
        var record: WorkflowRecord
        var view: WorkflowView
        var progress: String?
    }

    struct Decoded {
        /// The decider version that wrote the state (nil: unknown, an older snapshot).
        var deciderVersion: Int?
        var record: WorkflowRecord
        var view: WorkflowView
        var progress: String?
        var state: [UInt8]
    }

    static func encode(
        record: WorkflowRecord, state: [UInt8], commands: [WorkflowCommand], progress: String? = nil, deciderVersion: Int? = nil
    ) -> [UInt8] {
        var out = JSONWriter(capacity: 512 + state.count)
        out.openObject()
        out.key("v")
        out.integer(version)
        if let deciderVersion {
            out.key("decider")
            out.integer(deciderVersion)
        }
        out.key("record")
        out.record(record)
        out.key("view")
        out.view(WorkflowView(record: record, commands: commands))
        out.field("progress", progress)
        out.closeObject()
        var bytes = out.bytes
        bytes.append(0x0A)
        bytes.append(contentsOf: state)
        return bytes
    }

    /// - Throws: ``EngineError`` `.corruptHistory` naming `key` and the reason.
    static func decode(_ bytes: [UInt8], key: String) throws -> Decoded {
        guard let newline = bytes.firstIndex(of: 0x0A) else {
            throw EngineError(.corruptHistory, "snapshot \(key): no newline between header and state")
        }
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: Data(bytes[..<newline])) } catch {
            throw EngineError(.corruptHistory, "snapshot \(key): header does not decode: \(error)")
        }
        guard header.v == version else {
            throw EngineError(.corruptHistory, "snapshot \(key): field v: unknown snapshot version \(header.v)")
        }
        return Decoded(
            deciderVersion: header.decider, record: header.record, view: header.view, progress: header.progress,
            state: Array(bytes[(newline + 1)...]))
    }
}

/// What operators and tools read about a workflow without the engine: its snapshot.
public struct WorkflowStatusReport: Sendable, Equatable {
    public var record: WorkflowRecord
    public var view: WorkflowView
    /// The progress view the workflow's type defines (``Workflow/progress(_:)``), as JSON.
    public var progress: String?
    /// The decider's state as JSON (the workflow type's `State`).
    public var deciderState: [UInt8]

    /// Decodes an `engine/run/…` or `engine/done/…` entry of the state database.
    ///
    /// - Throws: ``EngineError`` `.corruptHistory` naming `key`.
    public init(snapshot: [UInt8], key: String) throws {
        let decoded = try WorkflowSnapshot.decode(snapshot, key: key)
        record = decoded.record
        view = decoded.view
        progress = decoded.progress
        deciderState = decoded.state
    }

    /// The progress view as `T`.
    ///
    /// - Throws: ``EngineError`` `.invalidInput` when there is none or it does not decode.
    public func progress<T: Decodable>(as type: T.Type) throws -> T {
        guard let progress else { throw EngineError(.invalidInput, "workflow \(record.workflowID): its type shows no progress") }
        return try Payload.decode(type, from: progress, field: "workflow \(record.workflowID) progress")
    }

    /// Reads a workflow's status from the log's state tables, without an engine: the running
    /// snapshot, else the finished one; nil when the id is unknown. Works in a read-only
    /// process (``EventLogReader``) as in the engine's (``EngineStore/state(forKey:)``).
    ///
    /// - Throws: ``EngineError`` `.corruptHistory` naming the key; the reader's errors.
    public static func read(workflowID: String, state: (String) throws -> [UInt8]?) throws -> WorkflowStatusReport? {
        for key in [StateKey.running(workflowID), StateKey.finished(workflowID)] {
            if let bytes = try state(key) { return try WorkflowStatusReport(snapshot: bytes, key: key) }
        }
        return nil
    }
}
