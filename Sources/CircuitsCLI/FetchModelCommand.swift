import Foundation
import Transformer

/// `circuits fetch-model`: downloads the default model into the cache.
enum FetchModelCommand: Subcommand {
    static let name = "fetch-model"
    static let summary = "Download the default model (\(DefaultModel.fileName)) into the cache with pip."
    static let usage = "[--force]"
    static let options = [OptionSpec(name: "force", value: nil, help: "download again even when the cached file is complete")]

    static func run(_ options: ParsedOptions) throws -> Int32 {
        guard options.positionals.isEmpty else { throw UsageError(description: "unexpected argument '\(options.positionals[0])'") }
        if DefaultModel.isCached && !options.flag("force") {
            note("already cached: \(DefaultModel.cachedURL.path)")
        } else {
            try DefaultModel.fetch(progress: note)
        }
        print(DefaultModel.cachedURL.path)
        return 0
    }
}
