import ArgumentParser
import CapstanSupport
import EventLog
import EventLogTesting
import Foundation

extension Log {
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write events as JSON lines, decompressed, for audit.",
            discussion: """
                One JSON object per line and per event, in log order: position, stream, \
                revision, id (32 hex digits), type, schemaVersion, recordedAt (RFC 3339, UTC, \
                nanoseconds), actor, causationID and correlationID (hex or null), and the \
                payload: embedded as JSON when it is valid JSON ("payload"), else as base64 \
                ("payloadBase64").

                Events go to standard output, or to --output-file; with a file, a summary \
                (text, or JSON with -o json) goes to standard output. The export is one \
                consistent snapshot, even while a writer appends.

                Examples:
                  capstan log export > audit.jsonl
                  capstan log export --after 5000 --stream machine/prod-eu-west-3-k7q0/prod-eu-west-3-k7q0-md-0-x2b9f
                  capstan log export --output-file audit.jsonl -o json
                """
        )

        @OptionGroup var options: CommonOptions

        @Option(help: ArgumentHelp("Export only events after this position.", valueName: "position"))
        var after: UInt64 = 0

        @Option(help: ArgumentHelp("Export only this stream's events.", valueName: "stream"))
        var stream: String?

        @Option(help: ArgumentHelp("Write the events to this file instead of standard output.", valueName: "file"))
        var outputFile: String?

        struct Summary: Codable {
            var events: UInt64
            var firstPosition: UInt64?
            var lastPosition: UInt64?
            var file: String?
        }

        func run() async throws {
            try await reportingFailures {
                let reader = try openReader(options.dataDirectory)
                let sink = try LineSink(path: outputFile)
                var summary = Summary(events: 0, file: outputFile)
                let last = try reader.lastPosition()
                let streamFilter = stream.map(StreamID.init(_:))
                try reader.scan(after: LogPosition(after), through: last) { event in
                    if let streamFilter, event.streamID != streamFilter { return true }
                    try sink.write(exportLine(event))
                    summary.events += 1
                    summary.firstPosition = summary.firstPosition ?? event.position.rawValue
                    summary.lastPosition = event.position.rawValue
                    return true
                }
                try sink.close()
                guard let outputFile else { return }
                switch options.output {
                case .json, .yaml: try printStructured(summary, format: options.output)
                case .text, .wide, .name:
                    let range = summary.firstPosition.map { " (positions \($0)...\(summary.lastPosition ?? $0))" } ?? ""
                    print("exported \(grouped(summary.events)) events\(range) to \(outputFile)")
                }
            }
        }
    }
}

/// One event as a line of JSON (no trailing newline).
func exportLine(_ event: RecordedEvent) -> [UInt8] {
    var line = "{\"position\":\(event.position.rawValue),\"stream\":\(JSONWriter.quoted(event.streamID.rawValue))"
    line += ",\"revision\":\(event.revision.rawValue),\"id\":\"\(event.id)\",\"type\":\(JSONWriter.quoted(event.type))"
    line += ",\"schemaVersion\":\(event.schemaVersion)"
    line += ",\"recordedAt\":\"\(rfc3339(nanoseconds: event.recordedAtNanoseconds, fractionDigits: 9))\""
    line += ",\"actor\":\(JSONWriter.quoted(event.metadata.actor))"
    line += ",\"causationID\":\(event.metadata.causationID.map { "\"\($0)\"" } ?? "null")"
    line += ",\"correlationID\":\(event.metadata.correlationID.map { "\"\($0)\"" } ?? "null")"
    var bytes = Array(line.utf8)
    if let json = embeddableJSON(event.payload) {
        bytes += Array(",\"payload\":".utf8) + json
    } else {
        bytes += Array(",\"payloadBase64\":\"\(Data(event.payload).base64EncodedString())\"".utf8)
    }
    bytes.append(UInt8(ascii: "}"))
    return bytes
}

/// The payload as it can stand inside a JSON line, or nil when it is not JSON.
private func embeddableJSON(_ payload: [UInt8]) -> [UInt8]? {
    guard !payload.isEmpty,
        let object = try? JSONSerialization.jsonObject(with: Data(payload), options: [.fragmentsAllowed])
    else { return nil }
    // Keep the writer's bytes (and key order) unless a line break would split the line.
    if !payload.contains(UInt8(ascii: "\n")) && !payload.contains(UInt8(ascii: "\r")) { return payload }
    guard let compact = try? JSONSerialization.data(withJSONObject: object, options: [.fragmentsAllowed]) else {
        return nil
    }
    return Array(compact)
}

/// Buffered line output to standard output or a file.
final class LineSink {
    private let handle: FileHandle
    private let ownsHandle: Bool
    private var buffer: [UInt8] = []

    init(path: String?) throws {
        if let path {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw CommandFailure("cannot create the output file \(path)")
            }
            guard let handle = FileHandle(forWritingAtPath: path) else {
                throw CommandFailure("cannot open the output file \(path) for writing")
            }
            self.handle = handle
            ownsHandle = true
        } else {
            handle = FileHandle.standardOutput
            ownsHandle = false
        }
        buffer.reserveCapacity(1 << 16)
    }

    func write(_ line: [UInt8]) throws {
        buffer += line
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count >= 1 << 16 { try flush() }
    }

    func flush() throws {
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    func close() throws {
        try flush()
        if ownsHandle { try handle.close() }
    }
}
