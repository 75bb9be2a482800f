import Foundation
import Testing

@testable import EventLog

@Suite("EventLog: zstd dictionaries")
struct DictionaryTests {
    /// Training after 60 events of a type, retraining when the count doubles.
    static func trainingOptions() -> EventLogOptions {
        var options = testOptions(training: true)
        options.dictionaryTraining.minimumSamples = 60
        options.dictionaryTraining.retrainGrowthFactor = 2
        options.dictionaryTraining.dictionaryCapacityBytes = 2048
        options.dictionaryTraining.samplesKept = 200
        return options
    }

    @Test("EventLog: dictionaries: trained, rotated, and every old event still decodes after reopen")
    func trainingAndRotation() async throws {
        // Goal: events from before the first dictionary, under the first and under the second
        // all decode, in this process and from disk after reopening.
        // Method: append one event per commit so training happens at 60 and 120 events.
        try await withTemporaryDirectory { dir in
            var originals: [ProposedEvent] = []
            do {
                let log = try EventLog(directory: dir, options: Self.trainingOptions())
                for n in 0..<200 {
                    let event = proposed(n, type: "MachineProvisioned")
                    originals.append(event)
                    try await log.append([event], to: StreamID("machine/\(n % 9)"), expectedRevision: .any)
                }
                // Training runs off the writer thread: wait (generously) for the second dictionary.
                var stats = try log.reader.stats()
                for _ in 0..<300 where stats.dictionaries.count < 2 {
                    try await Task.sleep(for: .milliseconds(100))
                    stats = try log.reader.stats()
                }
                #expect(stats.dictionaries.map(\.id) == [1, 2])
                #expect(stats.dictionaries.allSatisfy { $0.eventType == "MachineProvisioned" })
                #expect(stats.dictionaries.first?.eventCountAtTraining == 60)
                #expect(stats.dictionaries.last?.eventCountAtTraining ?? 0 >= 120)
                // The first 60 were compressed before any dictionary existed.
                #expect(stats.dictionaries.first?.eventsUsing ?? 0 > 0)
                #expect(stats.eventsWithDictionary <= 140)
                #expect(stats.compressionRatio > 1.5)
                #expect(try log.reader.readAll(after: .start).map(\.payload) == originals.map(\.payload))
                await log.close()
            }
            // Decode from disk: forget every cached dictionary and name.
            let reader = try EventLogReader(directory: dir)
            reader.environment.caches.tables.withLock { $0 = ReaderCaches.Tables() }
            let events = try reader.readAll(after: .start)
            #expect(events.map(\.payload) == originals.map(\.payload))
            #expect(events.map(\.id) == originals.map(\.id))
            #expect(try reader.verify().isClean)

            // A reopened writer keeps compressing with the newest dictionary.
            let log = try EventLog(directory: dir, options: Self.trainingOptions())
            try await log.append([proposed(500)], to: "machine/0", expectedRevision: .any)
            let last = try log.reader.stats()
            #expect(last.dictionaries.first { $0.id == 2 }?.eventsUsing ?? 0 >= 1)
            #expect(try log.reader.readAll(after: LogPosition(200)).first?.payload == proposed(500).payload)
            await log.close()
        }
    }

    @Test("EventLog: dictionaries: disabled training stores none")
    func disabled() async throws {
        try await withTemporaryDirectory { dir in
            var options = Self.trainingOptions()
            options.dictionaryTraining.isEnabled = false
            let log = try EventLog(directory: dir, options: options)
            for n in 0..<80 {
                try await log.append([proposed(n)], to: "s", expectedRevision: .any)
            }
            let stats = try log.reader.stats()
            #expect(stats.dictionaries.isEmpty)
            #expect(stats.eventsWithDictionary == 0)
            #expect(stats.events == 80)
            await log.close()
        }
    }
}
