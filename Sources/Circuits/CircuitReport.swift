import Foundation
import Transformer

/// A circuit as one self-contained HTML page: its graph drawn by an inline script with clickable
/// nodes and a legend, and per node its direct logit attribution, its attention patterns on example
/// prompts and its strongest incoming and outgoing edges. Nothing is fetched from the network.
public struct CircuitReport {
    public var circuit: Circuit
    /// Per sender name, its mean direct effect on the logit difference.
    public var directEffects: [String: Double]
    /// Where the pairs behind the attention patterns and the attribution came from.
    public var source: String
    /// Per head name, one SVG of its attention pattern per example prompt.
    public var patterns: [String: [String]]
    /// An SVG token heatmap of the example pairs' input attribution, or nil.
    public var attribution: String?

    /// Creates a report.
    public init(circuit: Circuit, directEffects: [String: Double], source: String, patterns: [String: [String]], attribution: String? = nil) {
        self.circuit = circuit
        self.directEffects = directEffects
        self.source = source
        self.patterns = patterns
        self.attribution = attribution
    }

    /// Measures what the page shows on `pairs`: every sender's direct logit attribution, each of the
    /// circuit's heads' attention patterns on the first `examples` clean prompts, and those pairs'
    /// input attribution (integrated gradients of the circuit's metric, 20 steps), tokens labelled by
    /// `label` (a token id's display text).
    public init(model: TransformerModel, circuit: Circuit, pairs: PairBatch, source: String, examples: Int,
                label: (Int) -> String) throws {
        let dla = try DirectLogitAttribution(model: model, pairs: pairs)
        let heads = circuit.heads(in: model.graph)
        let prompts = Array(pairs.clean.prefix(examples))
        let computed = heads.isEmpty || prompts.isEmpty ? [] : try AttentionPatterns.compute(model: model, prompts: prompts, heads: heads)
        var patterns: [String: [String]] = [:]
        for (p, tokens) in prompts.enumerated() {
            let labels = tokens.enumerated().map { "\($0) \(label($1))" }
            for (head, pattern) in zip(heads, computed[p]) {
                patterns[head.name, default: []].append(Heatmap(attention: pattern, labels: labels, title: "\(head.name), example \(p + 1)").svg())
            }
        }
        let shown = pairs.slice(0..<min(examples, pairs.count))
        let attribution = shown.count == 0 ? nil : try InputAttribution(model: model, pairs: shown, metric: circuit.metric)
            .heatmap(pairs: Array(0..<shown.count), title: "attribution of \(circuit.metric.rawValue) to each clean token") { label(shown.clean[$0][$1]) }
        self.init(circuit: circuit, directEffects: Dictionary(uniqueKeysWithValues: zip(dla.senders.map(\.name), dla.contributions)),
                  source: "\(pairs.count) pairs of \(source)", patterns: patterns, attribution: attribution?.svg())
    }

    /// What the page's script reads: the nodes (with their drawing row), the edges and the per-node data.
    private struct Payload: Encodable {
        struct Node: Encodable {
            let name: String, kind: String, row: Int, dla: Double?, patterns: [String]
        }
        struct Edge: Encodable {
            let name: String, sender: String, receiver: String, port: String?, score: Float
        }
        let nodes: [Node]
        let edges: [Edge]
    }

