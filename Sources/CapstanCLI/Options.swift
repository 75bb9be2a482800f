import ArgumentParser
import Foundation
import Logging

/// How a command prints its result: one option for every command (`-o`).
///
/// `text` is the table (or report) for people; `wide` the table with more columns; `name`
/// one `kind/name` a line; `json` and `yaml` the whole answer for scripts. The query
/// commands (get, describe, history, workflow) take all five; apply, log and the others
/// know text and json and print text for the rest.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text
    case json
    case yaml
    case wide
    case name
}

/// The options every command shares: where the log is, and how to print.
struct CommonOptions: ParsableArguments {
    @Option(
        name: .customLong("data-dir"),
        help: ArgumentHelp(
            "The log's data directory.",
            discussion: "Defaults to $CAPSTAN_DATA_DIR when set, else ./capstan-data.",
            valueName: "dir"))
    var dataDirectoryArgument: String?

    @Option(
        name: [.customShort("o"), .long],
        help: ArgumentHelp("Output format: text (a table) or wide for people; json, yaml or name for scripts.", valueName: "format"))
    var output: OutputFormat = .text

    /// The data directory after defaults: the flag, then `CAPSTAN_DATA_DIR`, then `./capstan-data`.
    var dataDirectory: String {
        if let dataDirectoryArgument { return dataDirectoryArgument }
        if let fromEnvironment = ProcessInfo.processInfo.environment["CAPSTAN_DATA_DIR"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return "./capstan-data"
    }
}

/// A failure the command explains itself: printed as `error: …` and exit code 1.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Documented exit codes (see `capstan --help`): 0 ok, 1 failure, 2 usage.
enum ExitCodes {
    /// `log verify` found damage (a failure like any other).
    static let damage = ExitCode(1)
    /// The command could not run: missing data directory, not a log, I/O error, refused input.
    static let failure = ExitCode(1)
    /// The command line is wrong (ArgumentParser's usage errors are mapped to it in `Capstan.main`).
    static let usage = ExitCode(2)
}

/// Runs `body`, turning any error other than an exit code into `error: …` on standard
/// error and exit code 1.
func reportingFailures(_ body: () async throws -> Void) async throws {
    _ = loggingBootstrap
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch let usage as ValidationError {
        throw usage
    } catch {
        printError("error: \(error)")
        throw ExitCodes.failure
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Prints a value as pretty JSON with sorted keys (stable for scripts and tests).
func printJSON<T: Encodable>(_ value: T) throws {
    print(try jsonText(value))
}

/// A value as JSON with sorted keys: pretty, or on one line (a watch's document per change).
func jsonText<T: Encodable>(_ value: T, pretty: Bool = true) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// 1234567 → "1,234,567": figures people read at a glance.
func grouped(_ value: some BinaryInteger) -> String {
    let digits = Array(String(value.magnitude))
    var text = ""
    for (index, digit) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { text.append(",") }
        text.append(digit)
    }
    return value < 0 ? "-" + text : text
}

func formatted(_ value: Double, digits: Int = 1) -> String {
    String(format: "%.\(digits)f", value)
}

/// The CLI alone bootstraps logging: to standard error, at `CAPSTAN_LOG_LEVEL` (default
/// `warning`, so the library's info logs do not bury a command's output).
let loggingBootstrap: Void = {
    let level = ProcessInfo.processInfo.environment["CAPSTAN_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}()
