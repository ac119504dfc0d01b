import Circuits
import Foundation
import Kernels
import Tasks
import Transformer

/// How well EAP and EAP-IG stand in for exact patching, and faithfulness curves of EAP, EAP-IG and
/// ACDC, on SmolLM2 with 100 pairs of IOI and of greater-than.
enum AttributionBenchmark {
    static let curveSizes = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000]

    static func run(_ context: BenchmarkContext) throws {
        let tasks = context.option("--task").map { [$0] } ?? ["ioi", "greater-than"]
        let exactTop = Int(context.option("--exact-top") ?? "500") ?? 500
        let exactRandom = Int(context.option("--exact-random") ?? "500") ?? 500
        let acdcPairs = Int(context.option("--acdc-pairs") ?? "8") ?? 8
        let taus = (context.option("--taus") ?? "").split(separator: ",").compactMap { Double($0) }
        let model = try context.model()
        for task in tasks {
            try benchmark(task: task, model: model, context: context, exactTop: exactTop, exactRandom: exactRandom,
                          acdcPairs: acdcPairs, taus: taus.isEmpty ? defaultTaus : taus)
        }
    }

    /// ACDC thresholds (on KL) tried when `--taus` is not given: each takes 15–25 minutes on SmolLM2 with 8 pairs.
    static let defaultTaus = [0.02, 0.05]

    static func benchmark(task: String, model: TransformerModel, context: BenchmarkContext, exactTop: Int, exactRandom: Int,
                          acdcPairs: Int, taus: [Double]) throws {
        let dataset = try TaskRegistry.located().generate(task, count: 100, seed: 0, tokenizer: model.tokenizer!)
        let pairs = PairBatch(dataset.tokenized), metric = dataset.metric
        progress("== \(task): \(pairs.count) pairs, metric \(metric.rawValue)")

        var start = now()
        let eap = try EdgeAttribution.scores(model: model, pairs: pairs, metric: metric)
        let eapSeconds = now() - start
        start = now()
        let eapIG = try EdgeAttribution.scores(model: model, pairs: pairs, metric: metric, integratedGradientSteps: 5)
        let eapIGSeconds = now() - start
        progress(String(format: "eap %.1f s, eap-ig %.1f s", eapSeconds, eapIGSeconds))

        let experiment = try Experiment(model: model, pairs: pairs, metric: metric)
        let g = experiment.graph
        // The sample: the top edges by |EAP| and as many others drawn at random.
        let ranked = eap.indices.sorted { abs(eap[$0]) > abs(eap[$1]) }
        var rng = SeededRandom(seed: 7)
        let rest = Array(ranked.dropFirst(exactTop))
        let sample = Array(ranked.prefix(exactTop)) + rng.sample(rest, count: min(exactRandom, rest.count))
        start = now()
        let exact = ExactPatching.scores(experiment, edges: sample) { done, total in
            if done % 100 == 0 { progress(String(format: "exact: %d/%d edges, %.0f s", done, total, now() - start)) }
        }
        let exactSeconds = now() - start

        var table = ResultsTable(
            title: "Attribution vs exact patching: \(task) on SmolLM2-135M-Instruct", command: context.command,
            notes: ["\(pairs.count) pairs (seed 0), metric \(metric.rawValue), resample ablation; clean \(format(experiment.cleanMetric, 4)), corrupt \(format(experiment.corruptMetric, 4))",
                    "exact effects for \(sample.count) edges: the top \(exactTop) by |EAP| and \(sample.count - exactTop) drawn at random from the other \(g.edgeCount - exactTop)",
                    "top-k overlap: |top-k by |method| ∩ top-k by |exact|| / k within the sample; sign agreement over sampled edges with |exact| > 1e-4 · max |exact|",
                    String(format: "time: EAP %.1f s, EAP-IG (5 steps) %.1f s for all %d edges; exact %.2f s per edge (%.0f s for the sample)",
                           eapSeconds, eapIGSeconds, g.edgeCount, exactSeconds / Double(sample.count), exactSeconds)] + dataset.notes,
            header: ["method", "Pearson r", "Spearman ρ", "sign agreement", "top-50 overlap", "top-200 overlap", "seconds (all edges)"])
        for (name, scores, seconds) in [("EAP", eap, eapSeconds), ("EAP-IG", eapIG, eapIGSeconds)] {
            let s = sample.map { scores[$0] }
            table.rows.append([name, format(pearson(s, exact), 3), format(spearman(s, exact), 3), format(signAgreement(s, exact), 3),
                               format(overlap(s, exact, k: 50), 2), format(overlap(s, exact, k: 200), 2), format(seconds, 1)])
        }
        try table.write("attribution-\(task)", to: context.resultsDirectory)

        // Faithfulness curves.
        var curves = ResultsTable(
            title: "Faithfulness curves: \(task) on SmolLM2-135M-Instruct", command: context.command,
            notes: ["faithfulness = (M_circuit − M_corrupt) / (M_clean − M_corrupt) on the same \(pairs.count) pairs; circuits are the top n edges by |score|, pruned to input→logits paths (the edges column)",
                    acdcPairs > 0 && !taus.isEmpty
                        ? "ACDC runs on the first \(acdcPairs) pairs with metric kl and is evaluated on all \(pairs.count); its points sit at the sizes it finds"
                        : "ACDC not run (--acdc-pairs 0 or no --taus)"],
            header: ["method", "n requested", "edges after pruning", "faithfulness"])
        var series: [LineChart.Series] = []
        for (name, scores, color) in [("EAP", eap, "#d62728"), ("EAP-IG", eapIG, "#1f77b4")] {
            let points = experiment.faithfulnessCurve(scores: scores, sizes: curveSizes)
            for p in points { curves.rows.append([name, "\(p.requested)", "\(p.edges)", format(p.faithfulness, 3)]) }
            series.append(.init(name: name, color: color, points: points.map { (Double(max($0.edges, 1)), $0.faithfulness) }))
        }
        // Written before ACDC and again after each threshold, so a long sweep leaves every finished point on disk.
        func writeCurves(acdc: [(x: Double, y: Double)]) throws {
            try curves.write("faithfulness-\(task)", to: context.resultsDirectory)
            let acdcSeries = LineChart.Series(name: "ACDC (τ sweep)", color: "#2ca02c", points: acdc, markersOnly: true)
            let chart = LineChart(title: "Faithfulness vs circuit size: \(task), SmolLM2-135M", xLabel: "edges in circuit (log scale)",
                                  yLabel: "faithfulness", series: acdc.isEmpty ? series : series + [acdcSeries])
            let svg = context.resultsDirectory.appendingPathComponent("faithfulness-\(task).svg")
            try Data(chart.svg.utf8).write(to: svg, options: .atomic)
            progress("wrote \(svg.path)")
        }
        try writeCurves(acdc: [])
        guard acdcPairs > 0 && !taus.isEmpty else { return }
        var acdcPoints: [(x: Double, y: Double)] = []
        let acdcExperiment = try Experiment(model: model, pairs: pairs.slice(0..<min(acdcPairs, pairs.count)), metric: .kl)
        let acdcOwnPairs = try Experiment(model: model, pairs: acdcExperiment.pairs, metric: metric)
        for tau in taus {
            let start = now()
            let acdc = try ACDC(acdcExperiment, tau: tau)
            let kept = g.pruned(acdc.run { _, p in
                if p.receiversDone % 50 == 0 {
                    progress(String(format: "acdc τ=%g: %d/%d receivers, %d tried, %d removed, %.0f s", tau, p.receiversDone,
                                    p.receiverCount, p.edgesTried, p.edgesRemoved, p.seconds))
                }
            })
            let seconds = now() - start
            let f = experiment.evaluate(circuit: kept).faithfulness
            let fOwn = acdcOwnPairs.evaluate(circuit: kept).faithfulness
            curves.rows.append(["ACDC τ=\(tau)", "—", "\(kept.count)", format(f, 3)])
            curves.notes.append(String(format: "ACDC τ=%g: %d edges, %d edges tried, wall time %.0f s; faithfulness %.3f on its own %d pairs",
                                       tau, kept.count, acdc.state.edgesTried, seconds, fOwn, acdcExperiment.pairs.count))
            acdcPoints.append((Double(max(kept.count, 1)), f))
            try writeCurves(acdc: acdcPoints)
        }
    }
}