    /// The page's HTML.
    public func html() throws -> String {
        let names = Set(circuit.edges.flatMap { [$0.sender, $0.receiver] })
        /// Drawing row: `input` 0, the heads of layer l at 2l + 1, `m{l}` at 2l + 2, `logits` above all.
        func row(_ name: String) -> Int {
            switch Sender(name: name) {
            case .input?: return 0
            case .head(let l, _)?: return 2 * l + 1
            case .mlp(let l)?: return 2 * l + 2
            case nil: return Int.max
            }
        }
        let sorted = names.sorted { (row($0), Sender(name: $0) ?? .input) < (row($1), Sender(name: $1) ?? .input) }
        let rows = Array(Set(sorted.map(row))).sorted()
        let nodes = sorted.map { name -> Payload.Node in
            let kind: String
            switch Sender(name: name) {
            case .head?: kind = "head"
            case .mlp?: kind = "mlp"
            default: kind = name
            }
            return Payload.Node(name: name, kind: kind, row: rows.firstIndex(of: row(name))!, dla: directEffects[name],
                                patterns: patterns[name] ?? [])
        }
        let edges = circuit.edges.map { Payload.Edge(name: $0.name, sender: $0.sender, receiver: $0.receiver, port: $0.port, score: $0.score) }
        // The default encoder writes "/" as "\/", so no "</script>" can end the data block early.
        // Sorted keys: the same circuit gives the same page, byte for byte.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = String(decoding: try encoder.encode(Payload(nodes: nodes, edges: edges)), as: UTF8.self)
        let c = circuit
        let heldOut = c.heldOut.map {
            String(format: "%.3f on %d fresh pairs (%@)", $0.faithfulness, $0.pairs, xmlEscaped($0.source))
        } ?? "not measured"
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>\(xmlEscaped("\(c.task) circuit on \(c.model)"))</title>
            <style>\(Self.style)</style></head>
            <body>
            <h1>\(xmlEscaped(c.task)) circuit</h1>
            <table class="facts">
            <tr><th>model</th><td>\(xmlEscaped(c.model))</td><th>method</th><td>\(xmlEscaped(c.method)), \(xmlEscaped(c.selection))</td></tr>
            <tr><th>metric</th><td>\(c.metric.rawValue), ablation \(c.ablation.rawValue)</td><th>edges</th><td>\(c.edges.count) of \(c.graphEdges)</td></tr>
            <tr><th>faithfulness</th><td>\(String(format: "%.3f", c.faithfulness)) on the \(c.pairs) pairs it was found on</td><th>fresh pairs</th><td>\(heldOut)</td></tr>
            <tr><th>metric values</th><td colspan="3">clean \(String(format: "%.4f", c.cleanMetric)), corrupt \(String(format: "%.4f", c.corruptMetric)), circuit \(String(format: "%.4f", c.circuitMetric)); attribution and patterns on \(xmlEscaped(source))</td></tr>
            </table>
            <div class="main"><div><svg id="graph" xmlns="http://www.w3.org/2000/svg"></svg><div id="legend"></div></div>
            <div id="details"><p>Click a node to see its direct logit attribution, attention patterns and edges.</p></div></div>
            \(attribution.map { "<h2>Input attribution</h2>\n<p>Which prompt tokens matter: integrated gradients of the metric along the path from each example pair's corrupted input embeddings to its clean ones, summed over each position's embedding (blue raises the metric, red lowers it; a position whose two tokens are the same gets 0).</p>\n<div id=\"attribution\">\($0)</div>" } ?? "")
            <script type="application/json" id="report-data">\(data)</script>
            <script>\(Self.script)</script>
            </body></html>

            """
    }

    private static let style = """
        body { font-family: Helvetica, Arial, sans-serif; margin: 16px; color: #222; }
        table.facts th { text-align: left; padding-right: 8px; color: #555; } table.facts td { padding-right: 24px; }
        .main { display: flex; gap: 24px; align-items: flex-start; }
        #details { min-width: 320px; max-width: 640px; } #details table td { padding: 1px 8px; font-family: monospace; }
        .node { cursor: pointer; } .node text { font-size: 11px; pointer-events: none; }
        .node.selected rect, .node.selected ellipse { stroke: #000; stroke-width: 3; }
        #legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
        #legend i { display: inline-block; width: 14px; height: 10px; margin-right: 4px; vertical-align: middle; }
        """

    /// Draws the graph from `report-data` (rows bottom-up, nodes spread along each row), wires the
    /// clicks to the details panel, and adds `#report-ready` with the number of nodes drawn.
    private static let script = """
        (function () {
          const data = JSON.parse(document.getElementById("report-data").textContent);
          const ns = "http://www.w3.org/2000/svg", svg = document.getElementById("graph");
          const rows = Math.max(...data.nodes.map(n => n.row)) + 1, byRow = {};
          data.nodes.forEach(n => (byRow[n.row] = byRow[n.row] || []).push(n));
          const widest = Math.max(...Object.values(byRow).map(r => r.length));
          const width = Math.max(300, widest * 80 + 40), height = rows * 70 + 20, at = {};
          svg.setAttribute("width", width); svg.setAttribute("height", height);
          Object.values(byRow).forEach(r => r.forEach((n, i) => {
            at[n.name] = { x: (i + 0.5) * width / r.length, y: height - 35 - n.row * 70 };
          }));
          const portColor = { q: "magenta", k: "forestgreen", v: "blue" };
          const color = e => e.port ? portColor[e.port] : (e.score >= 0 ? "black" : "red");
          const largest = Math.max(...data.edges.map(e => Math.abs(e.score)), 1e-30);
          const el = (tag, attrs, parent) => {
            const x = document.createElementNS(ns, tag);
            for (const k in attrs) x.setAttribute(k, attrs[k]);
            parent.appendChild(x); return x;
          };
          data.edges.forEach(e => {
            const a = at[e.sender], b = at[e.receiver];
            const line = el("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, stroke: color(e),
              "stroke-width": 0.5 + 3.5 * Math.abs(e.score) / largest, "stroke-opacity": 0.6 }, svg);
            el("title", {}, line).textContent = e.name + " " + e.score.toPrecision(4);
          });
          const fill = { head: "#cfe2ff", mlp: "#ffe0b2", input: "#e0e0e0", logits: "#e0e0e0" };
          data.nodes.forEach(n => {
            const g = el("g", { class: "node", "data-node": n.name }, svg), p = at[n.name];
            if (n.kind === "head") el("ellipse", { cx: p.x, cy: p.y, rx: 34, ry: 14, fill: fill.head, stroke: "#4a6fa5" }, g);
            else el("rect", { x: p.x - 32, y: p.y - 13, width: 64, height: 26, fill: fill[n.kind], stroke: "#777" }, g);
            el("text", { x: p.x, y: p.y + 4, "text-anchor": "middle" }, g).textContent = n.name;
            g.addEventListener("click", () => show(n, g));
          });
          document.getElementById("legend").innerHTML = [["#cfe2ff", "head"], ["#ffe0b2", "MLP"], ["#e0e0e0", "input / logits"],
            ["magenta", "→ query"], ["forestgreen", "→ key"], ["blue", "→ value"], ["black", "score ≥ 0"], ["red", "score < 0"]]
            .map(([c, t]) => `<span><i style="background:${c}"></i>${t}</span>`).join("");
          const esc = t => t.replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
          const edgeTable = (title, edges) => `<h3>${title}</h3><table>` + edges
            .sort((a, b) => Math.abs(b.score) - Math.abs(a.score)).slice(0, 8)
            .map(e => `<tr><td>${esc(e.name)}</td><td>${e.score.toPrecision(4)}</td></tr>`).join("") + "</table>";
          function show(n, g) {
            document.querySelectorAll(".node.selected").forEach(x => x.classList.remove("selected"));
            g.classList.add("selected");
            const incoming = data.edges.filter(e => e.receiver === n.name), outgoing = data.edges.filter(e => e.sender === n.name);
            document.getElementById("details").innerHTML = `<h2>${esc(n.name)}</h2>`
              + (n.dla === null || n.dla === undefined ? "" : `<p>direct logit attribution: <b>${n.dla.toFixed(4)}</b></p>`)
              + edgeTable(`incoming edges (${incoming.length})`, incoming) + edgeTable(`outgoing edges (${outgoing.length})`, outgoing)
              + (n.patterns.length ? "<h3>attention patterns</h3>" + n.patterns.join("") : "");
          }
          const ready = document.createElement("div");
          ready.id = "report-ready";
          ready.setAttribute("data-nodes", String(svg.querySelectorAll("g.node").length));
          document.body.appendChild(ready);
        })();
        """
}

extension Circuit {
    /// Every attention head that sends or receives one of the circuit's edges, in graph order.
    public func heads(in graph: CircuitGraph) -> [Sender] {
        Set(edges.flatMap { [$0.sender, $0.receiver] }.compactMap { name -> Sender? in
            guard let sender = graph.sender(named: name), case .head = sender else { return nil }
            return sender
        }).sorted()
    }
}
