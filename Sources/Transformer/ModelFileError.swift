/// A problem with a model file or model reference, named by the file it concerns.
///
/// The description is one line, `path: problem`, so the CLI can print it as is.
public struct ModelFileError: Error, CustomStringConvertible, Equatable {
    /// The file or model reference at fault.
    public let path: String
    /// What is wrong with it.
    public let problem: String

    /// Creates an error for `path`.
    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(path): \(problem)" }
}
