import Foundation
import Tasks
import TestSupport
import Transformer
import XCTest

/// Finding, listing and loading the task specs, and the errors for broken ones.
final class TaskRegistryTests: XCTestCase {
    func testListsTheBuiltInTasksWithSummariesAndReadmes() throws {
        let registry = try TaskFixtures.registry()
        XCTAssertEqual(try registry.names(), ["greater-than", "induction", "ioi"])
        let specs = try registry.specs()
        XCTAssertEqual(specs.map(\.metric), [.probDiff, .logitDiff, .logitDiff])
        let index = try String(contentsOf: registry.directory.appendingPathComponent("README.md"), encoding: .utf8)
        for spec in specs {
            XCTAssertFalse(spec.summary.isEmpty)
            XCTAssertFalse(spec.summary.contains("\n"), "summaries are one line")
            XCTAssertFalse(spec.source.isEmpty)
            XCTAssertTrue(FileManager.default.fileExists(atPath: spec.readme.path), spec.readme.path)
            XCTAssertTrue(index.contains("](\(spec.name)/"), "Tasks/README.md links \(spec.name)")
            let task = try registry.task(named: spec.name)
            let overview = task.overview(tokenizer: nil)
            XCTAssertTrue(overview.hasPrefix("\(spec.name): \(spec.summary)\n"), overview)
            XCTAssertTrue(overview.contains("default metric: \(spec.metric.rawValue)"), overview)
            XCTAssertTrue(overview.hasSuffix(task.details(tokenizer: nil).joined(separator: "\n")), overview)
        }
    }

    func testRegistryGeneratesThroughTheTask() throws {
        let registry = try TaskFixtures.registry(), tokenizer = try TaskFixtures.gpt2()
        let dataset = try registry.generate("induction", count: 4, seed: 9, tokenizer: tokenizer)
        XCTAssertEqual(dataset.task, "induction")
        XCTAssertEqual(dataset.pairs, try registry.task(named: "induction").generate(count: 4, seed: 9, tokenizer: tokenizer).pairs)
    }

    func testUnknownTaskNamesTheKnownOnes() throws {
        XCTAssertThrowsError(try TaskFixtures.registry().task(named: "iou")) { error in
            XCTAssertEqual("\(error)", "iou: no such task; known tasks: greater-than, induction, ioi")
        }
        XCTAssertThrowsError(try TaskFixtures.registry().task(named: "../Tasks/ioi"))
    }

    func testEnvironmentVariableChoosesTheFolder() throws {
        let folder = try TaskFixtures.temporaryFolder(self)
        let registry = try TaskRegistry.located(environment: ["CIRCUITKIT_TASKS": folder.path])
        XCTAssertEqual(registry.directory.path, folder.path)
        XCTAssertEqual(try registry.names(), [])
        XCTAssertThrowsError(try TaskRegistry.located(environment: ["CIRCUITKIT_TASKS": folder.appendingPathComponent("none").path])) { error in
            XCTAssertTrue("\(error)".contains("CIRCUITKIT_TASKS does not name a folder"), "\(error)")
        }
    }

    func testACopiedExecutableFindsTheTasksFolderBesideOrAboveIt() throws {
        let fm = FileManager.default
        let root = try TaskFixtures.temporaryFolder(self)
        let bin = root.appendingPathComponent("bin"), executable = bin.appendingPathComponent("circuits")
        try fm.createDirectory(at: bin.appendingPathComponent("Tasks"), withIntermediateDirectories: true)  // empty: passed over
        try Data().write(to: executable)
        XCTAssertThrowsError(try TaskRegistry.located(environment: [:], executable: executable)) { error in
            XCTAssertTrue("\(error)".contains("set CIRCUITKIT_TASKS"), "\(error)")
        }
        try fm.copyItem(at: try TaskFixtures.registry().directory, to: root.appendingPathComponent("Tasks"))
        let found = try TaskRegistry.located(environment: [:], executable: executable)
        XCTAssertEqual(found.directory.resolvingSymlinksInPath().path, root.appendingPathComponent("Tasks").resolvingSymlinksInPath().path)
        XCTAssertEqual(try found.names(), ["greater-than", "induction", "ioi"])
        // A link to the executable (an install on PATH) leads to the folder beside the real file.
        let link = try TaskFixtures.temporaryFolder(self).appendingPathComponent("circuits")
        try fm.createSymbolicLink(at: link, withDestinationURL: executable)
        XCTAssertEqual(try TaskRegistry.located(environment: [:], executable: link).directory.resolvingSymlinksInPath().path,
                       found.directory.resolvingSymlinksInPath().path)
        // CIRCUITKIT_TASKS still wins.
        let other = try TaskFixtures.temporaryFolder(self)
        XCTAssertEqual(try TaskRegistry.located(environment: ["CIRCUITKIT_TASKS": other.path], executable: executable).directory.path,
                       other.path)
    }

