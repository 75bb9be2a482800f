import Foundation
import Testing

@testable import EventLog

/// A fresh temporary directory, removed when the test's `body` returns.
func withTemporaryDirectory<R>(_ body: (String) async throws -> R) async throws -> R {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("eventlog-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// Deterministic ids for tests.
func eventID(_ n: UInt64) -> EventID { EventID(high: 0xC0FFEE, low: n) }

/// A lifecycle-like JSON payload of about 300 bytes, varying with `n`.
func lifecyclePayload(_ n: Int, type: String = "MachineProvisioned") -> [UInt8] {
    let json = """
        {"type":"\(type)","cluster":"cluster-\(n % 17)","machine":"cluster-\(n % 17)-md-0-\(String(n, radix: 36))",\
        "namespace":"fleet-\(n % 5)","version":"v1.3\(n % 4).\(n % 9)","providerID":"kubevirt://vm-\(n * 7919 % 100_000)",\
        "uid":"\(String(n &* 2_654_435_761 % 4_294_967_296, radix: 16))-4a1b-9c2d","phase":"Running",\
        "conditions":[{"type":"Ready","status":"True","reason":"NodeHealthy"}],"attempt":\(n % 3 + 1),\
        "at":"2026-11-23T09:\(10 + n % 50):\(10 + n % 49)Z"}
        """
    return Array(json.utf8)
}

func proposed(
    _ n: Int, type: String = "MachineProvisioned", actor: String = "engine",
    causation: EventID? = nil, correlation: EventID? = nil, payload: [UInt8]? = nil
) -> ProposedEvent {
    ProposedEvent(
        id: eventID(UInt64(n)), type: type, schemaVersion: 1,
        metadata: EventMetadata(actor: actor, causationID: causation, correlationID: correlation),
        payload: payload ?? lifecyclePayload(n, type: type))
}

/// Options for small, fast tests: no dictionary training unless asked.
func testOptions(training: Bool = false) -> EventLogOptions {
    var options = EventLogOptions()
    options.initialMapSizeBytes = 1 << 20
    options.dictionaryTraining.isEnabled = training
    return options
}

/// Expects `body` to throw an `EventLogError` and returns it.
func expectEventLogError<T>(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T
) async -> EventLogError? {
    do {
        _ = try await body()
        Issue.record("expected an EventLogError, got success", sourceLocation: sourceLocation)
        return nil
    } catch let error as EventLogError {
        return error
    } catch {
        Issue.record("expected an EventLogError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
