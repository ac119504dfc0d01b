import Foundation

/// A small SVG line chart: series of (x, y) points on a log-scaled x axis.
struct LineChart {
    /// One line (or, with `markersOnly`, scattered points).
    struct Series {
        let name: String
        let color: String
        let points: [(x: Double, y: Double)]
        var markersOnly = false
    }

    let title: String
    let xLabel: String
    let yLabel: String
    let series: [Series]
    var width = 720.0
    var height = 440.0

    /// The chart as an SVG document.
    var svg: String {
        let left = 70.0, right = 170.0, top = 40.0, bottom = 55.0
        let plotW = width - left - right, plotH = height - top - bottom
        let all = series.flatMap(\.points).filter { $0.x > 0 && $0.y.isFinite }
        let xMin = log10(all.map(\.x).min() ?? 1), xMax = log10(all.map(\.x).max() ?? 10)
        let yLow = min(0, all.map(\.y).min() ?? 0), yHigh = max(1, all.map(\.y).max() ?? 1)
        func px(_ x: Double) -> Double { left + (log10(x) - xMin) / max(xMax - xMin, 1e-9) * plotW }
        func py(_ y: Double) -> Double { top + (1 - (y - yLow) / max(yHigh - yLow, 1e-9)) * plotH }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        func escape(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }

        var out = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">",
                   "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
                   "<text x=\"\(f(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(escape(title))</text>"]
        // Grid and ticks.
        var tick = pow(10, floor(xMin))
        while log10(tick) <= xMax + 1e-9 {
            for m in [1.0, 2, 5] where log10(tick * m) >= xMin - 1e-9 && log10(tick * m) <= xMax + 1e-9 {
                let x = px(tick * m)
                out.append("<line x1=\"\(f(x))\" y1=\"\(f(top))\" x2=\"\(f(x))\" y2=\"\(f(top + plotH))\" stroke=\"#e4e4e4\"/>")
                out.append("<text x=\"\(f(x))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">\(Int(tick * m))</text>")
            }
            tick *= 10
        }
        let yStep = (yHigh - yLow) > 2 ? 0.5 : 0.2
        var y = (yLow / yStep).rounded(.down) * yStep
        while y <= yHigh + 1e-9 {
            out.append("<line x1=\"\(f(left))\" y1=\"\(f(py(y)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(py(y)))\" stroke=\"\(abs(y) < 1e-9 || abs(y - 1) < 1e-9 ? "#b0b0b0" : "#e4e4e4")\"/>")
            out.append("<text x=\"\(f(left - 8))\" y=\"\(f(py(y) + 4))\" text-anchor=\"end\">\(String(format: "%.1f", y))</text>")
            y += yStep
        }
        out.append("<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#333\"/>")
        out.append("<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\">\(escape(xLabel))</text>")
        out.append("<text transform=\"translate(18 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>")
        // Series and legend.
        for (i, s) in series.enumerated() {
            let points = s.points.filter { $0.x > 0 && $0.y.isFinite }.sorted { $0.x < $1.x }
            if !s.markersOnly, points.count > 1 {
                let path = points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
                out.append("<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\"/>")
            }
            for p in points {
                out.append("<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"\(s.markersOnly ? 5 : 3)\" fill=\"\(s.color)\"><title>\(escape(s.name)): \(Int(p.x)) edges, \(String(format: "%.3f", p.y))</title></circle>")
            }
            let ly = top + 10 + Double(i) * 20
            out.append("<circle cx=\"\(f(left + plotW + 18))\" cy=\"\(f(ly))\" r=\"5\" fill=\"\(s.color)\"/>")
            out.append("<text x=\"\(f(left + plotW + 30))\" y=\"\(f(ly + 4))\">\(escape(s.name))</text>")
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }
}