    /// Copies the IOI spec into a temporary Tasks folder with `edit` applied to its JSON object.
    private func brokenIOI(_ edit: (inout [String: Any]) -> Void, folderName: String = "ioi") throws -> TaskRegistry {
        let root = try TaskFixtures.temporaryFolder(self)
        let source = try TaskFixtures.registry().directory.appendingPathComponent("ioi/task.json")
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: source)) as? [String: Any])
        edit(&object)
        let folder = root.appendingPathComponent(folderName)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: object).write(to: folder.appendingPathComponent("task.json"))
        return TaskRegistry(directory: root)
    }

    func testBrokenSpecsSayWhatAndWhere() throws {
        let cases: [(String, (inout [String: Any]) -> Void, String)] = [
            ("no {S}", { $0["templates"] = ["When {N1} and {N2} went to the {PLACE}, Bob gave a {OBJECT} to"] },
             "templates[0] must contain {S} exactly once"),
            ("unknown slot", { $0["templates"] = ["When {N1} and {N2} went to {WHERE}, {S} gave it to"] },
             "unknown placeholder {WHERE}"),
            ("no space", { $0["templates"] = ["When {N1} and {N2} went to the {PLACE},{S} gave a {OBJECT} to"] },
             "every {S} must follow a space"),
            ("order", { $0["templates"] = ["When {N2} and {N1} went to the {PLACE}, {S} gave a {OBJECT} to"] },
             "must name {N1}, then {N2}, then {S}"),
            ("duplicate", { $0["names"] = ["Mary", "John", "Mary"] }, "names[2] \"Mary\" is listed twice"),
            ("metric", { $0["metric"] = "accuracy" }, "field metric"),
            ("missing", { $0.removeValue(forKey: "objects") }, "missing field \"objects\""),
            ("corruption", { $0["corruption"] = "abb" }, "unknown corruption \"abb\""),
            ("generator", { $0["generator"] = "nope" }, "unknown generator \"nope\""),
        ]
        for (label, edit, message) in cases {
            let registry = try brokenIOI(edit)
            XCTAssertThrowsError(try registry.task(named: "ioi"), label) { error in
                XCTAssertTrue("\(error)".hasPrefix(registry.directory.appendingPathComponent("ioi/task.json").path + ": "),
                              "\(label): \(error)")
                XCTAssertTrue("\(error)".contains(message), "\(label): \(error)")
            }
        }
        let misnamed = try brokenIOI({ _ in }, folderName: "other")
        XCTAssertThrowsError(try misnamed.task(named: "other")) { error in
            XCTAssertTrue("\(error)".contains("differs from its folder name \"other\""), "\(error)")
        }
    }

    func testTooFewOneTokenNamesIsAClearError() throws {
        let tokenizer = try TaskFixtures.gpt2()
        let registry = try brokenIOI { $0["names"] = ["Mary", "John", "Zachary", "Jacqueline", "Anna"] }
        XCTAssertThrowsError(try registry.generate("ioi", count: 3, seed: 0, tokenizer: tokenizer)) { error in
            XCTAssertEqual("\(error)", "ioi: only 3 names are one token in this tokenizer; need at least 5")
        }
    }
}
