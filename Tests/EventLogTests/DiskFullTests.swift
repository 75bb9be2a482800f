import Foundation
import Testing

@testable import EventLog

#if canImport(Glibc)
import Glibc
#endif

/// A small tmpfs to run out of space on; needs root (mount), so the test is skipped elsewhere.
struct SmallFileSystem {
    let path: String

    static var canMount: Bool {
        #if os(Linux)
        guard getuid() == 0 else { return false }
        let probe = "/tmp/eventlog-tmpfs-probe-\(getpid())"
        mkdir(probe, 0o755)
        defer { rmdir(probe) }
        guard run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe]) else { return false }
        _ = run(["umount", probe])
        return true
        #else
        return false
        #endif
    }

    init(sizeKiB: Int) throws {
        path = "/tmp/eventlog-tmpfs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        mkdir(path, 0o755)
        guard Self.run(["mount", "-t", "tmpfs", "-o", "size=\(sizeKiB)k", "tmpfs", path]) else {
            throw EventLogError(.system, "mount tmpfs on \(path) failed")
        }
    }

    func resize(kiB: Int) -> Bool {
        Self.run(["mount", "-o", "remount,size=\(kiB)k", path])
    }

    func remove() {
        _ = Self.run(["umount", path])
        rmdir(path)
    }

    @discardableResult
    static func run(_ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}

@Suite("EventLog: disk full")
struct DiskFullTests {
    @Test("EventLog: disk full: a clear error, nothing committed lost, appends work again once there is room",
          .enabled(if: SmallFileSystem.canMount, "needs root to mount a small tmpfs"))
    func diskFull() async throws {
        // Method: a 512 KiB tmpfs; append incompressible events until a batch fails, check the
        // error and the acknowledged events, grow the file system, append again.
        let fileSystem = try SmallFileSystem(sizeKiB: 512)
        defer { fileSystem.remove() }
        let dir = fileSystem.path + "/log"
        var options = testOptions()
        options.initialMapSizeBytes = 64 << 10
        let log = try EventLog(directory: dir, options: options)
        var acknowledged = 0
        var failure: EventLogError?
        for n in 0..<400 {
            do {
                try await log.append([proposed(n, payload: VerifyTests.randomPayload(UInt64(n + 1), count: 2000))],
                                     to: "s", expectedRevision: .any)
                acknowledged += 1
            } catch let error as EventLogError {
                failure = error
                break
            }
        }
        let error = try #require(failure)
        #expect(error.code == .diskFull, "\(error)")
        #expect(acknowledged > 10)
        #expect(try log.reader.readAll(after: .start).count == acknowledged)

        #expect(fileSystem.resize(kiB: 8192))
        let result = try await log.append([proposed(1000)], to: "s", expectedRevision: .exact(StreamRevision(UInt64(acknowledged - 1))))
        #expect(result.lastPosition == LogPosition(UInt64(acknowledged + 1)))
        #expect(try log.reader.verify().isClean)
        await log.close()
    }
}
