import CCurl
import Foundation
public import Logging
import Synchronization

/// `curl_global_init` must run once, before any other curl call, and is not thread-safe itself
/// (libcurl `curl_global_init(3)`). A global `let` is initialised lazily and exactly once.
private let curlGlobalInitialized: Bool = {
    let result = curl_global_init(Int(CURL_GLOBAL_DEFAULT))
    precondition(result == CURLE_OK, "curl_global_init failed: \(result.rawValue)")
    return true
}()

/// An HTTP/1.1 and HTTP/2 client over one curl multi handle driven by its own OS thread.
///
/// Callers `send` from any task; the request goes into a locked inbox and `curl_multi_wakeup`
/// rouses the thread, which owns every easy handle and the multi handle (curl handles must not be
/// used from two threads at once, `libcurl-thread(3)`). The multi handle keeps a pool of open
/// connections and TLS sessions, so repeated requests to one server reuse them. Many requests
/// run at once; the thread sleeps in `curl_multi_poll` when there is nothing to do.
public final class CurlTransport: Sendable {
    /// One shared transport for the process; it lives as long as the process.
    public static let shared = CurlTransport(logger: Logger(label: "capstan.providers.curl"))

    /// At most this many requests queued or in flight; past it `send` throws `.overloaded`.
    public let maxInFlight: Int

    private let inbox: Mutex<Inbox>
    // The multi handle is touched by the loop thread only, except for `curl_multi_wakeup`,
    // which libcurl documents as callable from any thread (`curl_multi_wakeup(3)`).
    private let multi: UnsafeSendableHandle
    private let logger: Logger

    /// Starts the transport's thread.
    ///
    /// - Parameters:
    ///   - maxInFlight: bound on requests queued or running at once.
    ///   - maxConnections: connections kept open for reuse (`CURLMOPT_MAXCONNECTS`).
    public init(maxInFlight: Int = 16_384, maxConnections: Int = 256, logger: Logger) {
        precondition(curlGlobalInitialized)
        precondition(maxInFlight > 0)
        guard let handle = curl_multi_init() else { fatalError("curl_multi_init returned NULL (out of memory)") }
        let setResult = capstan_curl_multi_setopt_long(handle, CURLMOPT_MAXCONNECTS, maxConnections)
        precondition(setResult == CURLM_OK)
        self.maxInFlight = maxInFlight
        self.multi = UnsafeSendableHandle(handle)
        self.inbox = Mutex(Inbox())
        self.logger = logger
        let loop = CurlLoop(multi: handle, transport: self, logger: logger)
        let thread = Thread { loop.run() }
        thread.name = "capstan-curl"
        thread.start()
    }

