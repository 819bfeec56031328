import Foundation

/// A line chart as hand-written SVG text: axes, ticks, one polyline per series, and vertical
/// dashed markers (kills) labelled at the top. No dependency.
struct SVGChart {
    struct Series {
        var name: String
        var color: String
        /// (x, y) points in data units.
        var points: [(Double, Double)]
    }

    struct Marker {
        var x: Double
        var label: String
        var color: String
    }

    var title: String
    var xLabel: String
    var yLabel: String
    var series: [Series]
    var markers: [Marker] = []
    var width = 900.0
    var height = 380.0

    private let left = 70.0
    private let right = 20.0
    private let top = 78.0
    private let bottom = 50.0

    func render() -> String {
        let allX = series.flatMap { $0.points.map(\.0) } + markers.map(\.x)
        let xMax = max(1, (allX.max() ?? 1).rounded(.up))
        let yMaxData = series.flatMap { $0.points.map(\.1) }.max() ?? 1
        let yStep = Self.niceStep(max(1, yMaxData) / 5)
        let yMax = max(yStep, (yMaxData / yStep).rounded(.up) * yStep)
        let plotW = width - left - right
        let plotH = height - top - bottom
        func px(_ x: Double) -> Double { left + x / xMax * plotW }
        func py(_ y: Double) -> Double { top + plotH - y / yMax * plotH }

        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(f(width / 2))" y="18" text-anchor="middle" font-size="14" font-weight="bold">\(escape(title))</text>

            """
        // Grid and y ticks.
        var y = 0.0
        while y <= yMax + yStep / 2 {
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(py(y)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(py(y)))\" stroke=\"#e5e5e5\"/>\n"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(py(y) + 4))\" text-anchor=\"end\">\(Self.compact(y))</text>\n"
            y += yStep
        }
        // x ticks every second (or every 2, 5 s on long runs).
        let xStep = xMax <= 20 ? 1.0 : xMax <= 40 ? 2.0 : 5.0
        var x = 0.0
        while x <= xMax + 1e-9 {
            svg += "<line x1=\"\(f(px(x)))\" y1=\"\(f(top + plotH))\" x2=\"\(f(px(x)))\" y2=\"\(f(top + plotH + 5))\" stroke=\"black\"/>\n"
            svg += "<text x=\"\(f(px(x)))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">\(Self.compact(x))</text>\n"
            x += xStep
        }
        // Axes and their labels.
        svg += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotH))\" stroke=\"black\"/>\n"
        svg += "<line x1=\"\(f(left))\" y1=\"\(f(top + plotH))\" x2=\"\(f(left + plotW))\" y2=\"\(f(top + plotH))\" stroke=\"black\"/>\n"
        svg += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 10))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        svg += "<text x=\"16\" y=\"\(f(top + plotH / 2))\" text-anchor=\"middle\" "
            + "transform=\"rotate(-90 16 \(f(top + plotH / 2)))\">\(escape(yLabel))</text>\n"
        // Markers, labels staggered so that close ones do not overlap.
        for (index, marker) in markers.enumerated() {
            let mx = px(marker.x)
            svg += "<line x1=\"\(f(mx))\" y1=\"\(f(top))\" x2=\"\(f(mx))\" y2=\"\(f(top + plotH))\" stroke=\"\(marker.color)\" "
                + "stroke-width=\"1.5\" stroke-dasharray=\"5,4\"/>\n"
            let ly = top - 6 - Double(index % 3) * 14
            svg += "<text x=\"\(f(mx + 3))\" y=\"\(f(ly))\" fill=\"\(marker.color)\">\(escape(marker.label))</text>\n"
        }
        // Series.
        for item in series {
            let points = item.points.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(item.color)\" stroke-width=\"1.6\" points=\"\(points)\"/>\n"
        }
        // Legend, top right inside the plot.
        for (index, item) in series.enumerated() {
            let ly = top + 14 + Double(index) * 16
            let lx = left + plotW - 170
            svg += "<line x1=\"\(f(lx))\" y1=\"\(f(ly - 4))\" x2=\"\(f(lx + 24))\" y2=\"\(f(ly - 4))\" stroke=\"\(item.color)\" stroke-width=\"3\"/>\n"
            svg += "<text x=\"\(f(lx + 30))\" y=\"\(f(ly))\">\(escape(item.name))</text>\n"
        }
        svg += "</svg>\n"
        return svg
    }

    private func f(_ value: Double) -> String { String(format: "%.1f", value) }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        let power = pow(10, floor(log10(raw)))
        for factor in [1.0, 2.0, 5.0, 10.0] where factor * power >= raw { return factor * power }
        return 10 * power
    }

    static func compact(_ value: Double) -> String {
        if value >= 1_000 && value.truncatingRemainder(dividingBy: 1_000) == 0 { return "\(Int(value / 1_000))k" }
        if value >= 1_000 { return String(format: "%.1fk", value / 1_000) }
        return value == value.rounded() ? "\(Int(value))" : String(format: "%.1f", value)
    }
}
