public import EventLog
public import Logging

/// The durable ``EngineStore``: the LMDB event log, plus the inbox log that other
/// processes write requests to.
///
/// The engine holds the log's exclusive writer lock for as long as it runs, so another
/// process (the CLI) cannot append to it. Requests therefore go to a second, small log in
/// `<data directory>/inbox` that each sender opens as writer only for one append
/// (``InboxMessage/send(_:dataDirectory:actor:)``) and the engine tails read-only. The
/// engine's checkpoint of that inbox is a state entry of the main log, written with the
/// events the request caused, so each request is handled exactly once.
public final class EventLogStore: EngineStore {
    public let log: EventLog
    private let inbox: EventLogReader

    /// The inbox log directory of a data directory.
    public static func inboxDirectory(of dataDirectory: String) -> String { dataDirectory + "/inbox" }

    /// Opens the store on an open log, creating the inbox log if missing.
    ///
    /// - Throws: `EventLogError` when the inbox log cannot be created or opened.
    public static func open(log: EventLog, logger: Logger = Logger(label: "capstan.engine")) async throws -> EventLogStore {
        let directory = inboxDirectory(of: log.directory)
        if (try? EventLogReader(directory: directory, logger: logger)) == nil {
            let creator = try EventLog(directory: directory, logger: logger)
            await creator.close()
        }
        return EventLogStore(log: log, inbox: try EventLogReader(directory: directory, logger: logger))
    }

    private init(log: EventLog, inbox: EventLogReader) {
        self.log = log
        self.inbox = inbox
    }

    public func append(_ streams: [StreamAppend], stateWrites: [StateWrite]) async throws -> AppendResult {
        try await log.append(streams, stateWrites: stateWrites)
    }

    public func readStream(_ stream: StreamID) throws -> [RecordedEvent] {
        try log.reader.readStream(stream)
    }

    public func streamExists(_ stream: StreamID) throws -> Bool {
        try log.reader.streamRevision(stream) != nil
    }

    public func state(forKey key: String) throws -> [UInt8]? {
        try log.reader.state(forKey: key)
    }

    public func stateEntries(withPrefix prefix: String) throws -> [(key: String, value: [UInt8])] {
        try log.reader.stateEntries(withPrefix: prefix)
    }

    /// The inbox log's tail for ``InboxMessage/stream``; other streams have no tail here.
    public func tail(_ stream: StreamID, after: LogPosition) -> AsyncThrowingStream<RecordedEvent, any Error> {
        precondition(stream == InboxMessage.stream, "EventLogStore tails only the inbox stream")
        return inbox.tail(after: after)
    }
}

extension InboxMessage {
    /// Appends this request to the inbox log of `dataDirectory` from any process, while
    /// the engine runs or not; the engine handles it once.
    ///
    /// - Throws: `EventLogError` (after retrying a busy inbox writer lock for ~10 s).
    public func send(_ id: EventID, dataDirectory: String, actor: String) async throws {
        let directory = EventLogStore.inboxDirectory(of: dataDirectory)
        var attempt = 0
        while true {
            do {
                let log = try EventLog(directory: directory)
                do {
                    try await log.append([proposedEvent(id: id, actor: actor)], to: Self.stream, expectedRevision: .any)
                } catch {
                    await log.close()
                    throw error
                }
                await log.close()
                return
            } catch let error as EventLogError where error.code == .writerLocked && attempt < 200 {
                // Another sender holds the inbox for one append: wait a little.
                attempt += 1
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }
}
