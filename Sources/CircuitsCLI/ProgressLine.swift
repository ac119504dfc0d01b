import Circuits
import Foundation

/// Progress and notes on standard error: on a terminal a step's lines rewrite one line in place (at
/// most ten times a second); elsewhere (logs, tests) they are plain lines, at most one per `interval`
/// seconds plus each step's final line. A step line held back is shown before the next note.
public final class ProgressLine: @unchecked Sendable {
    /// Whether output goes to a terminal.
    public let terminal: Bool
    /// Least seconds between two printed step lines when not on a terminal.
    public let interval: Double
    /// Least seconds between two redraws on a terminal.
    private let redraw = 0.1
    private let width: Int?
    private let now: () -> Date
    private let write: (String) -> Void
    private let lock = NSLock()
    /// On a terminal: whether a step line is shown and not yet ended by a newline.
    private var open = false
    /// A step line held back by the rate limit.
    private var held: String?
    private var lastPrinted: Date?

    /// A progress line writing through `write`; `width` truncates terminal lines so that they never wrap.
    public init(terminal: Bool, interval: Double = 5, width: Int? = nil, now: @escaping () -> Date = Date.init,
                write: @escaping (String) -> Void) {
        self.terminal = terminal
        self.interval = interval
        self.width = width
        self.now = now
        self.write = write
    }

    /// The one for standard error.
    static let standardError: ProgressLine = {
        let isTerminal = isatty(STDERR_FILENO) == 1
        var size = winsize()
        let columns = isTerminal && ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : nil
        return ProgressLine(terminal: isTerminal, width: columns) { FileHandle.standardError.write(Data($0.utf8)) }
    }()

    /// Shows `message`: a note as a line of its own, a step as described above.
    public func show(_ message: ProgressMessage) {
        lock.lock()
        defer { lock.unlock() }
        switch message {
        case .note(let text):
            if let held { emit(held, final: true) }
            if open { write("\n") }
            open = false
            write(text + "\n")
        case .step(let text, let final):
            if final || lastPrinted.map({ now().timeIntervalSince($0) >= (terminal ? redraw : interval) }) ?? true {
                emit(text, final: final)
            } else {
                held = text
            }
        }
    }

    /// Prints a step line: on a terminal over the one shown, ending it when `final`; else as a line.
    private func emit(_ text: String, final: Bool) {
        if terminal {
            let shown = width.map { text.count < $0 ? text : String(text.prefix($0 - 1)) } ?? text
            write("\r" + shown + "\u{1B}[K" + (final ? "\n" : ""))
            open = !final
        } else {
            write(text + "\n")
        }
        held = nil
        // After a step's final line the next step's first line is printed at once.
        lastPrinted = final ? nil : now()
    }
}

/// Shows a run's progress message on standard error.
func showProgress(_ message: ProgressMessage) { ProgressLine.standardError.show(message) }
