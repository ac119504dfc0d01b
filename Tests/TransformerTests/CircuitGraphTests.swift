import Transformer
import XCTest

/// The graph's numbering and names (design §3).
final class CircuitGraphTests: XCTestCase {
    func testEdgeCountsMatchDesign() {
        XCTAssertEqual(CircuitGraph(layers: 12, heads: 12).edgeCount, 32_491)  // GPT-2 small
        XCTAssertEqual(CircuitGraph(layers: 30, heads: 9).edgeCount, 123_211)  // SmolLM2-135M
    }

    /// Every sender, receiver and edge name parses back to itself, and every index round-trips.
    func testNamesAndIndicesRoundTrip() {
        for layout in [BlockLayout.sequential, .parallel] {
            let g = CircuitGraph(layers: 3, heads: 2, blockLayout: layout)
            for (i, s) in g.senders.enumerated() {
                XCTAssertEqual(g.sender(named: s.name), s)
                XCTAssertEqual(g.index(of: s), i, s.name)
            }
            for (i, r) in g.receivers.enumerated() {
                XCTAssertEqual(g.receiver(named: r.name), r)
                XCTAssertEqual(g.index(of: r), i, r.name)
            }
            for e in 0..<g.edgeCount {
                let edge = g.edge(e)
                XCTAssertEqual(g.index(of: edge), e, edge.name)
                XCTAssertEqual(g.edge(named: edge.name), edge)
                XCTAssertEqual(g.receivers[g.receiver(ofEdge: e)], edge.receiver)
                // Every edge runs forward in topological order.
                XCTAssertLessThan(g.index(of: edge.sender), edge.receiver.node.map { g.index(of: $0) } ?? g.senders.count, edge.name)
            }
        }
    }

    /// In parallel blocks the MLP reads the stream beside its layer's attention, not after it.
    func testParallelBlocksDropTheMLPsHeadEdges() {
        let sequential = CircuitGraph(layers: 3, heads: 2), parallel = CircuitGraph(layers: 3, heads: 2, blockLayout: .parallel)
        XCTAssertEqual(sequential.edgeCount - parallel.edgeCount, 3 * 2)
        XCTAssertNotNil(sequential.edge(named: "a1.h0->m1"))
        XCTAssertNil(parallel.edge(named: "a1.h0->m1"))
        XCTAssertNotNil(parallel.edge(named: "a0.h1->m1"))
        XCTAssertEqual(parallel.upstreamCount(receiverAt: parallel.index(of: Receiver.mlp(layer: 1))), parallel.firstSender(ofLayer: 1))
    }

    /// Names that are not nodes of the model, or not nodes at all, are refused.
    func testMalformedAndForeignNamesAreRefused() {
        let g = CircuitGraph(layers: 2, heads: 2)
        for bad in ["", "a", "a1", "a1.h", "a.h1", "a1.h1.h2", "a-1.h0", "m", "m-1", "mx", "a1.h1<x>", "a1.h1<q", "logit", "input<q>"] {
            XCTAssertNil(g.sender(named: bad), bad)
            XCTAssertNil(g.receiver(named: bad), bad)
            XCTAssertNil(g.edge(named: "input->" + bad), bad)
        }
        XCTAssertNil(g.sender(named: "a2.h0"), "layer 2 does not exist")
        XCTAssertNil(g.sender(named: "a0.h2"), "head 2 does not exist")
        XCTAssertNil(g.edge(named: "a1.h0->a0.h0<q>"), "edges run forward only")
        XCTAssertNil(g.edge(named: "m1->m1"), "an MLP does not read itself")
        XCTAssertNil(g.edge(named: "a1.h0->a1.h1<q>"), "same-layer head into head")
        XCTAssertNil(g.edge(named: "a9.h0->logits"))
        XCTAssertEqual(g.edge(named: "a0.h1->a1.h0<k>"), Edge(.head(layer: 0, head: 1), .head(layer: 1, head: 0, port: .k)))
    }
}
