import Foundation
import Transformer

/// MIB's circuit-track submission forms, in EAP-IG's graph JSON: either one file of importance scores
/// for every edge, or one circuit per edge budget (0.1 % … 50 % of the edges) with a membership flag
/// for every node and edge.
///
/// The JSON is `{"cfg": {"n_layers", "n_heads", "parallel_attn_mlp", "d_model"}, "nodes": {name:
/// {"in_graph"}}, "edges": {name: {"score", "in_graph"}}}` with EAP-IG's node and edge names, which
/// are ours (`a3.h2`, `a0.h1->a3.h2<q>`). Scores keep our sign convention, which is EAP-IG's: the
/// estimated change of the metric when the edge is corrupted.
public enum MIBSubmission {
    /// Budgets of the one-circuit-per-budget form, as fractions of the graph's edges.
    public static let circuitBudgets = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]

    /// The graph JSON of `graph` with `scores` (omitted when nil) and the edges of `circuit` marked in the graph.
    public static func graphJSON(_ graph: CircuitGraph, dModel: Int, scores: [Float]?, circuit: some Sequence<Int>) -> Data {
        let kept = Set(circuit)
        var nodes = Set<String>()
        for e in kept {
            let edge = graph.edge(e)
            nodes.insert(edge.sender.name)
            nodes.insert(edge.receiver.node?.name ?? "logits")
        }
        var out = "{\"cfg\": {\"n_layers\": \(graph.layers), \"n_heads\": \(graph.heads), "
            + "\"parallel_attn_mlp\": \(graph.blockLayout == .parallel), \"d_model\": \(dModel)}, \"nodes\": {"
        out += (graph.senders.map(\.name) + ["logits"]).map { "\"\($0)\": {\"in_graph\": \(nodes.contains($0))}" }.joined(separator: ", ")
        out += "}, \"edges\": {"
        out.reserveCapacity(out.utf8.count + graph.edgeCount * 64)
        for e in 0..<graph.edgeCount {
            if e > 0 { out += ", " }
            out += "\"\(graph.edge(e).name)\": {"
            if let scores { out += "\"score\": \(scores[e].isFinite ? "\(scores[e])" : "0"), " }
            out += "\"in_graph\": \(kept.contains(e))}"
        }
        out += "}}\n"
        return Data(out.utf8)
    }

    /// Writes both forms for `scores` under `directory`: `scores/<name>.json` (every edge's score,
    /// `circuit` marked) and `circuits/<name>-<k>pct.json` (the pruned top ⌊k·E⌋ edges by |score|,
    /// or by score when `signed` is false, for each budget k).
    ///
    /// - Returns: the files written
    public static func write(scores: [Float], signed: Bool, circuit: [Int], graph: CircuitGraph, dModel: Int, name: String,
                             to directory: URL) throws -> [URL] {
        guard scores.count == graph.edgeCount else {
            throw ModelInputError("\(scores.count) scores for a graph of \(graph.edgeCount) edges")
        }
        let scoreDirectory = directory.appendingPathComponent("scores"), circuitDirectory = directory.appendingPathComponent("circuits")
        for folder in [scoreDirectory, circuitDirectory] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        let scoreFile = scoreDirectory.appendingPathComponent("\(name).json")
        try graphJSON(graph, dModel: dModel, scores: scores, circuit: circuit).write(to: scoreFile, options: .atomic)
        var written = [scoreFile]
        let ranked = signed ? Selection.ranked(scores) : scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        for budget in circuitBudgets {
            let chosen = graph.pruned(ranked.prefix(Int(budget * Double(graph.edgeCount))))
            let file = circuitDirectory.appendingPathComponent("\(name)-\(String(format: "%g", 100 * budget))pct.json")
            try graphJSON(graph, dModel: dModel, scores: nil, circuit: chosen).write(to: file, options: .atomic)
            written.append(file)
        }
        return written
    }
}
