import Circuits
import Foundation
import Synchronization
import Transformer

/// A run's output files (`NAME.json`, `NAME.dot`, `NAME.svg`), written as a set.
///
/// The files are written to a hidden staging folder inside the output folder and moved into place
/// only once all of them exist, so an interrupted run leaves the earlier set as it was. An earlier
/// set with a different circuit is not replaced silently: it is kept as `NAME.1.*` (the first free
/// number) and the run says so. SIGINT and SIGTERM remove the staging folder before the process
/// exits; a folder left by SIGKILL is removed by the next run of the same name.
struct OutputSet {
    /// The files a set consists of, in the order they are moved into place (the JSON record last).
    static let extensions = ["dot", "svg", "html", "json"]

    let directory: URL
    let name: String
    /// Seconds `dot` may take to render the SVG; 0 skips rendering.
    let renderTimeout: Double
    /// Whether the picture merges each head's q, k and v edges (`Circuit.dot(compact:)`).
    var compact = false

    /// The path of one file of the set.
    func file(_ ext: String, number: Int? = nil) -> URL {
        directory.appendingPathComponent(number.map { "\(name).\($0).\(ext)" } ?? "\(name).\(ext)")
    }

    /// Writes the circuit's JSON and DOT (and the HTML `report`, when given), renders the SVG when
    /// Graphviz is installed, and moves them into place together.
    ///
    /// Returns the files written, in their final places.
    func write(_ circuit: Circuit, report: String? = nil) throws -> [URL] {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw ModelFileError(directory.path, "cannot create output folder (\(describeFileError(error)))")
        }
        removeAbandonedStaging()
        let staging = directory.appendingPathComponent(".\(name).staging-\(getpid())")
        StagingCleanup.begin(staging)
        defer { StagingCleanup.end(staging) }
        // A rerun whose record differs from the earlier one only in its date keeps the earlier file (and date).
        let fresh = try circuit.jsonData(), earlier = FileManager.default.contents(atPath: file("json").path)
        let json = earlier.map { Circuit.sameRecord($0, fresh) } == true ? earlier! : fresh
        var staged: [String: URL] = [:]
        do {
            try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: false)
            for (ext, data) in [("json", json), ("dot", Data(circuit.dot(compact: compact).utf8))] + (report.map { [("html", Data($0.utf8))] } ?? []) {
                let url = staging.appendingPathComponent("\(name).\(ext)")
                try data.write(to: url)
                staged[ext] = url
            }
        } catch {
            throw ModelFileError(directory.path, "cannot write outputs (\(describeFileError(error)))")
        }
        StagingCleanup.exitIfSignalled()
        let svg = staging.appendingPathComponent("\(name).svg")
        if renderTimeout > 0 {
            let outcome = Graphviz.render(staged["dot"]!, to: svg, timeout: renderTimeout)
            StagingCleanup.exitIfSignalled()
            switch outcome {
            case .rendered(let warnings):
                staged["svg"] = svg
                if !warnings.isEmpty { note("graphviz warnings:\n\(warnings)") }
            case .notInstalled:
                note("Graphviz `dot` not found: install it (Debian: apt-get install graphviz) to render \(name).svg")
            case .timedOut:
                note(String(format: "warning: Graphviz did not finish drawing %d edges within %g s (--render-timeout); no %@.svg. "
                            + "Render it yourself with: dot -Tsvg %@ -o %@", circuit.edges.count, renderTimeout, name,
                            file("dot").path, file("svg").path))
            case .failed(let message):
                note("warning: Graphviz failed, no \(name).svg: \(message)")
            }
        }
        let plan = plan(staged: Self.extensions.filter { staged[$0] != nil }, json: json, earlier: earlier)
        do {
            try JSONEncoder().encode(plan).write(to: staging.appendingPathComponent(Self.planName))
            // The last point a signal stops the run at: past it the set is moved into place whole.
            StagingCleanup.exitIfSignalled()
            try commit(staging)
        } catch {
            throw ModelFileError(directory.path, "cannot move outputs into place (\(describeFileError(error)))")
        }
        if let number = plan.backup {
            note("kept the earlier, different \(name) results as \(plan.backedUp.map { file($0, number: number).lastPathComponent }.joined(separator: ", "))")
        }
        return ["json", "dot", "svg", "html"].filter { staged[$0] != nil }.map { file($0) }
    }

    /// What moving a staged set into place does, saved in the staging folder before it starts so that
    /// the next run can finish it if this one is killed halfway.
    struct Plan: Codable {
        /// The staged files, by extension.
        var staged: [String]
        /// The number `k` under which the earlier set is kept as `NAME.k.*`, when it differs.
        var backup: Int?
        /// The earlier set's files, by extension, kept under `backup`.
        var backedUp: [String]
        /// Earlier files that stay although nothing new replaces them (the SVG of an identical record).
        var kept: [String]
    }

    /// The staging file that holds the plan once every file of the set is written.
    static let planName = "plan.json"

    /// How the staged files replace the earlier set: an earlier set with a different JSON record is
    /// kept under the first free number; an identical record keeps its SVG if no new one was drawn.
    /// `earlier` is the earlier JSON record, read once before the new set was written.
    private func plan(staged: [String], json: Data, earlier: Data?) -> Plan {
        let present = Self.extensions.filter { FileManager.default.fileExists(atPath: file($0).path) }
        guard !present.isEmpty, earlier != json else {
            return Plan(staged: staged, backup: nil, backedUp: [], kept: present.filter { !staged.contains($0) })
        }
        var number = 1
        while Self.extensions.contains(where: { FileManager.default.fileExists(atPath: file($0, number: number).path) }) { number += 1 }
        return Plan(staged: staged, backup: number, backedUp: present, kept: [])
    }

    /// Carries out the plan in the staging folder: hard links keep the earlier set (it stays complete in
    /// place until replaced), then each staged file is renamed over its counterpart (the JSON record
    /// last) and earlier files without one are removed. Also finishes the commit of a killed run: each
    /// step checks what is already done.
    private func commit(_ staging: URL) throws {
        let plan = try JSONDecoder().decode(Plan.self, from: Data(contentsOf: staging.appendingPathComponent(Self.planName)))
        if let number = plan.backup {
            for ext in plan.backedUp where !FileManager.default.fileExists(atPath: file(ext, number: number).path) {
                try FileManager.default.linkItem(at: file(ext), to: file(ext, number: number))
            }
        }
        for ext in Self.extensions {
            let staged = staging.appendingPathComponent("\(name).\(ext)")
            if FileManager.default.fileExists(atPath: staged.path) {
                try replaceItem(at: file(ext), with: staged)
            } else if !plan.staged.contains(ext), !plan.kept.contains(ext), FileManager.default.fileExists(atPath: file(ext).path) {
                try FileManager.default.removeItem(at: file(ext))
            }
        }
        try FileManager.default.removeItem(at: staging)
    }

    /// Deals with staging folders of this name left by runs that were killed outright: one killed while
    /// moving its files into place is finished, the others are removed.
    private func removeAbandonedStaging() {
        let prefix = ".\(name).staging-"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] where entry.hasPrefix(prefix) {
            guard let pid = Int32(entry.dropFirst(prefix.count)), pid == getpid() || kill(pid, 0) != 0 else { continue }
            let folder = directory.appendingPathComponent(entry)
            if FileManager.default.fileExists(atPath: folder.appendingPathComponent(Self.planName).path), (try? commit(folder)) != nil {
                note("finished moving the \(name) files of an interrupted run into place")
            } else {
                try? FileManager.default.removeItem(at: folder)
            }
        }
    }
}