    /// Sends `request` and returns the whole response.
    ///
    /// Cancelling the task aborts the transfer.
    /// - Throws: `HTTPTransportError` for anything below HTTP; `CancellationError` when cancelled.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let id = try reserveID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<HTTPResponse, any Error>) in
                enqueue(.start(id, request, .buffered(waiter)))
            }
        } onCancel: {
            enqueue(.cancel(id))
        }
    }

    /// Sends `request` and streams the response: `.head` first, then body chunks as they come.
    ///
    /// The stream ends when the server closes the response; ending iteration early (or
    /// cancelling the consuming task) aborts the transfer.
    public func stream(_ request: HTTPRequest) throws -> AsyncThrowingStream<HTTPStreamPart, any Error> {
        let id = try reserveID()
        let (stream, continuation) = AsyncThrowingStream<HTTPStreamPart, any Error>.makeStream()
        continuation.onTermination = { [self] termination in
            if case .cancelled = termination { enqueue(.cancel(id)) }
        }
        enqueue(.start(id, request, .streaming(continuation)))
        return stream
    }

    /// Stops the thread after failing every transfer still running with `.shutDown`.
    ///
    /// Idempotent. The shared transport is never shut down.
    public func shutdown() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let alreadyStopped = inbox.withLock { inbox -> Bool in
                if inbox.stopped { return true }
                inbox.shutdownWaiters.append(done)
                inbox.stopping = true
                curl_multi_wakeup(multi.pointer)
                return false
            }
            if alreadyStopped { done.resume() }
        }
    }

    private func reserveID() throws -> UInt64 {
        try inbox.withLock { inbox in
            guard !inbox.stopping else {
                throw HTTPTransportError(code: .shutDown, curlCode: 0, message: "the transport is shut down")
            }
            guard inbox.inFlight < maxInFlight else {
                throw HTTPTransportError(
                    code: .overloaded, curlCode: 0, message: "more than \(maxInFlight) requests in flight")
            }
            inbox.inFlight += 1
            inbox.nextID += 1
            inbox.reserved.insert(inbox.nextID)
            return inbox.nextID
        }
    }

    /// Queues a command for the loop. A cancel that comes before its start (the task was
    /// cancelled before it sent anything) is settled here, under the lock, so the loop never has
    /// to remember ids it has not seen.
    private func enqueue(_ command: Command) {
        enum Outcome { case queued, cancelledEarly, dropped, rejected }
        let outcome: Outcome = inbox.withLock { inbox in
            switch command {
            case .start(let id, _, _):
                inbox.reserved.remove(id)
                if inbox.cancelledBeforeStart.remove(id) != nil {
                    inbox.inFlight -= 1
                    return .cancelledEarly
                }
                if inbox.stopped {
                    inbox.inFlight -= 1
                    return .rejected
                }
            case .cancel(let id):
                if inbox.reserved.contains(id) {
                    inbox.cancelledBeforeStart.insert(id)
                    return .dropped
                }
                if inbox.stopped { return .dropped }
            }
            inbox.commands.append(command)
            // Under the lock, so the loop cannot have freed the multi handle (it sets `stopped` first).
            curl_multi_wakeup(multi.pointer)
            return .queued
        }
        guard case .start(_, _, let completion) = command else { return }
        switch outcome {
        case .cancelledEarly: completion.fail(CancellationError())
        case .rejected:
            completion.fail(HTTPTransportError(code: .shutDown, curlCode: 0, message: "the transport is shut down"))
        case .queued, .dropped: break
        }
    }

    // MARK: loop side

    fileprivate func takeCommands() -> (commands: [Command], stopping: Bool) {
        inbox.withLock { inbox in
            let commands = inbox.commands
            inbox.commands.removeAll(keepingCapacity: true)
            return (commands, inbox.stopping)
        }
    }

    fileprivate func finished(count: Int) {
        inbox.withLock { $0.inFlight -= count }
    }

    /// Marks the transport stopped; returns the commands that arrived meanwhile and the waiters.
    fileprivate func markStopped() -> ([Command], [CheckedContinuation<Void, Never>]) {
        inbox.withLock { inbox in
            inbox.stopped = true
            let leftovers = inbox.commands
            inbox.commands = []
            let waiters = inbox.shutdownWaiters
            inbox.shutdownWaiters = []
            return (leftovers, waiters)
        }
    }

    enum Command: Sendable {
        case start(UInt64, HTTPRequest, Completion)
        case cancel(UInt64)
    }

    enum Completion: Sendable {
        case buffered(CheckedContinuation<HTTPResponse, any Error>)
        case streaming(AsyncThrowingStream<HTTPStreamPart, any Error>.Continuation)

        func fail(_ error: any Error) {
            switch self {
            case .buffered(let waiter): waiter.resume(throwing: error)
            case .streaming(let continuation): continuation.finish(throwing: error)
            }
        }
    }

    private struct Inbox: ~Copyable {
        var commands: [Command] = []
        var nextID: UInt64 = 0
        var inFlight = 0
        var stopping = false
        var stopped = false
        var shutdownWaiters: [CheckedContinuation<Void, Never>] = []
        /// Ids handed out whose start is not queued yet.
        var reserved: Set<UInt64> = []
        /// Ids cancelled while still in `reserved`.
        var cancelledBeforeStart: Set<UInt64> = []
    }
}

/// A C handle pointer that may cross threads because only thread-safe calls use it off its thread.
// @unchecked: the pointer is only dereferenced by curl; see each holder for which calls are safe.
struct UnsafeSendableHandle: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
}

