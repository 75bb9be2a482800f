import Foundation

/// A decider's state behind a type-erased box, so one engine runs many workflow types.
protocol WorkflowStateBox: Sendable {
    func evolved(_ event: WorkflowEvent, at: Timestamp) throws -> any WorkflowStateBox
    func decide() -> [WorkflowCommand]
    func encoded() -> [UInt8]
    /// The type's progress view as JSON text, nil when it shows none.
    func progressJSON() -> String?
    func isEqual(to other: any WorkflowStateBox) -> Bool
}

private struct StateBox<W: Workflow>: WorkflowStateBox {
    var state: W.State

    func evolved(_ event: WorkflowEvent, at: Timestamp) throws -> any WorkflowStateBox {
        StateBox(state: try W.evolve(state, event, at: at))
    }
    func decide() -> [WorkflowCommand] { W.decide(state) }
    func encoded() -> [UInt8] {
        // A Codable state that fails to encode is a programmer error in the workflow.
        do { return Array(try JSONEncoder().encode(state)) } catch {
            preconditionFailure("workflow \(W.type): state does not encode: \(error)")
        }
    }
    func progressJSON() -> String? { W.progress(state).map { Payload.encode($0) } }
    func isEqual(to other: any WorkflowStateBox) -> Bool {
        guard let other = other as? StateBox<W> else { return false }
        return other.state == state
    }
}

/// A registered workflow type.
public struct WorkflowDefinition: Sendable {
    public let type: String
    public let version: Int
    let cleansUpOnCancel: Bool
    let initial: @Sendable () -> any WorkflowStateBox
    let decode: @Sendable ([UInt8]) throws -> any WorkflowStateBox
    /// The type's upcast of a snapshot state of another decider version (nil: none).
    let upcast: @Sendable ([UInt8], Int) throws -> (any WorkflowStateBox)?
    /// Checks that a start input decodes as the type's `Input`.
    let checkInput: @Sendable (String) throws -> Void

    /// Describes the workflow type `W`.
    public init<W: Workflow>(_ workflow: W.Type) {
        type = W.type
        version = W.version
        cleansUpOnCancel = W.cleansUpOnCancel
        initial = { StateBox<W>(state: W.initial) }
        decode = { bytes in StateBox<W>(state: try JSONDecoder().decode(W.State.self, from: Data(bytes))) }
        upcast = { bytes, version in try W.upcastSnapshot(bytes, fromVersion: version).map { StateBox<W>(state: $0) } }
        checkInput = { input in _ = try Payload.decode(W.Input.self, from: input, field: "workflow \(W.type) input") }
    }

    /// The state a run starts from: `initial`, or the state a continue-as-new carried.
    func startState(_ start: WorkflowStart) throws -> any WorkflowStateBox {
        guard let carried = start.carriedState else { return initial() }
        do { return try decode(Array(carried.utf8)) } catch {
            throw EngineError(.corruptHistory, "workflow \(type) run \(start.run): carried state does not decode: \(Payload.describe(error))")
        }
    }
}
