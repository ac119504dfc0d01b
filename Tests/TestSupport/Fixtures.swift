import Foundation
import Transformer
import XCTest

/// Locations of test fixtures, the shared data folder and the real model.
public enum Fixtures {
    /// The repository root (two levels above this file's folder).
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `Tests/Fixtures/<name>`.
    public static func url(_ name: String) -> URL {
        repositoryRoot.appendingPathComponent("Tests/Fixtures").appendingPathComponent(name)
    }

    /// `../shared/data/<name>` beside the checkout, or a skip when that folder is absent.
    public static func sharedData(_ name: String) throws -> URL {
        let url = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/data").appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("shared data \(url.path) is absent")
        }
        return url
    }

    /// The default model's GGUF file in the cache.
    ///
    /// Skips the test when the model has not been fetched, except under CI (`CI` set), where
    /// `.ci/run` fetches it first and its absence is a failure.
    public static func smolLM2() throws -> URL {
        if DefaultModel.isCached { return DefaultModel.cachedURL }
        let message = "default model not fetched (run `circuits fetch-model`); looked at \(DefaultModel.cachedURL.path)"
        if ProcessInfo.processInfo.environment["CI"] != nil {
            XCTFail(message)
            throw XCTSkip(message)
        }
        throw XCTSkip(message)
    }
}
