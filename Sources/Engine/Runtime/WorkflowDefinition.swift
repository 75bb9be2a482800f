import Foundation

/// A decider's state behind a type-erased box, so one engine runs many workflow types.
protocol WorkflowStateBox: Sendable {
    func evolved(_ event: WorkflowEvent) -> any WorkflowStateBox
    func decide() -> [WorkflowCommand]
    func encoded() -> [UInt8]
    func isEqual(to other: any WorkflowStateBox) -> Bool
}

private struct StateBox<W: Workflow>: WorkflowStateBox {
    var state: W.State

    func evolved(_ event: WorkflowEvent) -> any WorkflowStateBox { StateBox(state: W.evolve(state, event)) }
    func decide() -> [WorkflowCommand] { W.decide(state) }
    func encoded() -> [UInt8] {
        // A Codable state that fails to encode is a programmer error in the workflow.
        do { return Array(try JSONEncoder().encode(state)) } catch {
            preconditionFailure("workflow \(W.type): state does not encode: \(error)")
        }
    }
    func isEqual(to other: any WorkflowStateBox) -> Bool {
        guard let other = other as? StateBox<W> else { return false }
        return other.state == state
    }
}

/// A registered workflow type.
public struct WorkflowDefinition: Sendable {
    public let type: String
    public let version: Int
    let initial: @Sendable () -> any WorkflowStateBox
    let decode: @Sendable ([UInt8]) throws -> any WorkflowStateBox

    /// Describes the workflow type `W`.
    public init<W: Workflow>(_ workflow: W.Type) {
        type = W.type
        version = W.version
        initial = { StateBox<W>(state: W.initial) }
        decode = { bytes in StateBox<W>(state: try JSONDecoder().decode(W.State.self, from: Data(bytes))) }
    }

    /// The decider state after folding `events` from the initial state (for checks and tools).
    func fold(_ events: [WorkflowEvent]) -> any WorkflowStateBox {
        events.reduce(initial()) { $0.evolved($1) }
    }
}
