import Circuits
import Foundation
import TestSupport
import Transformer
import XCTest

/// Integrated-gradients input attribution on the tiny fixtures.
final class InputAttributionTests: XCTestCase {
    /// Completeness: each pair's attributions add up to M(clean) − M(corrupt), within a tolerance
    /// that shrinks as the midpoint rule's error, 1/steps², down to float32 rounding.
    func testAttributionsAddUpToTheMetricDifference() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            for metric in [Metric.logitDiff, .kl] {
                var previous = Double.infinity
                for steps in [32, 128, 512] {
                    let result = try InputAttribution(model: model, pairs: pairs, metric: metric, steps: steps, batchSize: 16)
                    XCTAssertEqual(result.attributions.map(\.count), pairs.clean.map(\.count))
                    let gap = zip(result.cleanMetrics, result.corruptMetrics).map { abs($0 - $1) }.max()!
                    XCTAssertGreaterThan(gap, 0.5, "\(name) \(metric): the pairs must differ for the test to mean anything")
                    let worst = result.completenessErrors.map(abs).max()! / gap
                    XCTAssertLessThan(worst, 150 / Double(steps * steps) + 2e-5, "\(name) \(metric), \(steps) steps")
                    XCTAssertLessThan(worst, previous, "\(name) \(metric), \(steps) steps")
                    previous = worst
                }
            }
        }
    }

    /// A position where the clean and corrupted prompts hold the same token gets exactly 0; the
    /// positions that differ carry the whole difference.
    func testPositionsWithTheSameTokenGetZero() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, fixture) = try tinyFixture(name)
            var pairs = fixture
            // Each corrupted prompt is its clean prompt with only position 1 and the last one changed.
            let changed = pairs.clean.map { [1, $0.count - 1] }
            for b in pairs.clean.indices {
                pairs.corrupt[b] = pairs.clean[b]
                for p in changed[b] { pairs.corrupt[b][p] = fixture.corrupt[b][p] }
            }
            let result = try InputAttribution(model: model, pairs: pairs, metric: .logitDiff, steps: 256)
            for (b, values) in result.attributions.enumerated() {
                for (p, value) in values.enumerated() where !changed[b].contains(p) {
                    XCTAssertEqual(value, 0, "\(name) pair \(b) position \(p)")
                }
                XCTAssertTrue(changed[b].contains { values[$0] != 0 }, "\(name) pair \(b): \(values)")
                let difference = result.cleanMetrics[b] - result.corruptMetrics[b]
                XCTAssertEqual(values.reduce(0, +), difference, accuracy: 1e-3 * max(1, abs(difference)), "\(name) pair \(b)")
            }
        }
    }

    /// Packing (pair, step) prompts into passes of any size gives the same attributions, and the
    /// progress reports count every interpolated prompt.
    func testBatchingDoesNotChangeTheResult() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        var reports: [Int] = []
        let one = try InputAttribution(model: model, pairs: pairs, metric: .logprob, steps: 5, batchSize: 1) { done, total in
            XCTAssertEqual(total, 15)
            reports.append(done)
        }
        let packed = try InputAttribution(model: model, pairs: pairs, metric: .logprob, steps: 5, batchSize: 7)
        XCTAssertEqual(reports, Array(1...15))
        for (a, b) in zip(one.attributions, packed.attributions) {
            XCTAssertLessThanOrEqual(maxAbsDifference(a.map(Float.init), b.map(Float.init)), 1e-5 * Float(max(1, a.map(abs).max()!)))
        }
        XCTAssertLessThanOrEqual(maxAbsDifference(one.cleanMetrics.map(Float.init), packed.cleanMetrics.map(Float.init)), 1e-5)
        XCTAssertThrowsError(try InputAttribution(model: model, pairs: pairs, metric: .logprob, steps: 0))
    }

    /// The token heatmap writes each pair's tokens in its cells, leaves the cells past a shorter
    /// pair's end blank, and colours negative values red, 0 white and positive values blue.
    func testTokenHeatmapShowsTokensOnADivergingScale() throws {
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        let result = try InputAttribution(model: model, pairs: pairs, metric: .logitDiff, steps: 2)
        let map = result.heatmap(pairs: [0, 1], title: "t") { "<\($0)·\($1)>" }
        XCTAssertEqual(map.columnLabels.count, pairs.clean[0].count)
        let svg = map.svg()
        XCTAssertTrue(svg.contains("&lt;1·3&gt;"))
        XCTAssertFalse(svg.contains("&lt;1·4&gt;"), "pair 2 has 4 tokens")
        XCTAssertEqual(svg.components(separatedBy: "<title>").count - 1, pairs.clean[0].count + pairs.clean[1].count)

        let signed = Heatmap(title: "s", rowLabels: ["r"], columnLabels: ["a", "b", "c"], rowAxis: "", columnAxis: "",
                             values: [-2, 0, 2], range: -2...2, cellLabels: ["x", "y", "z"], diverging: true).svg()
        for fill in ["#67000d", "#ffffff", "#08306b"] { XCTAssertTrue(signed.contains(#"fill="\#(fill)" stroke"#), fill) }
    }
}
