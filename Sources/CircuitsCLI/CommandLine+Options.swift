import Foundation

/// A command-line option a subcommand accepts.
struct OptionSpec {
    /// Long name without dashes, e.g. `model`.
    let name: String
    /// One-letter alias (`-n`), if any.
    let short: Character?
    /// Placeholder for the value (`M`), or nil for a boolean flag.
    let value: String?
    /// One-line help.
    let help: String

    init(name: String, short: Character? = nil, value: String?, help: String) {
        self.name = name
        self.short = short
        self.value = value
        self.help = help
    }
}

/// A usage mistake: printed with the subcommand's help hint, exit status 2.
struct UsageError: Error, CustomStringConvertible {
    let description: String
}

/// Parsed options and positional arguments of one subcommand.
struct ParsedOptions {
    /// The arguments as given.
    let arguments: [String]
    private var values: [String: String] = [:]
    private var flags: Set<String> = []
    /// Arguments that are not options, in order.
    private(set) var positionals: [String] = []
    /// The options with their values, in order (the arguments without the positionals).
    private(set) var optionArguments: [String] = []

    /// Parses `arguments` against `specs`; `--name value`, `--name=value` and `--` are understood.
    init(_ arguments: [String], specs: [OptionSpec]) throws {
        self.arguments = arguments
        let byName = Dictionary(uniqueKeysWithValues: specs.map { ($0.name, $0) })
        let longFor = Dictionary(uniqueKeysWithValues: specs.compactMap { spec in spec.short.map { ("-\($0)", "--\(spec.name)") } })
        var i = 0
        var onlyPositionals = false
        while i < arguments.count {
            var argument = arguments[i]
            i += 1
            if !onlyPositionals, let long = longFor[argument] { argument = long }
            if onlyPositionals || !argument.hasPrefix("--") || argument == "-" {
                if !onlyPositionals, argument.hasPrefix("-"), argument.count > 1, argument != "-", Double(argument) == nil {
                    throw UsageError(description: "unknown option '\(argument)'")
                }
                positionals.append(argument)
                continue
            }
            if argument == "--" { onlyPositionals = true; continue }
            optionArguments.append(argument)
            var name = String(argument.dropFirst(2))
            var inlineValue: String?
            if let eq = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            guard let spec = byName[name] else { throw UsageError(description: "unknown option '--\(name)'") }
            if spec.value == nil {
                guard inlineValue == nil else { throw UsageError(description: "option '--\(name)' takes no value") }
                flags.insert(name)
            } else if let inlineValue {
                values[name] = inlineValue
            } else {
                guard i < arguments.count else { throw UsageError(description: "option '--\(name)' needs a value (\(spec.value!))") }
                // `--out --json` is a forgotten value, not a folder called --json (write `--out=--json` for that).
                if arguments[i].hasPrefix("--"), byName[String(arguments[i].dropFirst(2).prefix { $0 != "=" })] != nil {
                    throw UsageError(description: "option '--\(name)' needs a value (\(spec.value!)), but the next argument is the option '\(arguments[i])'")
                }
                values[name] = arguments[i]
                optionArguments.append(arguments[i])
                i += 1
            }
        }
    }

    /// Whether boolean flag `name` was given.
    func flag(_ name: String) -> Bool { flags.contains(name) }

    /// The value of option `name`, if given.
    func string(_ name: String) -> String? { values[name] }

    /// The value of option `name` as an integer within `range`.
    func int(_ name: String, default fallback: Int? = nil, in range: ClosedRange<Int> = Int.min...Int.max) throws -> Int? {
        guard let text = values[name] else { return fallback }
        guard let value = Int(text), range.contains(value) else {
            let wanted = range.upperBound == Int.max ? "an integer ≥ \(range.lowerBound)" : "an integer in \(range.lowerBound)...\(range.upperBound)"
            throw UsageError(description: "option '--\(name)' needs \(wanted), got '\(text)'")
        }
        return value
    }

    /// The value of option `name` as a number within `range`.
    func double(_ name: String, default fallback: Double? = nil, in range: ClosedRange<Double> = -Double.infinity...Double.infinity) throws -> Double? {
        guard let text = values[name] else { return fallback }
        guard let value = Double(text), range.contains(value) else {
            let wanted = range.upperBound == .infinity ? "a number ≥ \(range.lowerBound)" : "a number in \(range.lowerBound)...\(range.upperBound)"
            throw UsageError(description: "option '--\(name)' needs \(wanted), got '\(text)'")
        }
        return value
    }
}

/// A `circuits` subcommand.
protocol Subcommand {
    /// Name typed after `circuits`.
    static var name: String { get }
    /// One line for `circuits --help`.
    static var summary: String { get }
    /// Usage line(s) after `circuits <name>`.
    static var usage: String { get }
    /// Accepted options (`--help` is implicit).
    static var options: [OptionSpec] { get }
    /// Runs with parsed options; returns the exit status.
    static func run(_ options: ParsedOptions) throws -> Int32
}

extension Subcommand {
    /// `--help` text.
    static var help: String {
        let all = options + [OptionSpec(name: "help", value: nil, help: "show this help")]
        let heads = all.map { "\($0.short.map { "-\($0), " } ?? "")--\($0.name)\($0.value.map { " \($0)" } ?? "")" }
        let width = heads.map(\.count).max() ?? 0
        var lines = ["usage: circuits \(name) \(usage)", "", summary, "", "options:"]
        for (head, option) in zip(heads, all) {
            lines.append("  \(head.padding(toLength: width, withPad: " ", startingAt: 0))  \(option.help)")
        }
        return lines.joined(separator: "\n")
    }
}

/// Writes a line to standard error (progress and diagnostics; results go to standard output).
func note(_ message: String) { showProgress(.note(message)) }
