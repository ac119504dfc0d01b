import Foundation

/// A matrix of values drawn as a self-contained SVG heatmap: one labelled cell per value, token
/// labels on both axes, and a colour scale.
public struct Heatmap: Sendable {
    /// Title above the grid.
    public var title: String
    /// One label per row, top to bottom.
    public var rowLabels: [String]
    /// One label per column, left to right.
    public var columnLabels: [String]
    /// Caption of the vertical axis.
    public var rowAxis: String
    /// Caption of the horizontal axis.
    public var columnAxis: String
    /// `[rows, columns]` row-major values; NaN cells are left blank.
    public var values: [Double]
    /// The values mapped to the palest and the darkest colour (values outside are clamped); with
    /// `diverging`, to dark red and dark blue.
    public var range: ClosedRange<Double>
    /// `[rows, columns]` text written in each cell (a token), or nil; cells widen to fit it.
    public var cellLabels: [String]?
    /// Colours run from dark red at the bottom of the range through white at 0 to dark blue at the
    /// top (signed values); otherwise from white to dark blue.
    public var diverging: Bool

    /// Creates a heatmap; `values` (and `cellLabels`) must have `rowLabels.count × columnLabels.count` entries.
    public init(title: String, rowLabels: [String], columnLabels: [String], rowAxis: String, columnAxis: String, values: [Double],
                range: ClosedRange<Double>, cellLabels: [String]? = nil, diverging: Bool = false) {
        precondition(values.count == rowLabels.count * columnLabels.count, "a heatmap needs one value per cell")
        precondition(cellLabels.map { $0.count == values.count } ?? true, "a heatmap needs one label per cell")
        self.title = title
        self.rowLabels = rowLabels
        self.columnLabels = columnLabels
        self.rowAxis = rowAxis
        self.columnAxis = columnAxis
        self.values = values
        self.range = range
        self.cellLabels = cellLabels
        self.diverging = diverging
    }

    /// An `[n, n]` attention pattern (rows: query positions, columns: key positions, both labelled by
    /// `labels`) on a scale from 0 to 1.
    public init(attention pattern: [Float], labels: [String], title: String) {
        self.init(title: title, rowLabels: labels, columnLabels: labels, rowAxis: "query position", columnAxis: "key position",
                  values: pattern.map(Double.init), range: 0...1)
    }

    /// The heatmap as an SVG document; each cell's tooltip gives its row, column and value.
    public func svg() -> String {
        let cell = 22.0, font = 11.0
        let labelWidth = { (labels: [String]) in 12 + 6.5 * Double(labels.map(\.count).max() ?? 0) }
        let cellWidth = max(cell, labelWidth(cellLabels ?? []) - 4)
        let left = labelWidth(rowLabels) + 20, top = 40.0
        let gridWidth = cellWidth * Double(columnLabels.count), gridHeight = cell * Double(rowLabels.count)
        let bottom = top + gridHeight + labelWidth(columnLabels) + 24
        let legendX = left + gridWidth + 24, width = max(legendX + 90, 20 + 8 * Double(title.count))
        let height = max(bottom, top + 200)
        var out = [
            #"<svg xmlns="http://www.w3.org/2000/svg" width="\#(Int(width))" height="\#(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="\#(font)">"#,
            #"<rect width="100%" height="100%" fill="white"/>"#,
            #"<text x="10" y="20" font-size="14" font-weight="bold">\#(xmlEscaped(title))</text>"#,
        ]
        for (i, label) in rowLabels.enumerated() {
            let y = top + cell * (Double(i) + 0.5) + font / 3
            out.append(#"<text x="\#(left - 6)" y="\#(y)" text-anchor="end">\#(xmlEscaped(label))</text>"#)
        }
        for (j, label) in columnLabels.enumerated() {
            let x = left + cellWidth * (Double(j) + 0.5) + font / 3, y = top + gridHeight + 6
            out.append(#"<text transform="translate(\#(x),\#(y)) rotate(-90)" text-anchor="end">\#(xmlEscaped(label))</text>"#)
        }
        for (i, row) in rowLabels.enumerated() {
            for (j, column) in columnLabels.enumerated() {
                let value = values[i * columnLabels.count + j]
                guard !value.isNaN else { continue }
                let label = cellLabels?[i * columnLabels.count + j]
                let tip = xmlEscaped("\(row) × \(column)\(label.map { " \($0)" } ?? ""): \(String(format: "%.4f", value))")
                let x = left + cellWidth * Double(j), y = top + cell * Double(i)
                out.append(#"<rect x="\#(x)" y="\#(y)" width="\#(cellWidth)" height="\#(cell)" fill="\#(color(value))" stroke="rgb(238,238,238)"><title>\#(tip)</title></rect>"#)
                if let label {
                    let ink = intensity(value) > 0.6 ? "white" : "black"
                    out.append(#"<text x="\#(x + cellWidth / 2)" y="\#(y + cell / 2 + font / 3)" text-anchor="middle" fill="\#(ink)" pointer-events="none">\#(xmlEscaped(label))</text>"#)
                }
            }
        }
        out.append(#"<text x="\#(left + gridWidth / 2)" y="\#(bottom - 6)" text-anchor="middle">\#(xmlEscaped(columnAxis))</text>"#)
        out.append(#"<text transform="translate(14,\#(top + gridHeight / 2)) rotate(-90)" text-anchor="middle">\#(xmlEscaped(rowAxis))</text>"#)
        // The colour scale: a column of swatches from the top of the range down to its bottom.
        let steps = 20, swatch = 160.0 / Double(steps)
        for k in 0..<steps {
            let value = range.upperBound - (range.upperBound - range.lowerBound) * (Double(k) + 0.5) / Double(steps)
            out.append(#"<rect x="\#(legendX)" y="\#(top + swatch * Double(k))" width="16" height="\#(swatch + 0.5)" fill="\#(color(value))"/>"#)
        }
        out.append(#"<rect x="\#(legendX)" y="\#(top)" width="16" height="160" fill="none" stroke="gray"/>"#)
        for (value, y) in [(range.upperBound, top), (range.lowerBound, top + 160)] {
            out.append(#"<text x="\#(legendX + 22)" y="\#(y + font / 3)">\#(String(format: "%.3g", value))</text>"#)
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }

    /// How far `value` is from white, in [0, 1]: its place in the range, or with `diverging` its
    /// distance from 0 relative to the range's end on its side.
    private func intensity(_ value: Double) -> Double {
        let end = value < 0 ? range.lowerBound : range.upperBound
        let t = diverging ? (end != 0 ? value / end : 0) : (range.upperBound > range.lowerBound
            ? (value - range.lowerBound) / (range.upperBound - range.lowerBound) : 0)
        return min(1, max(0, t))
    }

    /// The fill for `value`: from white to dark blue (with `diverging`, to dark red below 0).
    private func color(_ value: Double) -> String {
        let t = intensity(value)
        let dark = diverging && value < 0 ? (103.0, 0.0, 13.0) : (8.0, 48.0, 107.0)
        let (r, g, b) = (255 - t * (255 - dark.0), 255 - t * (255 - dark.1), 255 - t * (255 - dark.2))
        return String(format: "#%02x%02x%02x", Int(r.rounded()), Int(g.rounded()), Int(b.rounded()))
    }
}

/// `text` with `&`, `<`, `>`, `"` and `'` escaped for XML and HTML.
public func xmlEscaped(_ text: String) -> String {
    var out = ""
    for ch in text {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(ch)
        }
    }
    return out
}
