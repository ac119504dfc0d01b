import Foundation
import TestSupport
import XCTest

/// `circuits report`: the HTML page loads in headless Chromium, its script runs and draws every node.
final class ReportCLITests: CLITestCase {
    func testReportDrawsEveryNodeInHeadlessChromium() throws {
        let directory = try temporaryDirectory()
        let pairs = try tinyPairs(in: directory)
        let discover = try circuits(["discover", "--model", tinyLlama, "--data", pairs, "-n", "4", "--method", "eap", "--edges", "20",
                                     "--out", directory.path, "--name", "tiny", "--render-timeout", "0"])
        XCTAssertEqual(discover.status, 0, discover.stderr)
        let circuitURL = directory.appendingPathComponent("tiny.json")
        let report = try circuits(["report", "--circuit", circuitURL.path, "--model", tinyLlama, "--data", pairs, "-n", "4"])
        XCTAssertEqual(report.status, 0, report.stderr)
        let page = directory.appendingPathComponent("tiny.html")
        XCTAssertEqual(report.stdout.trimmingCharacters(in: .whitespacesAndNewlines), page.path)
        let html = try String(contentsOf: page, encoding: .utf8)
        let namespaces = ["http://www.w3.org/2000/svg", #"http:\/\/www.w3.org\/2000\/svg"#]  // as written in HTML and in JSON
        XCTAssertFalse(namespaces.reduce(html) { $0.replacingOccurrences(of: $1, with: "") }.contains("http"),
                       "the page refers to nothing on the network (the SVG namespace aside)")
        // The input attribution of the first three example pairs (the default --examples), drawn with their tokens.
        let attribution = try XCTUnwrap(html.range(of: #"<div id="attribution"><svg"#), "an input attribution section")
        let section = html[attribution.lowerBound...]
        XCTAssertTrue(section.contains(">pair 3<") && !section.contains(">pair 4<"), "three example pairs")
        XCTAssertTrue(section.contains("&quot; c&quot;"), "the cells show the tokens")

        let circuit = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: circuitURL)) as? [String: Any])
        let edges = try XCTUnwrap(circuit["edges"] as? [[String: Any]])
        let nodes = Set(edges.flatMap { [$0["sender"] as! String, $0["receiver"] as! String] })
        XCTAssertGreaterThan(nodes.count, 2)

        // discover --report writes the same page with its set of outputs.
        let withReport = try circuits(["discover", "--model", tinyLlama, "--data", pairs, "-n", "4", "--method", "eap", "--edges", "20",
                                       "--out", directory.path, "--name", "again", "--render-timeout", "0", "--report"])
        XCTAssertEqual(withReport.status, 0, withReport.stderr)
        XCTAssertEqual(try String(contentsOf: directory.appendingPathComponent("again.html"), encoding: .utf8), html)

        let dom = try dumpDOM(page)
        XCTAssertTrue(dom.contains(#"id="report-ready" data-nodes="\#(nodes.count)""#), "the script ran and drew \(nodes.count) nodes")
        XCTAssertTrue(dom.contains(#"<div id="attribution"><svg"#), "the attribution heatmap is in the page")
        for node in nodes { XCTAssertTrue(dom.contains(#"data-node="\#(node)""#), "node \(node) drawn") }
    }

    /// The DOM of `page` after its scripts ran, from `chromium --headless --dump-dom`; skips when
    /// Chromium is absent (fails under CI, which installs it).
    private func dumpDOM(_ page: URL) throws -> String {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
        let names = ["chromium", "chromium-browser", "google-chrome"]
        guard let browser = path.flatMap({ folder in names.map { "\(folder)/\($0)" } }).first(where: FileManager.default.isExecutableFile)
        else {
            let message = "headless Chromium is not installed (apt-get install -y chromium); the report's script is not checked"
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail(message) }
            throw XCTSkip(message)
        }
        let output = try temporaryDirectory().appendingPathComponent("dom.html")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: browser)
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.absoluteString]
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning && Date() < deadline { usleep(100_000) }
        if process.isRunning {
            process.terminate()
            XCTFail("\(browser) did not finish within 120 s")
        }
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "\(browser) --dump-dom failed")
        return try String(contentsOf: output, encoding: .utf8)
    }
}
