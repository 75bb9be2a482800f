import EventLog
import Fleet
import ServiceLifecycle

/// `capstan serve`'s handler of desired-state requests that `apply`, `delete` and `upgrade`
/// leave in the inbox while serve holds the log (``FleetInbox``): recorded with the same
/// recorder the CLI uses when the log is free, so both paths write the same events.
struct FleetInboxService: Service {
    let log: EventLog
    let inbox: EventLogReader

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await FleetInbox.run(log: log, inbox: inbox) }
        } catch is CancellationError {
            // Graceful shutdown: the tail ends; every handled request is already committed
            // with its checkpoint, so nothing is handled twice after a restart.
        }
    }
}
