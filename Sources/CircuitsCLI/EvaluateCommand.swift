import Circuits
import Foundation
import Tasks
import Transformer

/// `circuits evaluate`: the faithfulness of a saved circuit on a model and prompt pairs.
enum EvaluateCommand: Subcommand {
    static let name = "evaluate"
    static let summary = "Measure a saved circuit (JSON from discover): clean and corrupt baselines, the metric under the circuit, faithfulness."
    static let usage = "--circuit C.json [--model M] [--task T | --data F] [-n N] [--seed S] [--metric M] [--ablation KIND] [--json]"
    static let options = [
        OptionSpec(name: "circuit", value: "C.json", help: "circuit file written by `circuits discover`"),
        OptionSpec(name: "model", value: "M", help: "model (default: the circuit's)"),
    ] + pairOptions.map {
        switch $0.name {
        case "task": OptionSpec(name: "task", value: "T", help: "built-in task (default: the pairs the circuit records: the circuit's own task and seed, or its data file)")
        case "data": OptionSpec(name: "data", value: "F", help: "pairs file instead of the circuit's recorded pairs: .jsonl, .json (auto-circuit) or .csv (EAP-IG)")
        case "pairs": OptionSpec(name: "pairs", short: "n", value: "N", help: "number of pairs (default: as many as the circuit was found on)")
        default: $0
        }
    } + [
        OptionSpec(name: "metric", value: "NAME", help: "metric (default: the circuit's)"),
        OptionSpec(name: "ablation", value: "KIND", help: "resample, mean or zero (default: the circuit's)"),
        OptionSpec(name: "json", value: nil, help: "print JSON"),
    ]

    static func run(_ options: ParsedOptions) throws -> Int32 {
        guard options.positionals.isEmpty else { throw UsageError(description: "unexpected argument '\(options.positionals[0])'") }
        guard let path = options.string("circuit") else { throw UsageError(description: "missing --circuit") }
        let circuit = try Circuit.load(URL(fileURLWithPath: path))
        let recordedModel = circuit.provenance?.model ?? circuit.model
        let model = try loadModel(options.string("model") ?? (recordedModel == DefaultModel.name ? nil : recordedModel))
        let loaded = try recordedPairs(of: circuit, at: path, options: options, specs: Self.options, model: model)
        let metric = try metricOption(options, default: circuit.metric)
        let ablation = options.string("ablation") == nil ? circuit.ablation : try ablationOption(options)
        let experiment = try Experiment(model: model, pairs: loaded.batch, metric: metric, ablation: ablation)
        let edges = try edgeIndices(of: circuit, from: path, in: experiment.graph)
        let (value, faithfulness) = experiment.evaluate(circuit: edges)
        let fresh = try loaded.heldOut.map {
            Circuit.Evaluation(edges, on: try Experiment(model: model, pairs: $0.batch, metric: metric, ablation: ablation), source: $0.source)
        }
        if options.flag("json") {
            struct Output: Encodable {
                let circuit: String, model: String, task: String, pairs: Int, metric: String, ablation: String
                let edges: Int, clean: Double, corrupt: Double, circuitMetric: Double, faithfulness: Double
                let heldOut: Circuit.Evaluation?
                enum CodingKeys: String, CodingKey {
                    case circuit, model, task, pairs, metric, ablation, edges, clean, corrupt, faithfulness
                    case circuitMetric = "circuit_metric"
                    case heldOut = "held_out"
                }
            }
            try printJSON(Output(circuit: path, model: model.source, task: loaded.source, pairs: loaded.batch.count,
                                 metric: metric.rawValue, ablation: ablation.rawValue, edges: edges.count,
                                 clean: experiment.cleanMetric, corrupt: experiment.corruptMetric, circuitMetric: value,
                                 faithfulness: faithfulness, heldOut: fresh))
            return 0
        }
        let m = metric.rawValue
        print("circuit       \(path): \(edges.count) edges (\(circuit.method), \(circuit.selection))")
        print("evaluated on  \(loaded.source), \(loaded.batch.count) pairs, \(model.source), ablation \(ablation.rawValue)")
        print(String(format: "clean %@     %.4f", m, experiment.cleanMetric))
        print(String(format: "corrupt %@   %.4f", m, experiment.corruptMetric))
        print(String(format: "circuit %@   %.4f", m, value))
        print(String(format: "faithfulness  %.4f", faithfulness))
        if let fresh {
            print(String(format: "held out      %.4f on %d fresh pairs (%@; clean %.4f, corrupt %.4f, circuit %.4f)", fresh.faithfulness,
                         fresh.pairs, fresh.source, fresh.cleanMetric, fresh.corruptMetric, fresh.circuitMetric))
        }
        return 0
    }
}
