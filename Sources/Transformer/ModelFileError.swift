import Foundation

/// A problem with a model file or model reference, named by the file it concerns.
///
/// The description is one line, `path: problem`, so the CLI can print it as is: characters that
/// would break the line or the terminal are escaped.
public struct ModelFileError: Error, CustomStringConvertible, Equatable {
    /// The file or model reference at fault.
    public let path: String
    /// What is wrong with it.
    public let problem: String

    /// Creates an error for `path`.
    public init(_ path: String, _ problem: String) {
        self.path = escapingUnprintable(path)
        self.problem = escapingUnprintable(problem)
    }

    /// The error for a field of `path` whose value is unusable: `field is value; expected …`.
    static func badField(_ path: String, _ field: String, _ value: some CustomStringConvertible, expected: String) -> ModelFileError {
        ModelFileError(path, "\(field) is \(quoted(value.description, quote: "")); expected \(expected)")
    }

    public var description: String { "\(path): \(problem)" }
}

/// Longest excerpt of a file's text an error message shows.
private let excerptLength = 60

/// `text` from a file as an error message shows it: in quotes, unprintable characters escaped,
/// cut to 60 characters with its full length noted, so a corrupt string cannot flood the message.
public func quoted(_ text: String, quote: String = "'") -> String {
    let escaped = escapingUnprintable(text)
    guard escaped.count > excerptLength else { return quote + escaped + quote }
    return quote + escaped.prefix(excerptLength) + "…" + quote + " (\(text.utf8.count) bytes)"
}

/// `text` with control, format, private-use, unassigned and line-breaking characters written as `\u{XX}`.
private func escapingUnprintable(_ text: String) -> String {
    func unprintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator: return true
        default: return false
        }
    }
    guard text.unicodeScalars.contains(where: unprintable) else { return text }
    var result = ""
    for scalar in text.unicodeScalars {
        if unprintable(scalar) {
            result += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
        } else {
            result.unicodeScalars.append(scalar)
        }
    }
    return result
}
