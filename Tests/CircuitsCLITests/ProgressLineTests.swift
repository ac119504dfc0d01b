import Circuits
import CircuitsCLI
import Foundation
import XCTest

/// `ProgressLine` off a terminal (logs, tests) and on one, with a clock the test moves by hand.
final class ProgressLineTests: XCTestCase {
    /// A progress line writing into `written`, at the time `clock` says.
    private final class Capture {
        var written = ""
        var clock = Date(timeIntervalSince1970: 0)

        func line(terminal: Bool, width: Int? = nil) -> ProgressLine {
            ProgressLine(terminal: terminal, interval: 5, width: width, now: { self.clock }) { self.written += $0 }
        }
    }

    func testPlainLinesAreRateLimitedAndTheFinalOneAlwaysShows() {
        let capture = Capture()
        let line = capture.line(terminal: false)
        line.show(.step("1/100", final: false))  // a step's first line shows at once
        for i in 2...50 {
            capture.clock += 0.1
            line.show(.step("\(i)/100", final: false))
        }
        XCTAssertEqual(capture.written, "1/100\n", "49 lines within 5 s are held back")
        capture.clock += 0.1  // 5.0 s after the first line
        line.show(.step("51/100", final: false))
        capture.clock += 1
        line.show(.step("52/100", final: false))
        line.show(.step("100/100", final: true))
        XCTAssertEqual(capture.written, "1/100\n51/100\n100/100\n")
        // The next step starts afresh: its first line shows at once.
        line.show(.step("next 1/3", final: false))
        XCTAssertEqual(capture.written, "1/100\n51/100\n100/100\nnext 1/3\n")
    }

    func testANoteFirstPrintsTheStepLineHeldBack() {
        let capture = Capture()
        let line = capture.line(terminal: false)
        line.show(.step("search 1/25", final: false))
        capture.clock += 1
        line.show(.step("search 2/25", final: false))
        line.show(.note("stopped early"))
        XCTAssertEqual(capture.written, "search 1/25\nsearch 2/25\nstopped early\n")
        line.show(.note("again"))
        XCTAssertEqual(capture.written, "search 1/25\nsearch 2/25\nstopped early\nagain\n", "a step line is printed once")
    }

    func testOnATerminalStepsRewriteOneLineInPlace() {
        let capture = Capture()
        let line = capture.line(terminal: true, width: 12)
        line.show(.step("1/4 edges", final: false))
        capture.clock += 0.2
        line.show(.step("2/4 edges, about 1 s left", final: false))
        XCTAssertEqual(capture.written, "\r1/4 edges\u{1B}[K" + "\r2/4 edges, \u{1B}[K", "cut to the width less one column")
        line.show(.step("3/4 edges", final: false))  // within 0.1 s of the last redraw: held back
        line.show(.note("a warning"))
        line.show(.step("4/4 edges", final: true))
        XCTAssertEqual(capture.written, "\r1/4 edges\u{1B}[K" + "\r2/4 edges, \u{1B}[K" + "\r3/4 edges\u{1B}[K\n" + "a warning\n"
                       + "\r4/4 edges\u{1B}[K\n", "a note shows the latest step line and ends it first")
    }
}
