import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a short-lived child (a credential plugin) with a deadline, without polling.
///
/// `posix_spawn` in a process group of its own, stdin from `/dev/null`, every signal at its
/// default and none blocked (the parent may ignore SIGTERM, as ServiceLifecycle does, and ignored
/// signals survive `exec`), no descriptor but 0-2 inherited. One dedicated thread blocks in
/// `poll(2)` (no timeout) on stdout and stderr, then in `waitid(2)`; a dispatch timer SIGKILLs the
/// process group at the deadline, which ends both. Nothing loops without blocking.
enum Subprocess {
    struct Outcome: Sendable {
        /// The exit status, when it exited (0 when a signal ended it).
        var exitStatus: Int32
        /// The signal that ended it, if one did.
        var signal: Int32?
        var stdout: [UInt8]
        var stderr: [UInt8]
        /// The deadline passed and the process group was killed.
        var timedOut: Bool
    }

    /// A failed `posix_spawn` (or pipe), with the call and errno.
    struct SpawnError: Error, CustomStringConvertible {
        var call: String
        var errno: Int32
        var description: String { "\(call): \(String(cString: strerror(errno)))" }
    }

    /// Runs `executable` and collects its output (stdout up to `stdoutBytesMax`, stderr up to
    /// `stderrBytesMax`; the rest is read and dropped, so the child never blocks on a full pipe).
    static func run(
        executable: String, arguments: [String], environment: [String: String], timeout: Duration,
        stdoutBytesMax: Int = 1 << 20, stderrBytesMax: Int = 64 << 10
    ) async throws -> Outcome {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Outcome, any Error>) in
            let thread = Thread {
                continuation.resume(
                    with: Result {
                        try runBlocking(
                            executable: executable, arguments: arguments, environment: environment, timeout: timeout,
                            stdoutBytesMax: stdoutBytesMax, stderrBytesMax: stderrBytesMax)
                    })
            }
            thread.name = "capstan-subprocess"
            thread.start()
        }
    }

    /// Kills the process group at the deadline, unless the child was already waited for.
    private final class Deadline: Sendable {
        private struct State {
            var exited = false
            var fired = false
        }
        private let state = Mutex(State())
        let pid: pid_t

        init(pid: pid_t) { self.pid = pid }

        func fire() {
            state.withLock { state in
                guard !state.exited else { return }
                state.fired = true
                // The child is not reaped yet (waitid WNOWAIT), so its pid, which is its group's id, is still ours.
                _ = kill(-pid, SIGKILL)
            }
        }

        /// Marks the child exited (before it is reaped); returns whether the deadline had fired.
        func exited() -> Bool {
            state.withLock { state in
                state.exited = true
                return state.fired
            }
        }
    }

    /// `pipe2(O_CLOEXEC)`, else `pipe` + `FD_CLOEXEC`.
    private static func pipeCloseOnExec(_ fds: inout [Int32]) -> Int32 {
        if let pipe2 = GNU.pipe2 { return fds.withUnsafeMutableBufferPointer { pipe2($0.baseAddress, O_CLOEXEC) } }
        guard pipe(&fds) == 0 else { return -1 }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return 0
    }

    /// glibc calls Swift's Glibc module does not import (declared only under `_GNU_SOURCE`),
    /// looked up by name with their C signatures.
    private enum GNU {
        typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
        /// `RTLD_DEFAULT` is `((void *) 0)` in glibc.
        static let pipe2: Pipe2? = dlsym(nil, "pipe2").map { unsafeBitCast($0, to: Pipe2.self) }
        /// glibc 2.34 and later.
        static let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map {
            unsafeBitCast($0, to: AddCloseFrom.self)
        }
    }

    private static func runBlocking(
        executable: String, arguments: [String], environment: [String: String], timeout: Duration,
        stdoutBytesMax: Int, stderrBytesMax: Int
    ) throws -> Outcome {
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard pipeCloseOnExec(&outPipe) == 0 else { throw SpawnError(call: "pipe2", errno: errno) }
        guard pipeCloseOnExec(&errPipe) == 0 else {
            let saved = errno
            close(outPipe[0])
            close(outPipe[1])
            throw SpawnError(call: "pipe2", errno: saved)
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        // Whatever else this process has open (sockets, the log's files) is none of the plugin's business.
        if let addCloseFrom = GNU.addCloseFrom { _ = addCloseFrom(&actions, 3) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        close(outPipe[1])
        close(errPipe[1])
        guard spawned == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            throw SpawnError(call: "posix_spawn", errno: spawned)
        }

        let deadline = Deadline(pid: pid)
        let milliseconds = max(0, Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(milliseconds)) { deadline.fire() }

        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        var descriptors = [
            pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0),
            pollfd(fd: errPipe[0], events: Int16(POLLIN), revents: 0),
        ]
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while descriptors.contains(where: { $0.fd >= 0 }) {
            let ready = poll(&descriptors, nfds_t(descriptors.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                preconditionFailure("poll on the subprocess pipes: \(String(cString: strerror(errno)))")
            }
            for index in descriptors.indices where descriptors[index].fd >= 0 && descriptors[index].revents != 0 {
                let count = chunk.withUnsafeMutableBytes { read(descriptors[index].fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    if index == 0 {
                        stdout.append(contentsOf: chunk[0..<min(count, max(0, stdoutBytesMax - stdout.count))])
                    } else {
                        stderr.append(contentsOf: chunk[0..<min(count, max(0, stderrBytesMax - stderr.count))])
                    }
                } else if count < 0 && (errno == EINTR || errno == EAGAIN) {
                    continue
                } else {
                    // End of file (or an error): this pipe is done; poll ignores negative descriptors.
                    close(descriptors[index].fd)
                    descriptors[index].fd = -1
                }
                descriptors[index].revents = 0
            }
        }

        // Wait without reaping, so the deadline can never signal a reused pid; then reap.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 {
            guard errno == EINTR else { preconditionFailure("waitid: \(String(cString: strerror(errno)))") }
        }
        let timedOut = deadline.exited()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { preconditionFailure("waitpid: \(String(cString: strerror(errno)))") }
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import (macros).
        let signal = status & 0x7f
        return Outcome(
            exitStatus: signal == 0 ? (status >> 8) & 0xff : 0, signal: signal == 0 ? nil : signal,
            stdout: stdout, stderr: stderr, timedOut: timedOut)
    }
}
