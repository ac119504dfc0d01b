import Circuits
import Foundation
import TestSupport
import Transformer
import XCTest

/// Every edge's score in files other programs read (`--scores-out`), SHA-256, and provenance records.
final class ScoresFileTests: XCTestCase {
    let graph = CircuitGraph(layers: 2, heads: 2)

    /// Scores with a fractional part, one per edge.
    private var scores: [Float] { (0..<graph.edgeCount).map { Float($0) * 0.25 - 3 } }

    private func contents(_ format: EdgeScoresFile.Format) -> Data {
        EdgeScoresFile.contents(scores, graph: graph, dModel: 8, circuit: [0, 3], format: format)
    }

    /// The header dict and the data of a NumPy 1.0 file, checked for the format's fixed parts.
    private func parseNPY(_ data: Data) throws -> (header: String, body: Data) {
        let bytes = [UInt8](data)
        XCTAssertEqual(Array(bytes.prefix(8)), [0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = Int(bytes[8]) | Int(bytes[9]) << 8
        XCTAssertEqual((10 + length) % 64, 0, "the data starts on a 64-byte boundary")
        let header = try XCTUnwrap(String(bytes: bytes[10..<10 + length], encoding: .ascii))
        XCTAssertTrue(header.hasSuffix("\n"))
        return (header, data.subdata(in: 10 + length..<data.count))
    }

    func testNPYHoldsTheScoresAsFloat32InEdgeOrder() throws {
        let (header, body) = try parseNPY(contents(.npy))
        XCTAssertTrue(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (\(graph.edgeCount),), }"), header)
        let read = (0..<graph.edgeCount).map { i in
            Float(bitPattern: body.subdata(in: 4 * i..<4 * i + 4).withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) })
        }
        XCTAssertEqual(read, scores)
    }

    func testNPZIsAStoredZipOfScoresAndEdgeNames() throws {
        XCTAssertEqual(EdgeScoresFile.crc32(Data("123456789".utf8)), 0xCBF4_3926)
        let zip = [UInt8](contents(.npz))
        /// A little-endian integer of `count` bytes at `offset`.
        func integer(_ offset: Int, _ count: Int) -> Int { (0..<count).reduce(0) { $0 | Int(zip[offset + $1]) << (8 * $1) } }
        var offset = 0
        var entries: [String: Data] = [:]
        while integer(offset, 4) == 0x0403_4b50 {
            XCTAssertEqual(integer(offset + 8, 2), 0, "stored, not compressed")
            let size = integer(offset + 18, 4), nameLength = integer(offset + 26, 2), extra = integer(offset + 28, 2)
            let name = String(decoding: zip[offset + 30..<offset + 30 + nameLength], as: UTF8.self)
            let start = offset + 30 + nameLength + extra
            let data = Data(zip[start..<start + size])
            XCTAssertEqual(UInt32(integer(offset + 14, 4)), EdgeScoresFile.crc32(data), name)
            entries[name] = data
            offset = start + size
        }
        XCTAssertEqual(integer(zip.count - 22, 4), 0x0605_4b50, "end of central directory")
        XCTAssertEqual(integer(zip.count - 6, 4), offset, "the central directory follows the entries")
        XCTAssertEqual(Set(entries.keys), ["scores.npy", "edges.npy"])
        XCTAssertEqual(entries["scores.npy"], contents(.npy))
        let width = (0..<graph.edgeCount).map { graph.edge($0).name.count }.max()!
        let (header, body) = try parseNPY(try XCTUnwrap(entries["edges.npy"]))
        XCTAssertTrue(header.hasPrefix("{'descr': '<U\(width)', 'fortran_order': False, 'shape': (\(graph.edgeCount),), }"), header)
        let third = body.subdata(in: 2 * 4 * width..<3 * 4 * width).withUnsafeBytes { Array($0.bindMemory(to: UInt32.self)) }
        XCTAssertEqual(String(String.UnicodeScalarView(third.filter { $0 != 0 }.compactMap(Unicode.Scalar.init))), graph.edge(2).name)
    }

