import Foundation

/// The typed payloads of a workflow (start input, activity input and output, signal
/// payloads, domain events, progress), stored as JSON text so histories stay readable.
///
/// Encoding is canonical (sorted keys), so a decider that asks for the same value twice
/// asks for the same bytes. A history written before payloads were typed holds plain text:
/// decoding it as `String` gives that text back, so old histories still fold.
public enum Payload {
    /// `value` as canonical JSON text.
    public static func encode(_ value: some Encodable) -> String {
        if let text = value as? String, !text.isEmpty, text.first != "\"" {
            // Plain text stays plain (readable, and as old histories stored it).
            return text
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // A Codable value that fails to encode is a programmer error in the workflow.
        do { return String(decoding: try encoder.encode(value), as: UTF8.self) } catch {
            preconditionFailure("payload of type \(type(of: value)) does not encode: \(error)")
        }
    }

    /// Decodes JSON `text` as `T`.
    ///
    /// - Parameter field: names the payload in the error (for example `activity vm-read output`).
    /// - Throws: ``EngineError`` `.invalidInput` naming `field`, the type and the reason.
    public static func decode<T: Decodable>(_ type: T.Type, from text: String, field: String) throws -> T {
        if T.self == String.self, text.first != "\"" {
            // Plain text: a history of untyped payloads.
            return text as! T
        }
        do { return try JSONDecoder().decode(T.self, from: Data(text.utf8)) } catch {
            throw EngineError(.invalidInput, "\(field): not a \(T.self): \(describe(error))")
        }
    }

    /// A decoding error in one line, with the path of the offending field.
    static func describe(_ error: any Error) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            return keys.isEmpty ? "" : "field \(keys.joined(separator: ".")): "
        }
        switch error as? DecodingError {
        case .keyNotFound(let key, let context)?: return "\(path(context))field \(key.stringValue) is missing"
        case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?, .dataCorrupted(let context)?:
            return "\(path(context))\(context.debugDescription)"
        default: return "\(error)"
        }
    }
}

extension WorkflowStart {
    /// The start input as `T`.
    ///
    /// - Throws: ``EngineError`` `.invalidInput` naming the field and the reason.
    public func input<T: Decodable>(as type: T.Type) throws -> T {
        try Payload.decode(type, from: input, field: "workflow \(self.type) input")
    }
}

extension WorkflowEvent {
    /// The typed value an event carries: an activity's or child's output, a signal's
    /// payload, a domain event's payload, a workflow's output.
    ///
    /// - Throws: ``EngineError`` `.invalidInput` naming the event and the reason; also when
    ///   the event carries no value.
    public func value<T: Decodable>(as type: T.Type) throws -> T {
        switch self {
        case .workflowStarted(let start): return try start.input(as: type)
        case .activityCompleted(let activityID, _, let output):
            return try Payload.decode(type, from: output, field: "activity \(activityID) output")
        case .signalReceived(let name, let payload):
            return try Payload.decode(type, from: payload, field: "signal \(name) payload")
        case .childCompleted(let childID, let output):
            return try Payload.decode(type, from: output, field: "child \(childID) output")
        case .domainEvent(let event): return try event.value(as: type)
        case .workflowCompleted(let output): return try Payload.decode(type, from: output, field: "workflow output")
        default: throw EngineError(.invalidInput, "event \(self) carries no value")
        }
    }
}
