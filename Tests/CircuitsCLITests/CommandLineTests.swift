import Foundation
import TestSupport
import XCTest

/// The `circuits` command as a user meets it: help, exit statuses, errors for bad input, and the
/// discover → evaluate round trip.
final class CommandLineTests: CLITestCase {
    func testEverySubcommandHasHelp() throws {
        let top = try circuits(["--help"])
        XCTAssertEqual(top.status, 0)
        for command in ["discover", "evaluate", "graph", "task", "run", "fetch-model"] {
            XCTAssertTrue(top.stdout.contains(command), "top-level help lists \(command)")
            let help = try circuits([command, "--help"])
            XCTAssertEqual(help.status, 0, command)
            XCTAssertTrue(help.stdout.hasPrefix("usage: circuits \(command)"), "\(command) --help: \(help.stdout.prefix(80))")
            XCTAssertTrue(help.stdout.contains("--help"))
        }
    }

    func testUsageMistakesExitWithStatusTwo() throws {
        let unknownCommand = try circuits(["frobnicate"])
        XCTAssertEqual(unknownCommand.status, 2)
        XCTAssertTrue(unknownCommand.stderr.contains("unknown command 'frobnicate'"))
        let unknownOption = try circuits(["graph", "--frob"])
        XCTAssertEqual(unknownOption.status, 2)
        XCTAssertTrue(unknownOption.stderr.contains("unknown option '--frob'"), unknownOption.stderr)
        let badNumber = try circuits(["discover", "--edges", "many"])
        XCTAssertEqual(badNumber.status, 2)
        XCTAssertTrue(badNumber.stderr.contains("'--edges' needs an integer ≥ 1, got 'many'"), badNumber.stderr)
    }

    func testRunOnAGGUFFile() throws {
        let run = try circuits(["run", "--model", tinyLlama, "--top", "3", "--json", "hello world"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((json["next"] as? [Any])?.count, 3)
        XCTAssertFalse((json["tokens"] as? [Any] ?? []).isEmpty)
    }

    func testBadModelFilesAndNamesAreOneLineErrors() throws {
        let directory = try temporaryDirectory()
        let truncated = directory.appendingPathComponent("truncated.gguf")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: tinyLlama))
        try bytes.prefix(bytes.count / 2).write(to: truncated)
        for (model, expected) in [(truncated.path, "truncated"), ("no-such-model-anywhere", "unknown model"),
                                  (directory.appendingPathComponent("missing.gguf").path, "no such file")] {
            let run = try circuits(["run", "--model", model, "hi"])
            XCTAssertEqual(run.status, 1, "\(model): \(run.stderr)")
            let lines = run.stderr.split(separator: "\n").filter { !$0.hasPrefix("loaded") }
            XCTAssertEqual(lines.count, 1, "one line for \(model): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(model), "names the file: \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(expected), "says what is wrong: \(run.stderr)")
        }
    }

