import Circuits
import Foundation
import Tasks
import Transformer

/// The program and version written into every circuit's provenance.
let toolVersion = "CircuitKit 0.1"

/// The provenance of a `discover` run: its model and pairs (with their files' SHA-256), method options,
/// metric and ablation, the tool's version and the date.
func runProvenance(_ options: ParsedOptions, method: DiscoveryMethod, loaded: LoadedPairs, metric: Metric,
                   ablation: Ablation) throws -> Provenance {
    let reference = ModelReference(options.string("model"))
    let model: String
    if case .path(let url) = reference { model = url.standardizedFileURL.path } else { model = reference.description }
    let data = options.string("data").map { URL(fileURLWithPath: $0).standardizedFileURL }
    let seed = data == nil ? try options.int("seed", default: 0, in: 0...Int.max)! : nil
    let heldOut = loaded.heldOut?.batch.count ?? 0
    let formatter = ISO8601DateFormatter()
    return Provenance(
        tool: toolVersion, date: formatter.string(from: Date()), model: model,
        modelSHA256: try Provenance.modelSHA256(at: reference.resolve(fetch: false)),
        task: data == nil ? loaded.source : nil, seed: seed, heldOutSeed: heldOut > 0 ? seed.map { $0 + 1 } : nil,
        data: data?.path, dataSHA256: try data.map { try SHA256.hex(ofFiles: [$0]) }, format: options.string("format"),
        pairs: loaded.batch.count, heldOutPairs: heldOut, method: method.name, methodOptions: methodOptions(method),
        metric: metric, ablation: ablation)
}

/// A method's options with the values this run used, under their snake_case option names.
func methodOptions(_ method: DiscoveryMethod) -> [String: Provenance.Value] {
    /// EAP and EAP-IG's options.
    func attribution(_ eap: EAPMethod) -> [String: Provenance.Value] {
        var values: [String: Provenance.Value] = ["chunk_size": .int(eap.chunkSize)]
        if let steps = eap.steps { values["steps"] = .int(steps) }
        return values
    }
    switch method {
    case let eap as EAPMethod:
        return attribution(eap)
    case let exact as ExactMethod:
        return exact.edges.map { ["patched_edges": .int($0.count)] } ?? [:]
    case let rerank as RerankMethod:
        return attribution(rerank.attribution).merging(["candidates": .int(rerank.candidates)]) { $1 }
    case let search as SearchMethod:
        return attribution(search.attribution).merging(["edges": .int(search.options.edges),
                                                        "search_steps": .int(search.options.steps)]) { $1 }
    case let acdc as ACDCMethod:
        var values: [String: Provenance.Value] = [
            "compare": .string((acdc.resume?.reference ?? acdc.reference).rawValue), "trials": .string((acdc.resume?.trials ?? acdc.trials).rawValue),
            "nodes_first": .bool(acdc.resume?.nodesFirst ?? acdc.nodesFirst), "resumed": .bool(acdc.resume != nil),
        ]
        switch (acdc.resume?.tau, acdc.threshold) {
        case (let tau?, _), (nil, .tau(let tau)): values["tau"] = .double(tau)
        case (nil, .faithfulness(let f)): values["target_faithfulness"] = .double(f)
        }
        return values
    case let prune as PruneMethod:
        let o = prune.resume?.options ?? prune.options
        var values: [String: Provenance.Value] = [
            "edges": .int(o.targetEdges), "train_steps": .int(o.steps), "learning_rate": .double(Double(o.learningRate)),
            "mask_seed": .int(Int(o.seed)), "chunk_size": .int(o.chunkSize), "resumed": .bool(prune.resume != nil),
        ]
        if let steps = prune.warmStartSteps { values["warm_start_steps"] = .int(steps) }
        if let perStep = o.pairsPerStep { values["pairs_per_step"] = .int(perStep) }
        if o.loss != .kl { values["loss"] = .string("metric") }
        return values
    default:
        return method.details.isEmpty ? [:] : ["details": .string(method.details)]
    }
}

extension ParsedOptions {
    /// These options (parsed with `specs`) with `defaults` added for each option that was not given
    /// (nil values are left out); pair options that `specs` lacks are understood too.
    func adding(_ defaults: [String: String?], specs: [OptionSpec]) throws -> ParsedOptions {
        let extra = defaults.sorted { $0.key < $1.key }.compactMap { name, value in
            string(name) == nil ? value.map { "--\(name)=\($0)" } : nil
        }
        let missing = pairOptions.filter { option in defaults[option.name] != nil && !specs.contains { $0.name == option.name } }
        return try ParsedOptions(arguments + extra, specs: specs + missing)
    }
}

/// The pairs to measure a saved circuit on: those of `--task`/`--data` when given, else the ones its
/// provenance records (data file, or task and seed, and the numbers of pairs; `-n`, `--seed` and
/// `--held-out` still apply), said on stderr with a warning when the data file changed since.
/// A record without provenance falls back to its task when that is a built-in one.
func recordedPairs(of circuit: Circuit, at path: String, options: ParsedOptions, specs: [OptionSpec],
                   model: TransformerModel) throws -> LoadedPairs {
    if options.string("task") != nil || options.string("data") != nil {
        return try loadPairs(options, model: model)
    }
    guard let provenance = circuit.provenance else {
        guard (try? TaskRegistry.located().names().contains(circuit.task)) == true else {
            throw UsageError(description: "\(path) does not record its pairs (it predates provenance) and '\(circuit.task)' is not a built-in task: give --task or --data")
        }
        return try loadPairs(options, model: model, defaultTask: circuit.task)
    }
    let recorded = try options.adding(["data": provenance.data, "format": provenance.format, "task": provenance.task,
                                       "seed": provenance.seed.map(String.init), "pairs": String(provenance.pairs),
                                       "held-out": String(provenance.heldOutPairs)], specs: specs)
    let loaded: LoadedPairs
    if let data = provenance.data {
        guard FileManager.default.fileExists(atPath: data) else {
            throw ModelFileError(data, "the circuit's pairs file \(path) records is not there; give --data (or --task)")
        }
        let hash = try SHA256.hex(ofFiles: [URL(fileURLWithPath: data)])
        if let expected = provenance.dataSHA256, expected != hash {
            note("warning: \(data) changed since the circuit was found (SHA-256 \(hash.prefix(12))…, recorded \(expected.prefix(12))…)")
        }
        loaded = try loadPairs(recorded, model: model)
        let check = provenance.dataSHA256.map { $0 == hash ? "sha256 ok" : "sha256 differs" } ?? "no sha256 recorded"
        note("using the circuit's data: \(data) (\(check)), \(loaded.batch.count) pairs")
    } else {
        loaded = try loadPairs(recorded, model: model)
        note("using the circuit's task: \(loaded.source) seed \(try recorded.int("seed", default: 0)!), \(loaded.batch.count) pairs")
    }
    return loaded
}