/// Everything the curl thread owns: the multi handle, idle easy handles, live transfers.
///
/// Only the loop thread touches it after `run()` starts.
private final class CurlLoop: @unchecked Sendable {
    // @unchecked: handed to the Thread closure once, then used only on that thread.
    let multi: UnsafeMutableRawPointer
    // Strong: the transport lives until its loop stops (`shutdown`), like a thread pool.
    let transport: CurlTransport
    let logger: Logger
    var transfers: [UInt: CurlTransfer] = [:]
    var transferIDs: [UInt64: UInt] = [:]
    var idleHandles: [UnsafeMutableRawPointer] = []
    let idleHandlesMax = 512

    init(multi: UnsafeMutableRawPointer, transport: CurlTransport, logger: Logger) {
        self.multi = multi
        self.transport = transport
        self.logger = logger
    }

    func run() {
        var stopping = false
        while !stopping {
            let taken = transport.takeCommands()
            stopping = taken.stopping
            for command in taken.commands { apply(command) }
            if stopping { break }
            var running: Int32 = 0
            let performed = curl_multi_perform(multi, &running)
            precondition(performed == CURLM_OK, "curl_multi_perform: \(performed.rawValue)")
            collectFinished()
            let polled = curl_multi_poll(multi, nil, 0, 1000, nil)
            precondition(polled == CURLM_OK, "curl_multi_poll: \(polled.rawValue)")
        }
        stop()
    }

    private func apply(_ command: CurlTransport.Command) {
        switch command {
        case .start(let id, let request, let completion):
            start(id: id, request: request, completion: completion)
        case .cancel(let id):
            // Unknown: already finished (a cancel before the start is settled in `enqueue`).
            guard let key = transferIDs[id], let transfer = transfers[key] else { return }
            finish(transfer, result: .failure(CancellationError()))
        }
    }

    private func start(id: UInt64, request: HTTPRequest, completion: CurlTransport.Completion) {
        let easy: UnsafeMutableRawPointer
        if let reused = idleHandles.popLast() {
            curl_easy_reset(reused)
            easy = reused
        } else {
            guard let created = curl_easy_init() else { fatalError("curl_easy_init returned NULL (out of memory)") }
            easy = created
        }
        let transfer = CurlTransfer(id: id, easy: easy, completion: completion)
        transfer.configure(request)
        let added = curl_multi_add_handle(multi, easy)
        precondition(added == CURLM_OK, "curl_multi_add_handle: \(added.rawValue)")
        transfers[UInt(bitPattern: easy)] = transfer
        transferIDs[id] = UInt(bitPattern: easy)
    }

    private func collectFinished() {
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(multi, &remaining) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                let transfer = transfers[UInt(bitPattern: easy)]
            else { continue }
            let code = message.pointee.data.result
            if code == CURLE_OK {
                finish(transfer, result: .success(()))
            } else {
                finish(transfer, result: .failure(transfer.transportError(code)))
            }
        }
    }

    private func finish(_ transfer: CurlTransfer, result: Result<Void, any Error>) {
        let removed = curl_multi_remove_handle(multi, transfer.easy)
        precondition(removed == CURLM_OK, "curl_multi_remove_handle: \(removed.rawValue)")
        transfers[UInt(bitPattern: transfer.easy)] = nil
        transferIDs[transfer.id] = nil
        transfer.complete(result)
        transfer.release()
        if idleHandles.count < idleHandlesMax {
            idleHandles.append(transfer.easy)
        } else {
            curl_easy_cleanup(transfer.easy)
        }
        transport.finished(count: 1)
    }

    private func stop() {
        let error = HTTPTransportError(code: .shutDown, curlCode: 0, message: "the transport is shut down")
        for transfer in Array(transfers.values) { finish(transfer, result: .failure(error)) }
        let (leftovers, waiters) = transport.markStopped()
        for command in leftovers {
            if case .start(_, _, let completion) = command {
                transport.finished(count: 1)
                completion.fail(error)
            }
        }
        for easy in idleHandles { curl_easy_cleanup(easy) }
        idleHandles = []
        curl_multi_cleanup(multi)
        logger.debug("curl transport stopped")
        for waiter in waiters { waiter.resume() }
    }
}
