import Kernels

/// A file of named tensors that model weights are read from (GGUF or safetensors).
public protocol TensorSource {
    /// The file, for error messages.
    var path: String { get }
    /// Names of all tensors in the file, in file order.
    var tensorNames: [String] { get }
    /// Row-major shape (outermost dimension first) of the tensor `name`, or nil when absent.
    func shape(of name: String) -> [Int]?
    /// The tensor `name` converted to Float32, row-major.
    func floats(_ name: String) throws -> FloatBuffer
}

extension TensorSource {
    /// The tensor `name` as Float32, after checking it exists and has shape `expected`.
    public func tensor(_ name: String, shape expected: [Int]) throws -> FloatBuffer {
        guard let actual = shape(of: name) else {
            throw ModelFileError(path, "missing tensor '\(name)'")
        }
        guard actual == expected else {
            throw ModelFileError(path, "tensor '\(name)' has shape \(actual), expected \(expected)")
        }
        return try floats(name)
    }

    /// A model weight: `tensor(name, shape:)`, refused when it holds a NaN, an infinity or a value
    /// past ±10⁸ (no trained model has one; a corrupt file would otherwise give NaN logits without a word).
    public func weight(_ name: String, shape expected: [Int]) throws -> FloatBuffer {
        let values = try tensor(name, shape: expected)
        if let bad = firstOutside(values.pointer, values.count, magnitude: 1e8) {
            throw ModelFileError(path, "tensor '\(name)' holds \(values[bad]) at element \(bad): the weights are corrupt")
        }
        return values
    }

    /// Whether the file has a tensor called `name`.
    public func contains(_ name: String) -> Bool { shape(of: name) != nil }
}
