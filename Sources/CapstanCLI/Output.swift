import CapstanSupport
import Foundation
import Yams

#if canImport(Glibc)
    import Glibc
#endif

// How the query commands print: one table renderer (kubectl's look: uppercase headers,
// columns two spaces apart, nothing trailing) and one dispatch on `-o` for every command.

/// A table: its columns, some shown only with `-o wide`, and its rows.
struct Table {
    struct Column {
        var header: String
        var wideOnly = false
    }

    var columns: [Column]
    var rows: [[String]] = []

    init(_ headers: [String], wide: [String] = []) {
        columns = headers.map { Column(header: $0) } + wide.map { Column(header: $0, wideOnly: true) }
    }

    mutating func append(_ row: [String]) {
        precondition(row.count == columns.count, "a row has one cell per column")
        rows.append(row)
    }

    /// The table as text: headers upper-cased, each column as wide as its widest cell,
    /// columns two spaces apart, no trailing spaces; wide-only columns when `wide`.
    func render(wide: Bool) -> String {
        let shown = columns.indices.filter { wide || !columns[$0].wideOnly }
        let lines = [shown.map { columns[$0].header.uppercased() }] + rows.map { row in shown.map { row[$0] } }
        let widths = shown.indices.map { column in lines.map { $0[column].count }.max() ?? 0 }
        return lines.map { line in
            var text = ""
            for (column, cell) in line.enumerated() {
                if column > 0 { text += "  " }
                text += column == line.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            while text.last == " " { text.removeLast() }
            return text
        }.joined(separator: "\n")
    }
}

/// Prints `value` as YAML (the same fields as the JSON form).
func printYAML<T: Encodable>(_ value: T) throws {
    let encoder = YAMLEncoder()
    encoder.options.sortKeys = true  // stable for scripts and tests, as the JSON form
    let text = try encoder.encode(value)
    print(text, terminator: text.hasSuffix("\n") ? "" : "\n")
}

/// Prints a query's answer in the format `-o` asked for: the table (`text`, `wide`), one
/// name a line (`name`), or `value` whole (`json`, `yaml`). An empty table prints `empty`
/// on standard error, as kubectl does, so a script reading standard output sees nothing.
func emit<T: Encodable>(_ value: T, format: OutputFormat, table: () -> Table, names: () -> [String], empty: String) throws {
    switch format {
    case .json: try printJSON(value)
    case .yaml: try printYAML(value)
    case .name: for name in names() { print(name) }
    case .text, .wide:
        let rendered = table()
        if rendered.rows.isEmpty {
            printError(empty)
        } else {
            print(rendered.render(wide: format == .wide))
        }
    }
}

/// Terminal styling: on only when standard output is a terminal and `NO_COLOR` is unset
/// (https://no-color.org) and `TERM` is not `dumb`.
enum Style {
    static let enabled: Bool = {
        let environment = ProcessInfo.processInfo.environment
        if let noColor = environment["NO_COLOR"], !noColor.isEmpty { return false }
        if environment["TERM"] == "dumb" { return false }
        return isatty(STDOUT_FILENO) == 1
    }()

    static func red(_ text: String) -> String { paint(text, "31") }
    static func yellow(_ text: String) -> String { paint(text, "33") }
    static func green(_ text: String) -> String { paint(text, "32") }
    static func bold(_ text: String) -> String { paint(text, "1") }
    static func dim(_ text: String) -> String { paint(text, "2") }

    private static func paint(_ text: String, _ code: String) -> String {
        enabled ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }
}

/// An RFC 3339 time in UTC to the second, or `-` for none.
func timeText(_ nanoseconds: Int64?) -> String {
    guard let nanoseconds, nanoseconds > 0 else { return "-" }
    return rfc3339(nanoseconds: nanoseconds)
}

/// kubectl's age: `45s`, `12m`, `3h`, `5d` between `nanoseconds` and `now`; `-` for none.
func ageText(_ nanoseconds: Int64?, now: Int64) -> String {
    guard let nanoseconds, nanoseconds > 0 else { return "-" }
    let seconds = max(0, (now - nanoseconds) / 1_000_000_000)
    if seconds < 120 { return "\(seconds)s" }
    if seconds < 2 * 3600 { return "\(seconds / 60)m" }
    if seconds < 48 * 3600 { return "\(seconds / 3600)h" }
    return "\(seconds / 86_400)d"
}

/// Prints a report whole as JSON or YAML (`-o json|yaml` of the commands that print no table).
func printStructured<T: Encodable>(_ value: T, format: OutputFormat) throws {
    if format == .yaml { try printYAML(value) } else { try printJSON(value) }
}