/// Spearman rank correlation (average ranks for ties).
func spearman(_ x: [Float], _ y: [Float]) -> Double {
    func ranks(_ v: [Float]) -> [Float] {
        let order = v.indices.sorted { v[$0] < v[$1] }
        var r = [Float](repeating: 0, count: v.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
            for t in i...j { r[order[t]] = Float(i + j) / 2 }
            i = j + 1
        }
        return r
    }
    return pearson(ranks(x), ranks(y))
}

/// Fraction of pairs with the same sign, over those whose reference is clearly non-zero.
func signAgreement(_ x: [Float], _ reference: [Float]) -> Double {
    let scale = reference.map { abs($0) }.max() ?? 0
    let kept = x.indices.filter { abs(reference[$0]) > 1e-4 * scale }
    guard !kept.isEmpty else { return .nan }
    return Double(kept.filter { (x[$0] > 0) == (reference[$0] > 0) }.count) / Double(kept.count)
}

/// |top-k by |x| ∩ top-k by |reference|| / k.
func overlap(_ x: [Float], _ reference: [Float], k: Int) -> Double {
    let k = min(k, x.count)
    let a = Set(x.indices.sorted { abs(x[$0]) > abs(x[$1]) }.prefix(k))
    let b = Set(reference.indices.sorted { abs(reference[$0]) > abs(reference[$1]) }.prefix(k))
    return Double(a.intersection(b).count) / Double(k)
}
