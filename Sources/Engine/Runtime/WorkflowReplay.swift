public import EventLog

extension EngineCore {
    /// The snapshot a workflow stream folds to with the registered deciders: what the engine
    /// would have stored after the last of `events` (a prefix of a stream gives the workflow as
    /// it stood then). `capstan … --at` and `capstan replay` read workflows through it.
    ///
    /// - Throws: ``EngineError`` `.corruptHistory` or `.unknownWorkflowType`.
    public func foldedSnapshot(_ events: [RecordedEvent]) throws -> [UInt8] {
        let (record, state) = try fold(events)
        return WorkflowSnapshot.encode(
            record: record, state: state.encoded(), commands: state.decide(), progress: state.progressJSON())
    }
}
