import Foundation
import TestSupport
import XCTest

/// `circuits lens`, `dla`, `attention`, `trace` and `attribute` on the tiny GGUF model and its pairs.
final class InsideCLITests: CLITestCase {
    func testHelpAndMissingInputs() throws {
        for command in ["lens", "dla", "attention", "trace", "attribute"] {
            let help = try circuits([command, "--help"])
            XCTAssertEqual(help.status, 0, command)
            XCTAssertTrue(help.stdout.hasPrefix("usage: circuits \(command)"), help.stdout)
            XCTAssertTrue(try circuits(["--help"]).stdout.contains(command))
        }
        for arguments in [["lens", "--model", tinyLlama], ["dla", "--model", tinyLlama], ["trace", "--model", tinyLlama],
                          ["attention", "--model", tinyLlama, "x"], ["attribute", "--model", tinyLlama]] {
            let run = try circuits(arguments)
            XCTAssertEqual(run.status, 2, "\(arguments): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("give"), run.stderr)
        }
    }

    func testLensOnAPromptAndOnPairs() throws {
        let text = try circuits(["lens", "--model", tinyLlama, "--top", "2", "--all-positions", "the cat sat"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("blocks.0.hook_resid_pre"), text.stdout)
        XCTAssertTrue(text.stdout.contains("blocks.1.hook_resid_post"), text.stdout)
        XCTAssertTrue(text.stdout.contains("position 0"), text.stdout)

        let directory = try temporaryDirectory()
        let run = try circuits(["lens", "--model", tinyLlama, "--data", try tinyPairs(in: directory), "-n", "3", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let prompts = try XCTUnwrap(json["prompts"] as? [[String: Any]])
        XCTAssertEqual(prompts.count, 3)
        let readings = try XCTUnwrap(prompts[0]["readings"] as? [[String: Any]])
        XCTAssertEqual(readings.count, 5, "2 layers: 2·2 + 1 points at the last position")
        XCTAssertEqual(readings.last?["point"] as? String, "blocks.1.hook_resid_post")
        XCTAssertNotNil(readings.last?["logit_diff"] as? Double)
        XCTAssertEqual((readings.last?["correct"] as? [[String: Any]])?.first?["text"] as? String, " c")

        let pairsText = try circuits(["lens", "--model", tinyLlama, "--data", try tinyPairs(in: directory), "-n", "3"])
        XCTAssertEqual(pairsText.status, 0, pairsText.stderr)
        XCTAssertTrue(pairsText.stdout.contains("mean over 3 pairs"), pairsText.stdout)
    }

    func testDLATermsSumToTheLogitDifference() throws {
        let directory = try temporaryDirectory()
        let run = try circuits(["dla", "--model", tinyLlama, "--data", try tinyPairs(in: directory), "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let components = try XCTUnwrap(json["components"] as? [String: Double])
        XCTAssertEqual(components.count, 1 + 2 * (4 + 1))
        let total = components.values.reduce(0, +) + (json["attention_bias"] as! Double) + (json["final_norm_bias"] as! Double)
        XCTAssertEqual(total, try XCTUnwrap(json["logit_diff"] as? Double), accuracy: 1e-3)
        let text = try circuits(["dla", "--model", tinyLlama, "--data", try tinyPairs(in: directory), "--top", "3"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("top 3 components"), text.stdout)
    }

    func testAttentionWritesOneSVGPerHeadAndPrompt() throws {
        let directory = try temporaryDirectory()
        let out = directory.appendingPathComponent("patterns")
        let run = try circuits(["attention", "--model", tinyLlama, "--heads", "a0.h1,a1.h3", "--out", out.path, "the cat", "a dog sat"])
        XCTAssertEqual(run.status, 0, run.stderr)
        for name in ["a0.h1-p1", "a1.h3-p1", "a0.h1-p2", "a1.h3-p2"] {
            let svg = try String(contentsOf: out.appendingPathComponent("\(name).svg"), encoding: .utf8)
            XCTAssertTrue(svg.hasPrefix("<svg"), name)
            XCTAssertTrue(svg.contains("query position"), name)
        }
        let json = try circuits(["attention", "--model", tinyLlama, "--heads", "a1.h0", "--out", out.path, "--json", "--data",
                                 try tinyPairs(in: directory), "--examples", "2"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let patterns = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(patterns.count, 2)
        let weights = try XCTUnwrap(patterns[0]["weights"] as? [[Double]])
        for row in weights { XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-4) }

        let bad = try circuits(["attention", "--model", tinyLlama, "--heads", "a7.h0", "--out", out.path, "hi"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("'a7.h0' is not a head"), bad.stderr)
    }

    func testTraceWritesAHeatmapAndTheGrid() throws {
        let directory = try temporaryDirectory()
        let run = try circuits(["trace", "--model", tinyLlama, "--data", try tinyPairs(in: directory), "--out", directory.path,
                                "--name", "tiny", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("left"), "progress with an estimate: \(run.stderr)")
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let grid = try XCTUnwrap(json["recovery"] as? [[Double]])
        let tokens = try XCTUnwrap(json["tokens"] as? [String])
        XCTAssertEqual(grid.count, 2)
        XCTAssertTrue(grid.allSatisfy { $0.count == tokens.count })
        let svg = try String(contentsOf: directory.appendingPathComponent("tiny-trace.svg"), encoding: .utf8)
        XCTAssertTrue(svg.contains("blocks.1.hook_resid_pre"))
    }

    func testAttributeSumsToTheMetricDifferenceAndDrawsTheTokens() throws {
        let directory = try temporaryDirectory()
        let pairs = try tinyPairs(in: directory), svg = directory.appendingPathComponent("maps/attribution.svg")
        let run = try circuits(["attribute", "--model", tinyLlama, "--data", pairs, "-n", "4", "--steps", "64", "--batch-size", "10",
                                "--show", "2", "--svg", svg.path, "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("left"), "progress with an estimate: \(run.stderr)")
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["steps"] as? Int, 64)
        let attributions = try XCTUnwrap(json["attributions"] as? [[String: Any]])
        XCTAssertEqual(attributions.count, 4)
        for pair in attributions {
            let clean = try XCTUnwrap(pair["clean"] as? [String]), corrupt = try XCTUnwrap(pair["corrupt"] as? [String])
            let values = try XCTUnwrap(pair["attribution"] as? [Double])
            XCTAssertEqual(values.count, clean.count)
            for (p, value) in values.enumerated() where clean[p] == corrupt[p] { XCTAssertEqual(value, 0, "\(clean) position \(p)") }
            XCTAssertTrue(values.contains { $0 != 0 })
            let difference = try XCTUnwrap(pair["clean_metric"] as? Double) - XCTUnwrap(pair["corrupt_metric"] as? Double)
            XCTAssertEqual(values.reduce(0, +), difference, accuracy: 1e-2 * max(1, abs(difference)))
            XCTAssertEqual(try XCTUnwrap(pair["completeness_error"] as? Double), values.reduce(0, +) - difference, accuracy: 1e-9)
        }
        let drawn = try String(contentsOf: svg, encoding: .utf8)
        XCTAssertTrue(drawn.hasPrefix("<svg"))
        XCTAssertTrue(drawn.contains("pair 2") && !drawn.contains("pair 3"), "--show 2 draws two pairs")
        XCTAssertTrue(drawn.contains("&quot; c&quot;"), "the cells show the tokens")

        let text = try circuits(["attribute", "--model", tinyLlama, "--data", pairs, "-n", "2", "--show", "1", "--steps", "1"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stderr.contains("more --steps (now 1)"), "one step misses the difference: \(text.stderr)")
        XCTAssertFalse(run.stderr.contains("more --steps"), "64 steps do not: \(run.stderr)")
        XCTAssertTrue(text.stdout.contains("completeness error"), text.stdout)
        XCTAssertTrue(text.stdout.contains("pair 1:") && !text.stdout.contains("pair 2:"), text.stdout)

        for (arguments, complaint) in [(["--steps", "0"], "--steps"), (["--show", "0", "--svg", svg.path], "--svg")] {
            let bad = try circuits(["attribute", "--model", tinyLlama, "--data", pairs] + arguments)
            XCTAssertEqual(bad.status, 2, bad.stderr)
            XCTAssertTrue(bad.stderr.contains(complaint), bad.stderr)
            XCTAssertTrue(bad.stdout.isEmpty)
        }
    }
}
