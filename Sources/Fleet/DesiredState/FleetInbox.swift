public import EventLog
import Foundation

// STORED FORMAT: the inbox event `FleetOperationRequested` (schema 1, stream `fleet/inbox`
// of the inbox log `<data dir>/inbox`) holds {"requestID", "operation"} with `operation` a
// JSON ``FleetOperation``. The handler's answer is the main log's state entry
// `fleetinbox/result/<request id>` (JSON ``FleetInbox/Result``), written in the same append
// as the events the request caused, with the checkpoint `fleetinbox/position`.

/// Desired-state changes asked for while `capstan serve` holds the main log's writer lock:
/// the CLI appends the operation to the inbox log, and the serving process records it with
/// the same ``FleetRecorder/perform(_:on:extraWrites:)`` the CLI would have run itself, so
/// both paths produce the same events.
public enum FleetInbox {
    public static let stream = StreamID("fleet/inbox")
    static let eventType = "FleetOperationRequested"
    static let positionKey = "fleetinbox/position"
    static let resultPrefix = "fleetinbox/result/"

    struct Request: Codable {
        var requestID: String
        var operation: FleetOperation
    }

    /// How a request was handled.
    public struct Result: Hashable, Codable, Sendable {
        public struct Item: Hashable, Codable, Sendable {
            public var kind: String
            public var namespace: String
            public var name: String
            public var change: DesiredChange
        }
        public var items: [Item]
        /// Why it was refused (nothing written), one line per problem.
        public var errors: [String]
    }

    /// Appends `operation` to the inbox log of `dataDirectory` (retrying a busy inbox lock
    /// for ~10 s).
    ///
    /// - Throws: `EventLogError`.
    public static func send(_ operation: FleetOperation, requestID: String, dataDirectory: String) async throws {
        let payload = FleetEvent.encode(Request(requestID: requestID, operation: operation))
        let event = ProposedEvent(
            id: EventID(high: UInt64.random(in: 0...UInt64.max), low: UInt64.random(in: 0...UInt64.max)), type: eventType,
            metadata: EventMetadata(actor: operation.source.actor), payload: payload)
        let directory = dataDirectory + "/inbox"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var attempt = 0
        while true {
            do {
                let log = try EventLog(directory: directory)
                do {
                    _ = try await log.append([event], to: stream, expectedRevision: .any)
                } catch {
                    await log.close()
                    throw error
                }
                await log.close()
                return
            } catch let error as EventLogError where error.code == .writerLocked && attempt < 200 {
                attempt += 1
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// The handler's answer to `requestID`, once recorded.
    ///
    /// - Throws: reader errors.
    public static func result(_ reader: EventLogReader, requestID: String) throws -> Result? {
        guard let bytes = try reader.state(forKey: resultPrefix + requestID) else { return nil }
        return try JSONDecoder().decode(Result.self, from: Data(bytes))
    }

    /// Handles the inbox's Fleet requests, in order and each once (its checkpoint is written
    /// with its events), until the task is cancelled. Run it beside the engine in the
    /// process that holds `log`.
    ///
    /// - Throws: reader and append errors.
    public static func run(log: EventLog, inbox: EventLogReader) async throws {
        let checkpoint = try log.reader.state(forKey: positionKey)
            .flatMap { UInt64(String(decoding: $0, as: UTF8.self)) }.map { LogPosition($0) } ?? .start
        for try await recorded in inbox.tail(after: checkpoint) {
            try await handle(recorded, log: log)
        }
    }

    /// Handles one inbox event (other streams' events only move the checkpoint forward).
    public static func handle(_ recorded: RecordedEvent, log: EventLog) async throws {
        let position: StateWrite = .put(key: positionKey, value: Array(String(recorded.position.rawValue).utf8))
        guard recorded.streamID == stream, recorded.type == eventType,
            let request = try? JSONDecoder().decode(Request.self, from: Data(recorded.payload))
        else {
            _ = try await log.append([], stateWrites: [position])
            return
        }
        let key = resultPrefix + request.requestID
        do {
            let outcome = try await FleetRecorder.perform(request.operation, on: log) { plan in
                let result = Result(
                    items: plan.items.map { .init(kind: $0.key.kind, namespace: $0.key.namespace, name: $0.key.name, change: $0.change) },
                    errors: [])
                return [position, .put(key: key, value: FleetEvent.encode(result))]
            }
            _ = outcome
        } catch let errors as ManifestErrors {
            let result = Result(items: [], errors: errors.errors.map(\.description))
            _ = try await log.append([], stateWrites: [position, .put(key: key, value: FleetEvent.encode(result))])
        }
    }
}
