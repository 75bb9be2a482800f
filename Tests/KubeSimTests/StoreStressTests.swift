import Dispatch
import Foundation
import Synchronization
import Testing

@testable import KubeSimKit

/// Writers committing while watchers connect and disconnect: the store must never call out to
/// a watcher while it holds its lock (issue 12: a watch cancelled during a commit took the
/// store lock from inside the task cancel while `commit` held it to hand out events).
///
/// Writers and the watcher churn run on threads of their own, not on the cooperative pool. The
/// run must finish within a generous bound (a guard against hanging forever, not a timing
/// assertion); past it the test process exits with a message naming the deadlock.
///
/// Broken on purpose: with `commit` yielding to `watcher.continuation` under the store lock
/// (the code before the fix), this run stopped dead (0% CPU) and never finished.
@Suite("kube-sim store stress")
struct StoreStressTests {
    static let writers = 2
    static let writesPerWriter = 1500
    static let watchers = 8
    static let connectionsPerWatcher = 150
    /// How long the whole run may take before it is called a deadlock.
    static let overallBound: DispatchTimeInterval = .seconds(240)

    @Test("ClusterStore: watch: writers and churning watchers finish, and each watcher sees versions in order")
    func writersAndChurningWatchers() async throws {
        let store = ClusterStore(
            cluster: "management", catalog: ResourceCatalog(ResourceType.management), ledger: Ledger(),
            random: SimRandom(seed: 7))
        let tally = Tally()
        let group = DispatchGroup()

        for writer in 0..<Self.writers {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    for index in 0..<Self.writesPerWriter {
                        let name = "w\(writer)-\(index % 20)"
                        if index < 20 {
                            _ = try store.create(
                                .configMaps, namespace: "default",
                                body: ["metadata": ["name": .string(name)], "data": ["n": "0"]], options: .client)
                        } else {
                            _ = try store.mutate(.configMaps, namespace: "default", name: name, options: .client) {
                                $0[path: ["data", "n"]] = .string(String(index))
                            }
                        }
                    }
                } catch {
                    tally.state.withLock { $0.failures.append("writer \(writer): \(error)") }
                }
            }
        }
        for watcher in 0..<Self.watchers {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                for connection in 0..<Self.connectionsPerWatcher {
                    let events: AsyncStream<WatchEvent>
                    do {
                        events = try store.watch(
                            .configMaps, namespace: "default", labels: LabelSelector(matchLabels: [:]), fields: nil,
                            from: nil)
                    } catch {
                        tally.state.withLock { $0.failures.append("watcher \(watcher): \(error)") }
                        return
                    }
                    let wanted = 1 + (watcher + connection) % 5
                    let received = DispatchSemaphore(value: 0)
                    let consumer = Task.detached { [events] in
                        var last: Int64 = 0
                        var count = 0
                        var sawModified = false
                        for await event in events {
                            // The initial ADDED events come in key order; versions rise from the first MODIFIED on.
                            if event.type == "MODIFIED" {
                                if sawModified, event.resourceVersion <= last { tally.state.withLock { $0.outOfOrder += 1 } }
                                sawModified = true
                                last = event.resourceVersion
                            }
                            count += 1
                            tally.state.withLock { $0.events += 1 }
                            if count == wanted { received.signal() }
                        }
                    }
                    // Disconnect while the writers are committing: cancel from this thread, as a
                    // server cancels a request's task when its client goes away.
                    _ = received.wait(timeout: .now() + .milliseconds(50))
                    consumer.cancel()
                }
            }
        }

        // A deadlock can block every thread of the cooperative pool (a consumer task's own cancel
        // takes the store lock too), and then this test could never resume to report it: past
        // the bound, the watchdog thread ends the test process with a message instead of hanging.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                guard group.wait(timeout: .now() + Self.overallBound) == .success else {
                    FileHandle.standardError.write(
                        Data("kube-sim store stress: writers and watchers did not finish: the store deadlocked\n".utf8))
                    exit(70)
                }
                continuation.resume()
            }
        }
        let counts = tally.state.withLock { $0 }
        #expect(counts.failures == [])
        #expect(counts.outOfOrder == 0)
        #expect(counts.events > 0)
        #expect(store.currentResourceVersion >= Int64(Self.writers * Self.writesPerWriter))
        // Every cancelled watch is gone from the store.
        var open = store.openWatchCounts()["configmaps"] ?? 0
        for _ in 0..<3000 where open > 0 {  // up to ~30 s: the consumer tasks end on the shared pool
            try await Task.sleep(for: .milliseconds(10))
            open = store.openWatchCounts()["configmaps"] ?? 0
        }
        #expect(open == 0)
    }
}

/// What the threads of the stress run saw.
private final class Tally: Sendable {
    struct Counts: Sendable {
        var failures: [String] = []
        var outOfOrder = 0
        var events = 0
    }
    let state = Mutex(Counts())
}