    func testCSVAndJSONListEveryEdge() throws {
        let lines = String(decoding: contents(.csv), as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(lines.first, "edge,sender,receiver,port,score")
        XCTAssertEqual(lines.count, graph.edgeCount + 1)
        XCTAssertEqual(lines[1], "input->a0.h0<q>,input,a0.h0,q,-3.0")
        XCTAssertTrue(lines.contains("m1->logits,m1,logits,,\(scores[graph.edgeCount - 1])"))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: contents(.json)) as? [String: Any])
        let edges = try XCTUnwrap(json["edges"] as? [String: [String: Any]])
        XCTAssertEqual(edges.count, graph.edgeCount)
        XCTAssertEqual(edges[graph.edge(3).name]?["in_graph"] as? Bool, true)
        XCTAssertEqual(edges[graph.edge(1).name]?["score"] as? Double, Double(scores[1]))
    }

    /// numpy itself reads the .npy and .npz files, when python3 with numpy is installed.
    func testNumPyLoadsTheFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scores-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for format in [EdgeScoresFile.Format.npy, .npz] {
            try EdgeScoresFile.write(scores, graph: graph, dModel: 8, circuit: [], to: directory.appendingPathComponent("s.\(format.rawValue)"))
        }
        XCTAssertThrowsError(try EdgeScoresFile.write(scores, graph: graph, dModel: 8, circuit: [], to: directory.appendingPathComponent("s.txt")))
        let script = """
            import numpy as np, sys
            a = np.load(sys.argv[1] + '/s.npy'); z = np.load(sys.argv[1] + '/s.npz')
            assert a.dtype == np.float32 and (a == z['scores']).all()
            print(len(a), float(a[5]), z['edges'][5])
            """
        /// Runs python3 with `arguments`: its exit status and standard output (nil when python3 is missing).
        func python(_ arguments: [String]) throws -> (status: Int32, output: String)? {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3"] + arguments
            let output = Pipe()
            process.standardOutput = output
            do { try process.run() } catch { return nil }
            let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, printed)
        }
        guard try python(["-c", "import numpy"])?.status == 0 else { throw XCTSkip("python3 with numpy is not installed") }
        let run = try XCTUnwrap(try python(["-c", script, directory.path]))
        XCTAssertEqual(run.status, 0)
        XCTAssertEqual(run.output, "\(graph.edgeCount) \(scores[5]) \(graph.edge(5).name)\n")
    }

    func testSHA256MatchesTheStandardVectors() throws {
        XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let message = Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        XCTAssertEqual(SHA256.hex(message), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // A million 'a's, fed in uneven pieces across block boundaries.
        var hash = SHA256()
        var fed = 0
        for piece in [1, 63, 64, 65, 1000, 7] + Array(repeating: 99_980, count: 10) where fed < 1_000_000 {
            let count = min(piece, 1_000_000 - fed)
            hash.update(Data(repeating: UInt8(ascii: "a"), count: count))
            fed += count
        }
        XCTAssertEqual(fed, 1_000_000)
        XCTAssertEqual(hash.finish(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testRecordsThatDifferOnlyInTheirDateAreTheSame() throws {
        var circuit = Circuit(model: "tiny", task: "ioi", method: "eap", metric: .logitDiff, ablation: .resample, pairs: 3, selection: "top 1",
                              cleanMetric: 1, corruptMetric: 0, circuitMetric: 0.5, faithfulness: 0.5, graphEdges: graph.edgeCount,
                              edges: [Circuit.EdgeRecord(graph.edge(0), score: -1)])
        circuit.provenance = Provenance(
            tool: "CircuitKit", date: "2025-01-01T00:00:00Z", model: "tiny", modelSHA256: nil, task: "ioi", seed: 0, heldOutSeed: 1,
            data: nil, dataSHA256: nil, format: nil, pairs: 3, heldOutPairs: 3, method: "eap-ig",
            methodOptions: ["steps": .int(5), "tau": .double(0.5), "compare": .string("clean"), "resumed": .bool(false)],
            metric: .logitDiff, ablation: .resample)
        let first = try circuit.jsonData()
        circuit.provenance!.date = "2025-06-01T12:00:00Z"
        XCTAssertTrue(Circuit.sameRecord(first, try circuit.jsonData()))
        circuit.provenance!.seed = 2
        XCTAssertFalse(Circuit.sameRecord(first, try circuit.jsonData()))
        let decoded = try JSONDecoder().decode(Circuit.self, from: first)
        XCTAssertEqual(decoded.provenance?.methodOptions, ["steps": .int(5), "tau": .double(0.5), "compare": .string("clean"), "resumed": .bool(false)])
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: first) as? [String: Any])
        let provenance = try XCTUnwrap(object["provenance"] as? [String: Any])
        XCTAssertEqual(provenance["held_out_seed"] as? Int, 1)
        XCTAssertNotNil(provenance["method_options"] as? [String: Any])
    }
}