    func testExportNeverOverwritesWithoutForce() throws {
        _ = try Fixtures.smolLM2()
        let directory = try temporaryDirectory()
        let file = directory.appendingPathComponent("pairs.jsonl")
        try Data("precious\n".utf8).write(to: file)
        let refused = try circuits(["task", "export", "ioi", "-n", "3", "-o", file.path])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains("--force"), refused.stderr)
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), "precious\n")
        let forced = try circuits(["task", "export", "ioi", "-n", "3", "-o", file.path, "--force"])
        XCTAssertEqual(forced.status, 0, forced.stderr)
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8).split(separator: "\n").count, 3)
    }

    /// Malformed pairs files stop with the file, the line and the reason.
    func testMalformedPairsLinesNameTheLine() throws {
        _ = try Fixtures.smolLM2()
        let directory = try temporaryDirectory()
        let good = #"{"clean": "When Mary and John went to the store, John gave a drink to", "corrupt": "When Anna and Tom went to the store, Carl gave a drink to", "correct": [" Mary"], "incorrect": [" John"]}"#
        let cases: [(String, String)] = [
            (#"{"clean": "When Mary and John went", "corrupt": "When Anna and Tom went" "correct": [" Mary"]}"#, "pairs.jsonl:2:"),
            (good.replacingOccurrences(of: #"[" Mary"]"#, with: #"[" Zachary"]"#), "2 tokens"),
            (good.replacingOccurrences(of: "Carl gave", with: "Carl happily gave"), "pairs.jsonl:2:"),
            (good.replacingOccurrences(of: #""incorrect": [" John"]"#, with: #""incorrect": []"#), "pairs.jsonl:2:"),
        ]
        for (bad, expected) in cases {
            let file = directory.appendingPathComponent("pairs.jsonl")
            try Data((good + "\n" + bad + "\n" + good + "\n").utf8).write(to: file)
            let run = try circuits(["discover", "--data", file.path, "--method", "eap", "--out", directory.path])
            XCTAssertEqual(run.status, 1, "\(bad): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(expected), "\(expected) in: \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("pairs.jsonl:2"), run.stderr)
        }
    }

    /// discover writes DOT, JSON (and SVG with Graphviz); evaluate reads the JSON back and agrees.
    func testDiscoverThenEvaluate() throws {
        _ = try Fixtures.smolLM2()
        let directory = try temporaryDirectory()
        let mib = directory.appendingPathComponent("mib")
        let discover = try circuits(["discover", "--task", "ioi", "-n", "4", "--method", "eap", "--edges", "60",
                                     "--out", directory.path, "--name", "c", "--json", "--mib-out", mib.path])
        XCTAssertEqual(discover.status, 0, discover.stderr)
        // MIB's forms: one score file, one circuit per budget.
        XCTAssertTrue(FileManager.default.fileExists(atPath: mib.appendingPathComponent("scores/c.json").path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mib.appendingPathComponent("circuits").path).sorted().first,
                       "c-0.1pct.json")
        let circuit = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(discover.stdout.utf8)) as? [String: Any])
        let faithfulness = try XCTUnwrap(circuit["faithfulness"] as? Double)
        XCTAssertGreaterThan((circuit["edges"] as? [Any])?.count ?? 0, 0)
        // Measured again on fresh pairs: by default as many as -n, from the task's next seed.
        let heldOut = try XCTUnwrap(circuit["held_out"] as? [String: Any], "discover --json has held_out")
        XCTAssertEqual(heldOut["source"] as? String, "ioi seed 1")
        XCTAssertEqual(heldOut["pairs"] as? Int, 4)
        let freshFaithfulness = try XCTUnwrap(heldOut["faithfulness"] as? Double)
        for ext in ["json", "dot"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent("c.\(ext)").path), ext)
        }
        XCTAssertFalse(discover.stderr.contains("graphviz warnings"), discover.stderr)
        let evaluate = try circuits(["evaluate", "--circuit", directory.appendingPathComponent("c.json").path, "-n", "4", "--json"])
        XCTAssertEqual(evaluate.status, 0, evaluate.stderr)
        let result = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(evaluate.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(result["faithfulness"] as? Double), faithfulness, accuracy: 1e-6)
        let evaluatedFresh = try XCTUnwrap(result["held_out"] as? [String: Any], "evaluate --json has held_out")
        XCTAssertEqual(try XCTUnwrap(evaluatedFresh["faithfulness"] as? Double), freshFaithfulness, accuracy: 1e-6)
        let notACircuit = try circuits(["evaluate", "--circuit", Fixtures.url("tiny-llama/config.json").path])
        XCTAssertEqual(notACircuit.status, 1)
        XCTAssertTrue(notACircuit.stderr.contains("config.json"), notACircuit.stderr)
    }

    /// Without --method, discover searches at the edge budget: its circuit is at least as close to the
    /// clean model (|1 − faithfulness|) as EAP-IG's top n it starts from, and evaluate measures the same.
    func testDefaultMethodSearchesFromEAPIG() throws {
        _ = try Fixtures.smolLM2()
        let directory = try temporaryDirectory()
        func discover(_ extra: [String], name: String) throws -> [String: Any] {
            let run = try circuits(["discover", "--task", "ioi", "-n", "4", "--held-out", "0", "--edges", "40", "--out", directory.path,
                                    "--name", name, "--json"] + extra)
            XCTAssertEqual(run.status, 0, run.stderr)
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        }
        let searched = try discover(["--search-steps", "3"], name: "s")
        let ranked = try discover(["--method", "eap-ig"], name: "e")
        XCTAssertEqual(searched["method"] as? String, "search")
        XCTAssertLessThanOrEqual((searched["edges"] as? [Any])?.count ?? .max, 40)
        let f = try XCTUnwrap(searched["faithfulness"] as? Double), start = try XCTUnwrap(ranked["faithfulness"] as? Double)
        XCTAssertLessThanOrEqual(abs(1 - f), abs(1 - start) + 1e-6)
        let evaluate = try circuits(["evaluate", "--circuit", directory.appendingPathComponent("s.json").path, "-n", "4", "--held-out", "0", "--json"])
        XCTAssertEqual(evaluate.status, 0, evaluate.stderr)
        let result = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(evaluate.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(result["faithfulness"] as? Double), f, accuracy: 1e-6)
    }

    /// Options of one method given to another are usage errors, before any model is loaded.
    func testMethodOptionsBelongToTheirMethod() throws {
        for (arguments, expected) in [
            (["--method", "eap", "--train-steps", "5"], "--train-steps only applies to --method prune"),
            (["--method", "eap-ig", "--edges-from", "m0->logits"], "--edges-from only applies to --method exact"),
            (["--method", "exact", "--candidates", "9"], "--candidates only applies to --method eap-ig-exact"),
            (["--method", "eap", "--resume", "state.json"], "--resume only applies to --method acdc or prune"),
            (["--method", "pruning"], "unknown --method 'pruning'"),
            (["--name", "../outside"], "--name must be a plain file name"),
            (["--method", "eap", "--tau", "0.1"], "--tau only applies to --method acdc"),
            (["--method", "exact", "--steps", "3"], "--steps sets EAP-IG's interpolation points"),
            (["--threshold", "0.1", "--greedy"], "--greedy grows a top --edges circuit"),
            (["--method", "eap", "--search-steps", "5"], "--search-steps only applies to --method search"),
            (["--method", "search", "--threshold", "0.1"], "search looks for a circuit of --edges edges; --threshold does not apply"),
            (["--method", "search", "--greedy"], "search looks for a circuit of --edges edges; --greedy does not apply"),
            (["--mib"], "--mib ranks every edge by its score; search chooses one circuit instead"),
            (["--method", "acdc", "--mib-out", "mib"], "--mib-out ranks every edge by its score; acdc chooses one circuit instead"),
            (["--method", "eap", "--compare", "clean"], "--compare only applies to --method acdc"),
            (["--method", "acdc", "--compare", "full"], "--compare must be current or clean"),
            (["--method", "eap", "--trials", "grouped"], "--trials only applies to --method acdc"),
            (["--method", "acdc", "--trials", "batched"], "--trials must be serial, grouped or attributed"),
            (["--method", "acdc", "--edges", "50"], "acdc chooses its circuit with --target-faithfulness or --tau; --edges does not apply"),
            (["--method", "acdc", "--tau", "0.1", "--target-faithfulness", "0.8"], "give only one of --tau, --target-faithfulness"),
            (["--method", "acdc", "--target-faithfulness", "1.5"], "option '--target-faithfulness' needs a number in 0.0...0.9999"),
            (["--method", "acdc", "--nodes-first", "--edges-only"], "give only one of --nodes-first, --edges-only"),
            (["--method", "eap", "--edges-only"], "--edges-only only applies to --method acdc"),
        ] {
            let run = try circuits(["discover"] + arguments)
            XCTAssertEqual(run.status, 2, "\(arguments): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(expected), "\(expected) in: \(run.stderr)")
        }
    }

    /// Exact patching of edges named on the command line scores those edges and no others.
    func testExactPatchingOfChosenEdges() throws {
        _ = try Fixtures.smolLM2()
        let directory = try temporaryDirectory()
        let chosen = ["input->m0", "m0->a23.h3<v>", "a23.h3->logits"]
        let run = try circuits(["discover", "--task", "ioi", "-n", "2", "--held-out", "0", "--method", "exact", "--edges-from",
                                chosen.joined(separator: ","), "--edges", "3", "--out", directory.path, "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let circuit = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let edges = try XCTUnwrap(circuit["edges"] as? [[String: Any]])
        XCTAssertEqual(Set(edges.compactMap { $0["name"] as? String }), Set(chosen), "the path input → m0 → a23.h3 → logits survives pruning")
        XCTAssertTrue(edges.allSatisfy { ($0["score"] as? Double ?? 0) != 0 }, "every chosen edge was patched: \(edges)")
        XCTAssertNil(circuit["held_out"], "--held-out 0 measures no fresh pairs")
        // Reading a circuit from the file this run would write is refused; the file stays as it was.
        let written = directory.appendingPathComponent("ioi.json")
        let before = try Data(contentsOf: written)
        let clash = try circuits(["discover", "--task", "ioi", "-n", "2", "--held-out", "0", "--method", "exact", "--edges-from",
                                  written.path, "--out", directory.path])
        XCTAssertEqual(clash.status, 2, clash.stderr)
        XCTAssertTrue(clash.stderr.contains("give another --name or --out"), clash.stderr)
        XCTAssertEqual(try Data(contentsOf: written), before)
        let bad = try circuits(["discover", "--task", "ioi", "-n", "2", "--method", "exact", "--edges-from", "a99.h0->logits",
                                "--out", directory.path])
        XCTAssertEqual(bad.status, 2, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("'a99.h0->logits' is not an edge"), bad.stderr)
    }

    /// The help says where the task specs come from and what evaluate's pairs default to.
    func testHelpSaysWhereTasksComeFromAndWhatEvaluateUses() throws {
        let task = try circuits(["task", "--help"])
        XCTAssertTrue(task.stdout.contains("$CIRCUITKIT_TASKS"), task.stdout)
        let evaluate = try circuits(["evaluate", "--help"])
        let taskLine = try XCTUnwrap(evaluate.stdout.split(separator: "\n").first { $0.hasPrefix("  --task") })
        XCTAssertTrue(taskLine.contains("the circuit's own task"), String(taskLine))
        XCTAssertFalse(taskLine.contains("default ioi"), String(taskLine))
    }

    /// Fields a pairs file adds are named once on stderr, not once per line; a misspelled required
    /// field is named in the error.
    func testExtraPairFieldsAreNotedOncePerFile() throws {
        _ = try Fixtures.smolLM2()
        let directory = try temporaryDirectory()
        let file = directory.appendingPathComponent("pairs.jsonl")
        let pair = #""clean": "When Mary and John went to the store, John gave a drink to", "corrupt": "When Anna and Tom went to the store, Carl gave a drink to", "correct": [" Mary"], "incorrect": [" John"]"#
        try Data((0..<3).map { "{\(pair), \"template\": \($0)}\n" }.joined().utf8).write(to: file)
        let run = try circuits(["discover", "--data", file.path, "-n", "2", "--held-out", "1", "--method", "eap", "--edges", "40",
                                "--out", directory.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stderr.components(separatedBy: "ignored unknown field").count, 2, run.stderr)
        XCTAssertTrue(run.stderr.contains("pairs.jsonl: ignored unknown field \"template\"\n"), run.stderr)
        try Data(("{" + pair.replacingOccurrences(of: "\"corrupt\"", with: "\"corrupted\"") + "}\n").utf8).write(to: file)
        let misspelled = try circuits(["discover", "--data", file.path, "--method", "eap", "--out", directory.path])
        XCTAssertEqual(misspelled.status, 1, misspelled.stderr)
        XCTAssertTrue(misspelled.stderr.contains(#"pairs.jsonl:1: missing field "corrupt" (did you mean "corrupted"?)"#), misspelled.stderr)
    }

    /// An option whose value is forgotten does not swallow the next option; a pairs file with a prompt
    /// longer than the model's context is refused with its file and line.
    func testForgottenValuesAndOverlongPromptsAreNamed() throws {
        let directory = try temporaryDirectory()
        let forgotten = try circuits(["discover", "--model", tinyLlama, "--out", "--json"], in: directory)
        XCTAssertEqual(forgotten.status, 2, forgotten.stderr)
        XCTAssertTrue(forgotten.stderr.contains("option '--out' needs a value (DIR), but the next argument is the option '--json'"), forgotten.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [], "no folder called --json")
        let long = directory.appendingPathComponent("long.jsonl")
        let prompt = String(repeating: "the cat sat on the mat ", count: 20)
        try #"{"clean": "\#(prompt)cat", "corrupt": "\#(prompt)dog", "correct": [" c"], "incorrect": [" d"]}"#.write(to: long, atomically: true, encoding: .utf8)
        let run = try circuits(["discover", "--model", tinyLlama, "--data", long.path, "--method", "eap", "--json"])
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("long.jsonl:1: the prompts are"), run.stderr)
        XCTAssertTrue(run.stderr.contains("longer than the model's context of 64"), run.stderr)
        // Corrupted prompts that change nothing leave faithfulness undefined: said so, nothing written.
        let same = directory.appendingPathComponent("same.jsonl")
        try #"{"clean": "the cat sat on the", "corrupt": "the cat sat on the", "correct": [" c"], "incorrect": [" d"]}"#
            .write(to: same, atomically: true, encoding: .utf8)
        let unchanged = try circuits(["discover", "--model", tinyLlama, "--data", same.path, "--method", "eap", "--held-out", "0",
                                      "--out", directory.appendingPathComponent("same-out").path])
        XCTAssertEqual(unchanged.status, 1, unchanged.stderr)
        XCTAssertTrue(unchanged.stderr.contains("give the same logit_diff"), unchanged.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("same-out/same-jsonl.json").path))
        // Folders and devices given as input files are named in plain words.
        for (arguments, expected) in [(["discover", "--model", tinyLlama, "--data", directory.path, "--format", "jsonl"], "is a directory, not a pairs file"),
                                      (["evaluate", "--circuit", "/dev/null", "--model", tinyLlama], "is a device, not a circuit file"),
                                      (["merge", directory.path], "is a directory, not a shard result")] {
            let refused = try circuits(arguments)
            XCTAssertEqual(refused.status, 1, refused.stderr)
            XCTAssertTrue(refused.stderr.contains(expected), refused.stderr)
        }
    }

    /// EAP-IG CSV answers are token ids: the run shows what they decode to with this model's tokenizer.
    func testEAPIGCSVIdsAreShownDecoded() throws {
        let csv = Fixtures.repositoryRoot.appendingPathComponent("Tests/Fuzz/corpus/pairs.csv").path
        let run = try circuits(["discover", "--model", tinyLlama, "--data", csv, "--method", "eap", "--held-out", "0", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains(#"answer ids decode as " c" (322) vs " d" (329)"#), run.stderr)
    }
}