/// Renames `source` over `destination` in one step (rename(2)), replacing what was there.
private func replaceItem(at destination: URL, with source: URL) throws {
    guard rename(source.path, destination.path) == 0 else {
        throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: destination.path,
                                                       NSLocalizedDescriptionKey: String(cString: strerror(errno))])
    }
}

/// A file-system error in plain words: the reason without Foundation's domain and code.
func describeFileError(_ error: Error) -> String {
    let described = (error as NSError).userInfo[NSUnderlyingErrorKey].map { ($0 as! NSError).localizedDescription }
    return described ?? error.localizedDescription
}

/// Ends the process cleanly when SIGINT or SIGTERM arrives while a run writes its set of files.
///
/// A signal is delivered on whichever thread does not block it, and the thread writing the set goes on
/// meanwhile: a handler that removed the staged files itself could race with it (a file written after the
/// handler's clean-up leaves the staging folder behind; moves into place begun after the handler looked
/// leave a half-moved set). So the handler only records the signal and stops `dot`; the writing thread
/// checks between its steps (`exitIfSignalled`), removes the staging folder itself and exits as the signal
/// would, and finishes the moves into place once they have begun.
enum StagingCleanup {
    /// The signal received while a set is written, or 0.
    private static let received = Atomic<Int32>(0)
    /// The `dot` process drawing into the staging folder, or 0; the handler stops it.
    static let renderer = Atomic<Int32>(0)
    /// The staging folder of the set being written.
    nonisolated(unsafe) private static var staging: URL?

