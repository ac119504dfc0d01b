import Circuits
import Foundation
import Tasks
import Transformer

/// `circuits compare`: how two saved circuits overlap and how each does on the other's pairs.
enum CompareCommand: Subcommand {
    static let name = "compare"
    static let summary = "Compare two saved circuits: shared edges and nodes (Jaccard), the edges only in each, and each one's faithfulness on both circuits' pairs."
    static let usage = "A.json B.json [--model M] [--task T | --data F] [-n N] [--top K] [--json]"
    static let options = [
        OptionSpec(name: "model", value: "M", help: "model (default: the first circuit's)"),
    ] + pairOptions.filter { $0.name != "held-out" }.map {
        switch $0.name {
        case "task": OptionSpec(name: "task", value: "T", help: "measure both circuits on this built-in task (default: on each circuit's recorded pairs)")
        case "data": OptionSpec(name: "data", value: "F", help: "measure both circuits on this pairs file (default: on each circuit's recorded pairs)")
        case "pairs": OptionSpec(name: "pairs", short: "n", value: "N", help: "number of pairs (default: as many as each circuit was found on, or 100)")
        default: $0
        }
    } + [
        OptionSpec(name: "top", value: "K", help: "edges only in one circuit to list, by |score| (default 5)"),
        OptionSpec(name: "json", value: nil, help: "print JSON"),
    ]

    /// How two sets overlap.
    struct Overlap: Encodable {
        let shared: Int, onlyA: Int, onlyB: Int
        /// |A ∩ B| / |A ∪ B| (1 for two empty sets).
        let jaccard: Double

        init(_ a: Set<String>, _ b: Set<String>) {
            shared = a.intersection(b).count
            onlyA = a.count - shared
            onlyB = b.count - shared
            let union = a.union(b).count
            jaccard = union == 0 ? 1 : Double(shared) / Double(union)
        }

        enum CodingKeys: String, CodingKey {
            case shared, jaccard
            case onlyA = "only_a"
            case onlyB = "only_b"
        }
    }

    /// Both circuits measured on one set of pairs.
    struct Measurement: Encodable {
        /// Whose recorded pairs these are (`A`, `B`, `A and B`), or `given`.
        let pairsOf: String
        let source: String, pairs: Int, metric: String, ablation: String
        let cleanMetric: Double, corruptMetric: Double
        /// Faithfulness of circuit A and of circuit B.
        let a: Double, b: Double

        enum CodingKeys: String, CodingKey {
            case source, pairs, metric, ablation, a, b
            case pairsOf = "pairs_of"
            case cleanMetric = "clean_metric"
            case corruptMetric = "corrupt_metric"
        }
    }

    static func run(_ options: ParsedOptions) throws -> Int32 {
        guard options.positionals.count == 2 else {
            throw UsageError(description: "give two circuit files to compare (got \(options.positionals.count))")
        }
        let paths = options.positionals
        let circuits = try paths.map { try Circuit.load(URL(fileURLWithPath: $0)) }
        let top = try options.int("top", default: 5, in: 0...100_000)!
        let names = circuits.map { Set($0.edges.map(\.name)) }
        let nodes = circuits.map { Set($0.edges.flatMap { [$0.sender, $0.receiver] }) }
        let onlyIn = [circuits[0].edges.filter { !names[1].contains($0.name) }, circuits[1].edges.filter { !names[0].contains($0.name) }]

        let recordedModel = circuits[0].provenance?.model ?? circuits[0].model
        let model = try loadModel(options.string("model") ?? (recordedModel == DefaultModel.name ? nil : recordedModel))
        let edges = try circuits.map { try $0.edgeIndices(in: model.graph) }
        // Fresh pairs play no part here: each circuit is measured on the pairs sets themselves.
        let base = try options.adding(["held-out": "0"], specs: Self.options)
        var sets: [(pairsOf: String, loaded: LoadedPairs, metric: Metric, ablation: Ablation)] = []
        if base.string("task") != nil || base.string("data") != nil {
            sets.append(("given", try loadPairs(base, model: model), circuits[0].metric, circuits[0].ablation))
        } else {
            for (i, label) in ["A", "B"].enumerated() {
                let circuit = circuits[i]
                let loaded = try recordedPairs(of: circuit, at: paths[i], options: base, specs: Self.options, model: model)
                if let same = sets.firstIndex(where: { $0.loaded.batch == loaded.batch && $0.metric == circuit.metric && $0.ablation == circuit.ablation }) {
                    sets[same].pairsOf += " and \(label)"
                } else {
                    sets.append((label, loaded, circuit.metric, circuit.ablation))
                }
            }
        }
        let measured = try sets.map { set in
            let experiment = try Experiment(model: model, pairs: set.loaded.batch, metric: set.metric, ablation: set.ablation)
            let f = edges.map { experiment.evaluate(circuit: $0).faithfulness }
            return Measurement(pairsOf: set.pairsOf, source: set.loaded.source, pairs: set.loaded.batch.count, metric: set.metric.rawValue,
                               ablation: set.ablation.rawValue, cleanMetric: experiment.cleanMetric,
                               corruptMetric: experiment.corruptMetric, a: f[0], b: f[1])
        }
        let edgeOverlap = Overlap(names[0], names[1]), nodeOverlap = Overlap(nodes[0], nodes[1])

        if options.flag("json") {
            struct Side: Encodable { let circuit: String, method: String, selection: String, edges: Int, nodes: Int, onlyHere: [Circuit.EdgeRecord]
                enum CodingKeys: String, CodingKey { case circuit, method, selection, edges, nodes; case onlyHere = "top_only_here" }
            }
            struct Output: Encodable { let a: Side, b: Side, edges: Overlap, nodes: Overlap, faithfulness: [Measurement] }
            let sides = (0..<2).map { i in
                Side(circuit: paths[i], method: circuits[i].method, selection: circuits[i].selection, edges: circuits[i].edges.count,
                     nodes: nodes[i].count, onlyHere: Array(onlyIn[i].prefix(top)))
            }
            try printJSON(Output(a: sides[0], b: sides[1], edges: edgeOverlap, nodes: nodeOverlap, faithfulness: measured))
            return 0
        }
        for (i, label) in ["A", "B"].enumerated() {
            print("\(label)             \(paths[i]): \(circuits[i].edges.count) edges, \(nodes[i].count) nodes (\(circuits[i].method), \(circuits[i].selection))")
        }
        for (what, overlap) in [("edges", edgeOverlap), ("nodes", nodeOverlap)] {
            print(String(format: "%@         %d shared, %d only in A, %d only in B; Jaccard %.3f", what, overlap.shared, overlap.onlyA,
                         overlap.onlyB, overlap.jaccard))
        }
        for (i, label) in ["A", "B"].enumerated() where top > 0 && !onlyIn[i].isEmpty {
            print("only in \(label)     (top \(min(top, onlyIn[i].count)) by |score|)")
            for record in onlyIn[i].prefix(top) {
                print(String(format: "  %@ %+.5f", record.name.padding(toLength: 26, withPad: " ", startingAt: 0), record.score))
            }
        }
        for m in measured {
            let whose = m.pairsOf == "given" ? "the given pairs" : "\(m.pairsOf)'s pairs"
            print(String(format: "faithfulness  A %.4f, B %.4f on %@ (%@, %d pairs, %@, %@ ablation)", m.a, m.b, whose, m.source, m.pairs,
                         m.metric, m.ablation))
        }
        return 0
    }
}
