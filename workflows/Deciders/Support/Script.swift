// How a decider turns its folded state into commands, written as straight-line steps.
//
// `decide` is a pure function of the state; a `Script` walks the steps a workflow takes, in
// order, against the ``Ledger``: a step the engine has not acknowledged yet becomes a
// command and the walk stops there (`Suspension.waiting`); a step with an answer yields it
// and the walk goes on. Nothing is replayed: the walk reads only folded state, so it asks
// for a command exactly until the event acknowledging it is folded.
public import Engine

/// Why a script stopped before its end.
public enum Suspension: Error, Equatable, Sendable {
    /// Waiting for the engine to answer the commands asked so far.
    case waiting
    /// The workflow fails for this reason.
    case failed(String)
}

/// One step's answer so far.
public enum Step<Output> {
    case waiting
    case done(Output)
    case failed(String)

    /// The output, or the suspension it implies.
    public func get() throws(Suspension) -> Output {
        switch self {
        case .waiting: throw .waiting
        case .done(let output): return output
        case .failed(let reason): throw .failed(reason)
        }
    }

    public var isDone: Bool {
        if case .done = self { return true }
        return false
    }
}

/// A poll loop's answer so far: the last observation and how many reads it took.
public struct PollStep<Output> {
    public var step: Step<Output>
    /// The latest observation that did not satisfy the condition (or did, when done).
    public var last: Output?
    /// Reads completed.
    public var reads: Int
}

/// Walks a workflow's steps against its ledger, collecting the commands still to ask.
public struct Script {
    public let ledger: Ledger
    public private(set) var commands: [WorkflowCommand] = []

    public init(_ ledger: Ledger) { self.ledger = ledger }

    /// Runs `body` and returns the commands it asked for; a failure becomes `.fail`, a
    /// returned command (complete or fail) is appended. A finished run asks for nothing.
    public static func decide(
        _ ledger: Ledger, _ body: (inout Script) throws(Suspension) -> WorkflowCommand
    ) -> [WorkflowCommand] {
        guard !ledger.finished else { return [] }
        var script = Script(ledger)
        do throws(Suspension) {
            let last = try body(&script)
            return script.commands + [last]
        } catch {
            switch error {
            case .waiting: return script.commands
            case .failed(let reason): return script.commands + [.fail(reason: reason)]
            }
        }
    }

    // MARK: activities

    /// The activity `id`: asked for when unknown, its decoded output once completed.
    public mutating func activityStep<Input: Encodable, Output: Decodable>(
        _ id: String, _ name: String, _ input: Input, as output: Output.Type,
        retry: RetryPolicy = DeciderRetry.standard, timeout: Duration = .seconds(60)
    ) -> Step<Output> {
        switch ledger.activities[id] {
        case nil:
            commands.append(
                .runActivity(
                    ActivityRequest(
                        activityID: id, name: name, input: Activities.encode(input), retry: retry,
                        startToCloseTimeout: timeout)))
            return .waiting
        case .scheduled, .retrying:
            return .waiting
        case .completed(let text):
            do { return .done(try Activities.decode(Output.self, from: text)) } catch {
                return .failed("activity \(id) (\(name)) returned output that is not \(Output.self): \(error)")
            }
        case .failed(let kind, let message):
            return .failed("activity \(id) (\(name)) failed: \(kind): \(message)")
        }
    }

    /// ``activityStep(_:_:_:as:retry:timeout:)``, suspending until it has an answer.
    public mutating func activity<Input: Encodable, Output: Decodable>(
        _ id: String, _ name: String, _ input: Input, as output: Output.Type,
        retry: RetryPolicy = DeciderRetry.standard, timeout: Duration = .seconds(60)
    ) throws(Suspension) -> Output {
        try activityStep(id, name, input, as: output, retry: retry, timeout: timeout).get()
    }

    // MARK: timers

    /// Whether timer `id` fired; started when unknown.
    public mutating func timer(_ id: String, after: Duration) -> Bool {
        switch ledger.timers[id] {
        case nil:
            commands.append(.startTimer(id: id, after: after))
            return false
        case .some(let fired):
            return fired
        }
    }

    /// Waits for timer `id` to fire.
    public mutating func sleep(_ id: String, for duration: Duration) throws(Suspension) {
        if !timer(id, after: duration) { throw .waiting }
    }

    // MARK: polling

    /// Reads with activity `<id>-read-<n>` until `until` holds, sleeping `every` (timer
    /// `<id>-wait-<n>`) between reads. The loop is a function of the ledger: read n+1 is asked
    /// only once wait n fired.
    public mutating func poll<Input: Encodable, Output: Decodable>(
        _ id: String, _ name: String, _ input: Input, as output: Output.Type, every: Duration,
        retry: RetryPolicy = DeciderRetry.standard, until done: (Output) -> Bool
    ) -> PollStep<Output> {
        var last: Output?
        var n = 1
        // Bounded by the reads recorded: each iteration consumes one completed read and fired wait.
        while true {
            switch activityStep("\(id)-read-\(n)", name, input, as: output, retry: retry) {
            case .waiting:
                return PollStep(step: .waiting, last: last, reads: n - 1)
            case .failed(let reason):
                return PollStep(step: .failed(reason), last: last, reads: n - 1)
            case .done(let observed):
                last = observed
                if done(observed) { return PollStep(step: .done(observed), last: observed, reads: n) }
            }
            if !timer("\(id)-wait-\(n)", after: every) { return PollStep(step: .waiting, last: last, reads: n) }
            n += 1
        }
    }

    // MARK: children

    /// The child workflow `id`: started when unknown, its decoded output once completed.
    public mutating func childStep<Input: Encodable, Output: Decodable>(
        _ id: String, type: String, _ input: Input, as output: Output.Type
    ) -> Step<Output> {
        switch ledger.children[id] {
        case nil:
            commands.append(.startChild(ChildRequest(workflowID: id, type: type, input: Activities.encode(input))))
            return .waiting
        case .started:
            return .waiting
        case .completed(let text):
            do { return .done(try Activities.decode(Output.self, from: text)) } catch {
                return .failed("child \(id) (\(type)) returned output that is not \(Output.self): \(error)")
            }
        case .failed(let reason):
            return .failed("child \(id) (\(type)) failed: \(reason)")
        }
    }

    /// ``childStep(_:type:_:as:)``, suspending until it has an answer.
    public mutating func child<Input: Encodable, Output: Decodable>(
        _ id: String, type: String, _ input: Input, as output: Output.Type
    ) throws(Suspension) -> Output {
        try childStep(id, type: type, input, as: output).get()
    }

    // MARK: waiting

    /// Declares that the run waits for signal `name` (shown to operators).
    public mutating func waitForSignal(_ name: String) -> Suspension {
        commands.append(.waitForSignal(name: name))
        return .waiting
    }
}

extension WorkflowCommand {
    /// Completes with `output` encoded as JSON.
    public static func complete<Output: Encodable>(with output: Output) -> WorkflowCommand {
        .complete(output: Activities.encode(output))
    }
}
