import Foundation
import Transformer

/// A discovered circuit: the edges kept clean (every other edge corrupted), their scores, and how
/// well the circuit alone reproduces the behaviour. Its JSON form is what `circuits evaluate` loads.
public struct Circuit: Codable, Sendable {
    /// One kept edge.
    public struct EdgeRecord: Codable, Sendable, Equatable {
        /// Edge name, e.g. `a0.h1->a3.h2<q>`.
        public var name: String
        /// Sender node: `input`, `a0.h1`, `m0`.
        public var sender: String
        /// Receiving node: `a3.h2`, `m3` or `logits`.
        public var receiver: String
        /// `q`, `k` or `v` for attention receivers, nil otherwise.
        public var port: String?
        /// The method's score (for `logit_diff`, negative for edges that carry the behaviour).
        public var score: Float

        /// The record of `edge` with `score`.
        public init(_ edge: Edge, score: Float) {
            name = edge.name
            sender = edge.sender.name
            switch edge.receiver {
            case .head(let l, let h, let p):
                receiver = Sender.head(layer: l, head: h).name
                port = p.rawValue
            case .mlp(let l):
                receiver = Sender.mlp(layer: l).name
                port = nil
            case .logits:
                receiver = "logits"
                port = nil
            }
            self.score = score
        }
    }

    /// Model reference or name.
    public var model: String
    /// Task name or data file.
    public var task: String
    /// `exact`, `eap`, `eap-ig` or `acdc`.
    public var method: String
    public var metric: Metric
    public var ablation: Ablation
    /// Prompt pairs the circuit was found and evaluated on.
    public var pairs: Int
    /// How edges were chosen, e.g. `top 200`, `target faithfulness 0.8`, `acdc tau 0.01`.
    public var selection: String
    /// Metric with every edge clean.
    public var cleanMetric: Double
    /// Metric with every edge corrupted.
    public var corruptMetric: Double
    /// Metric with only the circuit's edges clean.
    public var circuitMetric: Double
    public var faithfulness: Double
    /// The circuit measured on fresh pairs that played no part in finding it (design §11), when there were any.
    public var heldOut: Evaluation?
    /// Edges in the model's full graph.
    public var graphEdges: Int
    /// The circuit's edges, by decreasing |score|.
    public var edges: [EdgeRecord]
    /// Where it came from; absent in records written before CircuitKit recorded it.
    public var provenance: Provenance?
    /// `node` for a circuit chosen by node scores (`discover --level node`); absent for edge circuits.
    public var level: String?
    /// A node circuit's heads and MLPs with their node scores, by decreasing |score|.
    public var nodes: [NodeRecord]?
    /// Its heads and MLPs with their edges in the circuit (`nodeSummary()`), as `discover` wrote it.
    public var nodeSummary: [NodeSummary]?

    /// A node of a node circuit and its score: the estimated change of the metric when the node's
    /// output is corrupted wherever it is read.
    public struct NodeRecord: Codable, Sendable, Equatable {
        /// `a3.h2` or `m3`.
        public var name: String
        public var score: Float

        /// The record of node `name` with `score`.
        public init(name: String, score: Float) {
            self.name = name
            self.score = score
        }
    }

    /// Creates a circuit record.
    public init(
        model: String, task: String, method: String, metric: Metric, ablation: Ablation, pairs: Int, selection: String,
        cleanMetric: Double, corruptMetric: Double, circuitMetric: Double, faithfulness: Double, heldOut: Evaluation? = nil,
        graphEdges: Int, edges: [EdgeRecord]
    ) {
        self.model = model
        self.task = task
        self.method = method
        self.metric = metric
        self.ablation = ablation
        self.pairs = pairs
        self.selection = selection
        self.cleanMetric = cleanMetric
        self.corruptMetric = corruptMetric
        self.circuitMetric = circuitMetric
        self.faithfulness = faithfulness
        self.heldOut = heldOut
        self.graphEdges = graphEdges
        self.edges = edges
    }

    enum CodingKeys: String, CodingKey {
        case model, task, method, metric, ablation, pairs, selection
        case cleanMetric = "clean_metric"
        case corruptMetric = "corrupt_metric"
        case circuitMetric = "circuit_metric"
        case faithfulness
        case heldOut = "held_out"
        case graphEdges = "graph_edges"
        case edges, provenance, level, nodes
        case nodeSummary = "node_summary"
    }

    /// A circuit measured on a set of pairs.
    public struct Evaluation: Codable, Sendable, Equatable {
        /// Where the pairs came from (`ioi seed 1`, `pairs.jsonl pairs 101–200`).
        public var source: String
        public var pairs: Int
        /// Metric with every edge clean, every edge corrupted, and only the circuit's edges clean.
        public var cleanMetric: Double
        public var corruptMetric: Double
        public var circuitMetric: Double
        public var faithfulness: Double

        /// The circuit `edges` measured on `experiment`'s pairs.
        public init(_ edges: [Int], on experiment: Experiment, source: String) {
            self.source = source
            pairs = experiment.pairs.count
            cleanMetric = experiment.cleanMetric
            corruptMetric = experiment.corruptMetric
            (circuitMetric, faithfulness) = experiment.evaluate(circuit: edges)
        }

        enum CodingKeys: String, CodingKey {
            case source, pairs
            case cleanMetric = "clean_metric"
            case corruptMetric = "corrupt_metric"
            case circuitMetric = "circuit_metric"
            case faithfulness
        }
    }

    /// Dense edge indices of this circuit in `graph`; throws on names the graph does not have.
    public func edgeIndices(in graph: CircuitGraph) throws -> [Int] {
        guard graphEdges == graph.edgeCount else {
            throw ModelInputError("circuit was found on a graph of \(graphEdges) edges; this model's graph has \(graph.edgeCount)")
        }
        return try edges.map { record in
            guard let edge = graph.edge(named: record.name), let i = graph.index(of: edge) else {
                throw ModelInputError("circuit edge \(quoted(record.name)) is not an edge of this model")
            }
            return i
        }
    }

    /// Pretty, key-sorted JSON.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Reads a circuit JSON file, with an error naming the file.
    public static func load(_ url: URL) throws -> Circuit {
        let data = try readInputFile(url, as: "circuit file")
        do {
            return try JSONDecoder().decode(Circuit.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw ModelFileError(url.path, "not a circuit: missing '\(key.stringValue)'")
        } catch {
            throw ModelFileError(url.path, "not a circuit JSON file (\(error.localizedDescription))")
        }
    }
}
