import Foundation
import Testing

@testable import EventLog

#if canImport(Glibc)
    import Glibc
#endif

@Suite("EventLog: writer lock across processes")
struct WriterLockProcessTests {
    @Test("EventLog: writer lock: a writer in another process is refused at once, naming the holder pid")
    func secondProcessWriter() async throws {
        let driver = try Executables.url("eventlog-crash-driver")
        let root = try makeTemporaryDirectory("writer-lock")
        defer { removeTemporaryDirectory(root) }
        let dataDirectory = root + "/data"
        let log = try EventLog(directory: dataDirectory, options: testOptions())
        try await log.append([proposed(1)], to: "held", expectedRevision: .any)

        // Without --max-events the driver appends until killed: only the refusal ends it.
        // The timeout is a safety net, not a measure of "at once".
        let result = try await runToEnd(
            driver, ["append", "--data-dir", dataDirectory, "--seed", "7", "--appenders", "2"], in: root,
            timeout: .seconds(120))
        #expect(!result.signaled)
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty, "the refused driver acknowledged appends: \(result.stdout)")
        #expect(result.stderr.contains("writerLocked"), "\(result.stderr)")
        #expect(result.stderr.contains("\(getpid())"), "the error does not name the holder pid: \(result.stderr)")

        // The holder's log is untouched and still writable.
        try await log.append([proposed(2)], to: "held", expectedRevision: .exact(StreamRevision(0)))
        #expect(try log.reader.lastPosition() == LogPosition(2))
        await log.close()
    }
}