    /// Holds SIGINT and SIGTERM for the writing thread while the set is staged in `folder`.
    static func begin(_ folder: URL) {
        staging = folder
        received.store(0, ordering: .sequentiallyConsistent)
        renderer.store(0, ordering: .sequentiallyConsistent)
        for signal in [SIGINT, SIGTERM] {
            Foundation.signal(signal) { signal in
                StagingCleanup.received.store(signal, ordering: .sequentiallyConsistent)
                let dot = StagingCleanup.renderer.load(ordering: .sequentiallyConsistent)
                if dot > 0 { kill(dot, SIGKILL) }
            }
        }
    }

    /// Whether a signal has arrived while the set is written.
    static var signalled: Bool { received.load(ordering: .sequentiallyConsistent) != 0 }

    /// Between two steps of writing the set: when a signal has arrived, removes the staging folder and
    /// ends the process as the signal would.
    static func exitIfSignalled() {
        let signal = received.load(ordering: .sequentiallyConsistent)
        guard signal != 0 else { return }
        if let staging { try? FileManager.default.removeItem(at: staging) }
        Foundation.signal(signal, SIG_DFL)
        raise(signal)
        _exit(128 + signal)
    }

    /// Removes the staging folder (nothing is left in it after a commit) and stops holding the signals;
    /// one that arrived meanwhile ends the process now.
    static func end(_ folder: URL) {
        try? FileManager.default.removeItem(at: folder)
        Foundation.signal(SIGINT, SIG_DFL)
        Foundation.signal(SIGTERM, SIG_DFL)
        exitIfSignalled()
        staging = nil
    }
}

/// Renders DOT files with Graphviz's `dot` when it is installed, within a time limit.
enum Graphviz {
    enum Outcome { case rendered(warnings: String), notInstalled, timedOut, failed(String) }

    /// Runs `dot -Tsvg` (or the format of `output`'s extension) into `output.partial`, then renames it to `output`.
    ///
    /// `dot` is stopped after `timeout` seconds: its layout of a few thousand edges can take many minutes.
    static func render(_ input: URL, to output: URL, timeout: Double) -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let partial = output.appendingPathExtension("partial")
        process.arguments = ["dot", "-T\(output.pathExtension)", input.path, "-o", partial.path]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        let finished = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in finished.signal() }
        do { try process.run() } catch { return .notInstalled }
        StagingCleanup.renderer.store(process.processIdentifier, ordering: .sequentiallyConsistent)
        defer { StagingCleanup.renderer.store(0, ordering: .sequentiallyConsistent) }
        // A signal that came before the handler could know of `dot` stops it here.
        if StagingCleanup.signalled { kill(process.processIdentifier, SIGKILL) }
        // Read stderr while dot runs, so a chatty dot never blocks on a full pipe.
        let message = Messages()
        let reader = Thread { message.deliver(errors.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        if finished.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            finished.wait()
            try? FileManager.default.removeItem(at: partial)
            return .timedOut
        }
        let text = message.wait().trimmingCharacters(in: .whitespacesAndNewlines)
        if process.terminationStatus == 127 { return .notInstalled }
        guard process.terminationStatus == 0 else {
            try? FileManager.default.removeItem(at: partial)
            return .failed(text.isEmpty ? "dot exited with status \(process.terminationStatus)" : text)
        }
        do { try replaceItem(at: output, with: partial) } catch { return .failed(describeFileError(error)) }
        return .rendered(warnings: text)
    }

    /// Text a reader thread collects, handed over once it is complete.
    private final class Messages: @unchecked Sendable {
        private var data = Data()
        private let done = DispatchSemaphore(value: 0)

        /// Stores the text and wakes `wait`.
        func deliver(_ read: Data) {
            data = read
            done.signal()
        }

        /// The collected text, after the reader finished.
        func wait() -> String {
            done.wait()
            return String(decoding: data, as: UTF8.self)
        }
    }
}
