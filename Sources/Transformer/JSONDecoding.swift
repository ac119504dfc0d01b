import Foundation

/// Decodes the JSON `data` of file `path` as `T`; a failure throws a one-line `ModelFileError`
/// that names the offending key and value, after `context` (e.g. `invalid config: `).
func decodeJSON<T: Decodable>(_ type: T.Type, from data: Data, path: String, context: String = "") throws -> T {
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let error as DecodingError {
        throw ModelFileError(path, context + describe(error, decoding: T.self, from: data))
    }
}

/// A JSON decoding failure of `data` as `T`, as one line with the path of the offending value.
private func describe<T: Decodable>(_ error: DecodingError, decoding type: T.Type, from data: Data) -> String {
    func at(_ path: [CodingKey]) -> String {
        path.isEmpty ? "" : " at " + path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    }
    switch error {
    case .dataCorrupted(let context) where context.codingPath.isEmpty:
        return unfitNumber(decoding: type, from: data) ?? "invalid JSON: \(syntaxProblem(data) ?? context.debugDescription)"
    case .dataCorrupted(let context):
        return "invalid JSON\(at(context.codingPath)): \(context.debugDescription)"
    case .keyNotFound(let key, let context):
        return "missing key '\(key.stringValue)'\(at(context.codingPath))"
    case .typeMismatch(_, let context), .valueNotFound(_, let context):
        return "unexpected value\(at(context.codingPath)): \(context.debugDescription)"
    @unknown default:
        return "invalid JSON: \(error)"
    }
}

/// What JSONSerialization finds wrong with `data`, or nil when it parses.
private func syntaxProblem(_ data: Data) -> String? {
    do {
        _ = try JSONSerialization.jsonObject(with: data)
        return nil
    } catch {
        return ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String) ?? error.localizedDescription
    }
}

/// `key is value; expected an integer` for the top-level number that stops `data` decoding as `T`.
///
/// JSONDecoder reports a fraction or a number beyond 64 bits in an integer field as invalid JSON
/// without saying where; the field is the one whose removal changes the failure.
private func unfitNumber<T: Decodable>(decoding type: T.Type, from data: Data) -> String? {
    guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
    for key in object.keys.sorted() {
        guard let number = object[key] as? NSNumber, Int(exactly: number.doubleValue) == nil else { continue }
        var rest = object
        rest[key] = nil
        guard let without = try? JSONSerialization.data(withJSONObject: rest) else { continue }
        do {
            _ = try JSONDecoder().decode(T.self, from: without)
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
            continue
        } catch {}
        return "\(key) is \(number); expected an integer (a whole number below 2^63)"
    }
    return nil
}
