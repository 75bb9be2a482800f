public import EventLog
import Foundation

// The inbox stream's event types (`SignalSent`, `WorkflowStartRequested`,
// `WorkflowForkRequested`) and their JSON
// field names are a STORED FORMAT: other processes (the CLI) append them.

/// A request to the engine from another process, appended to the inbox stream
/// (``InboxMessage/stream``) and handled once, in log order, by the engine that tails it.
public enum InboxMessage: Hashable, Sendable {
    case signal(workflowID: String, name: String, payload: String)
    case start(workflowID: String, type: String, input: String, uniqueKey: String?)
    /// Start `newID` from events 0 through `throughRevision` of run `run` of `workflowID`,
    /// then deliver `signal` (with `payload`) in the same step
    /// (``EngineCore/fork(workflowID:run:throughRevision:newID:signal:now:)``).
    case fork(workflowID: String, run: Int, throughRevision: UInt64, newID: String, signal: String?, payload: String)

    /// The stream the engine tails for requests.
    public static let stream = StreamID("signal/inbox")

    private struct Fields: Codable {
        var workflowID: String
        var name: String?
        var payload: String?
        var type: String?
        var input: String?
        var uniqueKey: String?
        var run: Int?
        var throughRevision: UInt64?
        var newID: String?
    }

    /// The event to append to ``stream`` (with expected revision `.any`).
    public func proposedEvent(id: EventID, actor: String) -> ProposedEvent {
        let type: String
        let fields: Fields
        switch self {
        case .signal(let workflowID, let name, let payload):
            type = "SignalSent"
            fields = Fields(workflowID: workflowID, name: name, payload: payload)
        case .start(let workflowID, let workflowType, let input, let uniqueKey):
            type = "WorkflowStartRequested"
            fields = Fields(workflowID: workflowID, type: workflowType, input: input, uniqueKey: uniqueKey)
        case .fork(let workflowID, let run, let throughRevision, let newID, let signal, let payload):
            type = "WorkflowForkRequested"
            fields = Fields(
                workflowID: workflowID, name: signal, payload: signal == nil ? nil : payload, run: run == 1 ? nil : run,
                throughRevision: throughRevision, newID: newID)
        }
        // Strings and integers only: encoding cannot fail.
        let payload = Array(try! JSONEncoder().encode(fields))
        return ProposedEvent(id: id, type: type, schemaVersion: 1, metadata: EventMetadata(actor: actor), payload: payload)
    }

    /// Reads an inbox event; nil for an event of another stream.
    ///
    /// - Throws: ``EngineError`` `.invalidInput` naming the position and field.
    public static func decode(_ recorded: RecordedEvent) throws -> InboxMessage? {
        guard recorded.streamID == stream else { return nil }
        let context = "inbox event at position \(recorded.position) (\(recorded.type))"
        let fields: Fields
        do { fields = try JSONDecoder().decode(Fields.self, from: Data(recorded.payload)) } catch {
            throw EngineError(.invalidInput, "\(context): payload does not decode: \(error)")
        }
        switch (recorded.type, recorded.schemaVersion) {
        case ("SignalSent", 1):
            guard let name = fields.name else { throw EngineError(.invalidInput, "\(context): field name is missing") }
            return .signal(workflowID: fields.workflowID, name: name, payload: fields.payload ?? "")
        case ("WorkflowStartRequested", 1):
            guard let type = fields.type else { throw EngineError(.invalidInput, "\(context): field type is missing") }
            return .start(workflowID: fields.workflowID, type: type, input: fields.input ?? "", uniqueKey: fields.uniqueKey)
        case ("WorkflowForkRequested", 1):
            guard let throughRevision = fields.throughRevision else {
                throw EngineError(.invalidInput, "\(context): field throughRevision is missing")
            }
            guard let newID = fields.newID else { throw EngineError(.invalidInput, "\(context): field newID is missing") }
            return .fork(
                workflowID: fields.workflowID, run: fields.run ?? 1, throughRevision: throughRevision, newID: newID,
                signal: fields.name, payload: fields.payload ?? "")
        default:
            throw EngineError(.invalidInput, "\(context): unknown type or schema version \(recorded.schemaVersion)")
        }
    }
}
