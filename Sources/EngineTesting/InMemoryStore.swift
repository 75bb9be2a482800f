public import Engine
public import EventLog
import Synchronization

/// An ``EngineStore`` in memory with the log's semantics: positions from 1 without gaps,
/// revisions from 0, expected-revision checks, and state writes atomic with the events of
/// their append (all or nothing).
///
/// Synchronous methods (``appendNow(_:stateWrites:)``) serve the deterministic simulation;
/// the async protocol methods serve the runtime in tests.
public final class InMemoryStore: EngineStore {
    private struct Tail {
        var stream: StreamID
        var continuation: AsyncThrowingStream<RecordedEvent, any Error>.Continuation
    }

    private struct Contents {
        var events: [RecordedEvent] = []
        var streams: [StreamID: [Int]] = [:]
        var state: [String: [UInt8]] = [:]
        var tails: [Int: Tail] = [:]
        var nextTailID = 0
    }

    private let contents = Mutex(Contents())
    private let clock: any EngineClock

    /// - Parameter clock: stamps `recordedAtNanoseconds`.
    public init(clock: any EngineClock = WallClock()) {
        self.clock = clock
    }

    public func append(_ streams: [StreamAppend], stateWrites: [StateWrite]) async throws -> AppendResult {
        try appendNow(streams, stateWrites: stateWrites)
    }

    /// Appends synchronously, with the semantics of ``EngineStore/append(_:stateWrites:)``.
    ///
    /// - Throws: ``EngineError`` `.wrongExpectedRevision` naming the stream, expected and actual.
    @discardableResult
    public func appendNow(_ streams: [StreamAppend], stateWrites: [StateWrite]) throws -> AppendResult {
        let now = clock.now().nanoseconds
        let (result, deliveries) = try contents.withLock { contents -> (AppendResult, [(AsyncThrowingStream<RecordedEvent, any Error>.Continuation, RecordedEvent)]) in
            // Check everything first: a failed check writes nothing.
            var seen: [StreamID: Int] = [:]
            for append in streams {
                guard seen[append.streamID] == nil else {
                    throw EngineError(.invalidInput, "stream \(append.streamID) appears twice in one append")
                }
                seen[append.streamID] = 1
                let count = contents.streams[append.streamID]?.count ?? 0
                guard append.expectedRevision.holds(eventCount: UInt64(count)) else {
                    let actual = count == 0 ? "no stream" : "revision \(count - 1)"
                    throw EngineError(
                        .wrongExpectedRevision, "stream \(append.streamID): expected \(append.expectedRevision), actual \(actual)")
                }
            }
            var results: [AppendResult.Stream] = []
            var appended: [RecordedEvent] = []
            for append in streams where !append.events.isEmpty {
                let firstRevision = UInt64(contents.streams[append.streamID]?.count ?? 0)
                let firstPosition = UInt64(contents.events.count + 1)
                for (offset, event) in append.events.enumerated() {
                    let recorded = RecordedEvent(
                        position: LogPosition(UInt64(contents.events.count + 1)), streamID: append.streamID,
                        revision: StreamRevision(firstRevision + UInt64(offset)), id: event.id, type: event.type,
                        schemaVersion: event.schemaVersion, recordedAtNanoseconds: now, metadata: event.metadata,
                        payload: event.payload)
                    contents.streams[append.streamID, default: []].append(contents.events.count)
                    contents.events.append(recorded)
                    appended.append(recorded)
                }
                results.append(
                    AppendResult.Stream(
                        streamID: append.streamID, firstRevision: StreamRevision(firstRevision),
                        lastRevision: StreamRevision(firstRevision + UInt64(append.events.count - 1)),
                        firstPosition: LogPosition(firstPosition), lastPosition: LogPosition(UInt64(contents.events.count))))
            }
            for write in stateWrites {
                switch write {
                case .put(let key, let value): contents.state[key] = value
                case .delete(let key): contents.state[key] = nil
                }
            }
            var deliveries: [(AsyncThrowingStream<RecordedEvent, any Error>.Continuation, RecordedEvent)] = []
            for event in appended {
                for tail in contents.tails.values where tail.stream == event.streamID {
                    deliveries.append((tail.continuation, event))
                }
            }
            let result = AppendResult(
                streams: results, lastPosition: LogPosition(UInt64(contents.events.count)), recordedAtNanoseconds: now)
            return (result, deliveries)
        }
        for (continuation, event) in deliveries { continuation.yield(event) }
        return result
    }

    public func readStream(_ stream: StreamID) throws -> [RecordedEvent] {
        contents.withLock { contents in (contents.streams[stream] ?? []).map { contents.events[$0] } }
    }

    public func streamExists(_ stream: StreamID) throws -> Bool {
        contents.withLock { $0.streams[stream] != nil }
    }

    public func state(forKey key: String) throws -> [UInt8]? {
        contents.withLock { $0.state[key] }
    }

    public func stateEntries(withPrefix prefix: String) throws -> [(key: String, value: [UInt8])] {
        contents.withLock { contents in
            contents.state.filter { $0.key.hasPrefix(prefix) }.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
        }
    }

    /// Every event with position > `after`, in order.
    public func readAll(after: LogPosition) -> [RecordedEvent] {
        contents.withLock { contents in Array(contents.events.dropFirst(Int(after.rawValue))) }
    }

    public func tail(_ stream: StreamID, after: LogPosition) -> AsyncThrowingStream<RecordedEvent, any Error> {
        let (events, continuation) = AsyncThrowingStream<RecordedEvent, any Error>.makeStream()
        let id = contents.withLock { contents -> Int in
            // Past events and registration under one lock: nothing is missed or doubled.
            for index in contents.streams[stream] ?? [] where contents.events[index].position > after {
                continuation.yield(contents.events[index])
            }
            contents.nextTailID += 1
            contents.tails[contents.nextTailID] = Tail(stream: stream, continuation: continuation)
            return contents.nextTailID
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.contents.withLock { $0.tails.removeValue(forKey: id) }
        }
        return events
    }
}
