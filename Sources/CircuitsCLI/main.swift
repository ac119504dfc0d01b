import Foundation
import Transformer

/// Every subcommand, in the order `circuits --help` lists them.
let subcommands: [Subcommand.Type] = [
    DiscoverCommand.self, MergeCommand.self, EvaluateCommand.self, CompareCommand.self, NodesCommand.self, GraphCommand.self, TaskCommand.self,
    RunCommand.self, LensCommand.self, DLACommand.self, AttentionCommand.self, TraceCommand.self, AttributeCommand.self,
    ReportCommand.self, FetchModelCommand.self,
]

let topLevelHelp = """
    usage: circuits <command> [options]

    Find the circuits in transformer language models that carry a behaviour.

    commands:
    \(subcommands.map { "  \($0.name.padding(toLength: 14, withPad: " ", startingAt: 0))\($0.summary)" }.joined(separator: "\n"))

    Run `circuits <command> --help` for a command's options.
    """

/// Parses the command line, runs the subcommand and returns the exit status.
@MainActor
func runMain(_ arguments: [String]) -> Int32 {
    guard let first = arguments.first, first != "--help", first != "-h", first != "help" else {
        print(topLevelHelp)
        return arguments.isEmpty ? 2 : 0
    }
    guard let command = subcommands.first(where: { $0.name == first }) else {
        note("circuits: unknown command '\(first)'\n\n\(topLevelHelp)")
        return 2
    }
    let rest = Array(arguments.dropFirst())
    if rest.contains("--help") || rest.contains("-h") {
        print(command.help)
        return 0
    }
    do {
        return try command.run(ParsedOptions(rest, specs: command.options))
    } catch let error as UsageError {
        note("circuits \(command.name): \(error)\nRun `circuits \(command.name) --help` for usage.")
        return 2
    } catch {
        note("circuits \(command.name): error: \(error)")
        return 1
    }
}

exit(runMain(Array(CommandLine.arguments.dropFirst())))
