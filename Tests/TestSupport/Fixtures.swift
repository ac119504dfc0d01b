import Foundation
import Transformer
import XCTest

/// Locations of test fixtures, GPT-2's tokenizer files and the real model.
public enum Fixtures {
    /// The repository root (two levels above this file's folder).
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `Tests/Fixtures/<name>`.
    public static func url(_ name: String) -> URL {
        repositoryRoot.appendingPathComponent("Tests/Fixtures").appendingPathComponent(name)
    }

    /// GPT-2's byte-level BPE tokenizer, read from its original `encoder.json` and `vocab.bpe`.
    ///
    /// The files are third-party data and not part of the repository. They are looked for in
    /// `$CIRCUITKIT_GPT2_TOKENIZER` when it is set (and nowhere else), else in
    /// `../shared/data/gpt2-tokenizer` beside the checkout, else in `gpt2-tokenizer` in the
    /// CircuitKit cache, which `.ci/run` fills (`Tests/Fixtures/README.md` says how). Skips the
    /// test when they are absent, except under CI.
    public static func gpt2Tokenizer() throws -> Tokenizer {
        let files = ["encoder.json", "vocab.bpe"]
        func holdsFiles(_ folder: URL) -> Bool {
            files.allSatisfy { FileManager.default.fileExists(atPath: folder.appendingPathComponent($0).path) }
        }
        let folders: [URL]
        if let path = ProcessInfo.processInfo.environment["CIRCUITKIT_GPT2_TOKENIZER"], !path.isEmpty {
            folders = [URL(fileURLWithPath: path)]
            if !holdsFiles(folders[0]) { XCTFail("CIRCUITKIT_GPT2_TOKENIZER=\(path) lacks \(files.joined(separator: " or "))") }
        } else {
            folders = [repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/data/gpt2-tokenizer"),
                       ModelCache.directory.appendingPathComponent("gpt2-tokenizer")]
        }
        guard let folder = folders.first(where: holdsFiles) else {
            throw missing("GPT-2 tokenizer files (\(files.joined(separator: ", "))) not found in \(folders.map(\.path).joined(separator: " or ")); "
                + "set CIRCUITKIT_GPT2_TOKENIZER to a folder holding them (Tests/Fixtures/README.md says where to get them)")
        }
        return try Tokenizer(vocabJSON: folder.appendingPathComponent(files[0]), mergesTXT: folder.appendingPathComponent(files[1]))
    }

    /// The default model's GGUF file in the cache.
    ///
    /// Skips the test when the model has not been fetched, except under CI (`CI` set), where
    /// `.ci/run` fetches it first and its absence is a failure.
    public static func smolLM2() throws -> URL {
        if DefaultModel.isCached { return DefaultModel.cachedURL }
        throw missing("default model not fetched (run `circuits fetch-model`); looked at \(DefaultModel.cachedURL.path)")
    }

    /// The skip for an absent fixture that `.ci/run` provides: under CI (`CI` set) also a failure.
    private static func missing(_ message: String) -> XCTSkip {
        if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail(message) }
        return XCTSkip(message)
    }
}
