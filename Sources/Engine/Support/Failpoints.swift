#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Named places where a crash test can kill the engine on purpose.
///
/// `CAPSTAN_FAILPOINT=<name>` makes the process die with SIGKILL the first time it passes
/// `<name>`; `CAPSTAN_FAILPOINT_SKIP=<n>` lets it pass `n` times first. The environment is
/// read once; when unset, a failpoint costs one comparison of a constant.
public enum Failpoint: String, CaseIterable, Sendable {
    /// A batch is built, its append not yet submitted.
    case beforeCommit = "engine.beforeCommit"
    /// A batch with an `ActivityStarted` committed; the executor not yet called.
    case afterActivityStartedCommit = "engine.afterActivityStartedCommit"
    /// An executor returned; its completion not yet recorded.
    case afterActivityCallBeforeCompletion = "engine.afterActivityCallBeforeCompletion"
    /// Any batch committed; its calls not yet made.
    case afterCommit = "engine.afterCommit"
    /// A batch with a `TimerFired` or `WorkflowCompleted` committed.
    case afterTerminalOrTimerCommit = "engine.afterTerminalOrTimerCommit"

    private static let armed: Failpoint? = {
        guard let raw = getenv("CAPSTAN_FAILPOINT") else { return nil }
        return Failpoint(rawValue: String(cString: raw))
    }()

    /// Whether any failpoint is armed (to skip work that only serves failpoints).
    public static var isArmed: Bool { armed != nil }

    private static let passesBeforeCrash: Int = {
        guard let raw = getenv("CAPSTAN_FAILPOINT_SKIP") else { return 0 }
        return Int(String(cString: raw)) ?? 0
    }()

    private static let passes = Atomic<Int>(0)

    /// Dies here if this failpoint is armed (and its skips are used up).
    @inline(__always)
    public func hit() {
        guard let armed = Failpoint.armed, armed == self else { return }
        Failpoint.crash(self)
    }

    @inline(never)
    private static func crash(_ point: Failpoint) {
        let passed = passes.add(1, ordering: .relaxed).newValue
        guard passed > passesBeforeCrash else { return }
        let message = "failpoint \(point.rawValue): killing the process\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        kill(getpid(), SIGKILL)
    }
}
