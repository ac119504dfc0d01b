import Foundation
import Transformer

/// What a resumable run was started on: the model, the pairs, the metric and the ablation.
///
/// Saved in ACDC and edge pruning state files, so that `--resume` with another model, task, data
/// file, metric or ablation is refused with the field that differs instead of silently mixing runs.
public struct RunIdentity: Codable, Sendable, Equatable {
    /// Model reference (path or name) and the size of its graph.
    public var model: String
    public var graphEdges: Int
    public var metric: Metric
    public var ablation: Ablation
    /// Number of pairs and a 64-bit FNV-1a hash of their tokens and answers (hex).
    public var pairs: Int
    public var pairsHash: String

    enum CodingKeys: String, CodingKey {
        case model, metric, ablation, pairs
        case graphEdges = "graph_edges"
        case pairsHash = "pairs_hash"
    }

    /// The identity of a run of `model` on `pairs`.
    public init(model: TransformerModel, pairs: PairBatch, metric: Metric, ablation: Ablation) {
        self.model = model.source
        graphEdges = model.graph.edgeCount
        self.metric = metric
        self.ablation = ablation
        self.pairs = pairs.count
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ values: [[Int]]) {
            for row in values {
                for value in row + [-1] {
                    var v = UInt64(bitPattern: Int64(value))
                    for _ in 0..<8 {
                        hash = (hash ^ (v & 0xff)) &* 0x100_0000_01b3
                        v >>= 8
                    }
                }
            }
        }
        for part in [pairs.clean, pairs.corrupt, pairs.correct, pairs.incorrect] { mix(part) }
        pairsHash = String(hash, radix: 16)
    }

    /// Refuses to resume a state saved by `saved` in this run, naming the first field that differs.
    public func checkResumable(from saved: RunIdentity, state what: String) throws {
        let fields: [(String, String, String)] = [
            ("model", saved.model, model), ("graph edges", "\(saved.graphEdges)", "\(graphEdges)"),
            ("metric", saved.metric.rawValue, metric.rawValue), ("ablation", saved.ablation.rawValue, ablation.rawValue),
            ("pairs", "\(saved.pairs)", "\(pairs)"), ("pairs (their tokens)", saved.pairsHash, pairsHash),
        ]
        if let (name, was, now) = fields.first(where: { $0.1 != $0.2 }) {
            throw ModelInputError("the \(what) state was saved by a run with \(name) \(quoted(was)), this run has \(quoted(now)): resume it with the same model, pairs, metric and ablation")
        }
    }
}
