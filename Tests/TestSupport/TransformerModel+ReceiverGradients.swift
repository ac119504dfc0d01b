import Kernels
import Transformer
import XCTest

extension TransformerModel {
    /// Runs `backward` and assembles every receiver's chunks into its `[T, d]` gradient, failing the
    /// test unless each receiver's chunks cover the rows of the batch once each, in order.
    ///
    /// - Returns: the receiver gradients and the `[T, d]` input-embedding gradient
    public func receiverGradients(
        _ pass: ForwardPass, dLogits: UnsafePointer<Float>, file: StaticString = #filePath, line: UInt = #line
    ) -> (gradients: [Receiver: [Float]], dInput: FloatBuffer) {
        let rows = pass.layout.rows, d = config.dModel
        var gradients: [Receiver: [Float]] = [:]
        var nextRow: [Receiver: Int] = [:]
        let dInput = backward(pass, dLogits: dLogits) { group in
            XCTAssertEqual(group.dModel, d, file: file, line: line)
            for (i, r) in group.receivers.enumerated() {
                XCTAssertEqual(group.firstRow, nextRow[r, default: 0], "\(r.name): chunk out of order", file: file, line: line)
                nextRow[r] = group.firstRow + group.rows
                gradients[r, default: [Float](repeating: .nan, count: rows * d)].withUnsafeMutableBufferPointer {
                    ($0.baseAddress! + group.firstRow * d).update(from: group.gradient(i), count: group.rows * d)
                }
            }
        }
        for (r, next) in nextRow where next != rows {
            XCTFail("\(r.name): gradient delivered for \(next) of \(rows) rows", file: file, line: line)
        }
        return (gradients, dInput)
    }
}
