import Foundation

/// The loss and accuracy curves of a run as a self-contained SVG: on the left the training
/// loss of every step (faint) and its moving average, with the test loss at each epoch's end;
/// on the right the moving-average training accuracy and the test accuracy. The x axis is the
/// optimizer step, with a faint line at each epoch's end.
public enum CurvePlot {
    struct Series {
        var label: String
        var color: String
        var points: [(x: Double, y: Double)]
        var width: Double = 1.5
        var opacity: Double = 1
        var markers = false
    }

    /// Exponential moving average with bias correction (as TensorBoard's smoothing).
    public static func smoothed(_ values: [Double], weight: Double) -> [Double] {
        var out = [Double]()
        var average = 0.0
        for (i, v) in values.enumerated() {
            average = weight * average + (1 - weight) * v
            out.append(average / (1 - pow(weight, Double(i + 1))))
        }
        return out
    }

    public static func svg(_ records: [MetricRecord], title: String) -> String {
        let train = records.filter { $0.phase == .train }
        let test = records.filter { $0.phase == .test }
        let steps = train.map { Double($0.step) }
        let weight = train.count < 40 ? 0.0 : min(0.95, 1 - 20 / Double(train.count))
        let lossAverage = smoothed(train.map(\.loss), weight: weight)
        let accuracyAverage = smoothed(train.map(\.accuracy), weight: weight)
        let maxStep = max(1, (records.map(\.step).max() ?? 1))
        let epochEnds = records.filter { $0.phase == .trainEpoch }.map { Double($0.step) }

        let lossSeries = [
            Series(label: "train loss (step)", color: "#1f77b4", points: zip(steps, train.map(\.loss)).map { ($0, $1) },
                   width: 0.8, opacity: 0.35),
            Series(label: "train loss (smoothed)", color: "#1f77b4", points: zip(steps, lossAverage).map { ($0, $1) }),
            Series(label: "test loss", color: "#d62728", points: test.map { (Double($0.step), $0.loss) }, markers: true),
        ]
        let accuracySeries = [
            Series(label: "train accuracy (smoothed)", color: "#1f77b4", points: zip(steps, accuracyAverage).map { ($0, $1) }),
            Series(label: "test accuracy", color: "#d62728", points: test.map { (Double($0.step), $0.accuracy) }, markers: true),
        ]
        let lossMax = max(0.1, (train.map(\.loss) + test.map(\.loss)).filter(\.isFinite).max() ?? 1) * 1.05
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="960" height="400" viewBox="0 0 960 400" font-family="sans-serif" font-size="11">
        <rect width="960" height="400" fill="white"/>
        <text x="480" y="20" text-anchor="middle" font-size="14">\(escape(title))</text>

        """
        out += panel(x: 60, y: 40, width: 400, height: 300, title: "loss", yMax: lossMax, xMax: Double(maxStep),
                     series: lossSeries, epochEnds: epochEnds, percent: false, legendAtBottom: false)
        out += panel(x: 540, y: 40, width: 400, height: 300, title: "accuracy", yMax: 1, xMax: Double(maxStep),
                     series: accuracySeries, epochEnds: epochEnds, percent: true, legendAtBottom: true)
        out += "</svg>\n"
        return out
    }

    static func panel(x: Double, y: Double, width: Double, height: Double, title: String, yMax: Double, xMax: Double,
                      series: [Series], epochEnds: [Double], percent: Bool, legendAtBottom: Bool) -> String {
        // The legend goes in the corner the curves leave free: top right for a falling loss,
        // bottom right for a rising accuracy.
        func px(_ v: Double) -> Double { x + width * v / xMax }
        func py(_ v: Double) -> Double { y + height * (1 - min(max(v / yMax, 0), 1)) }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var s = "<g>\n<text x=\"\(f(x + width / 2))\" y=\"\(f(y - 6))\" text-anchor=\"middle\" font-size=\"12\">\(title)</text>\n"
        s += "<rect x=\"\(f(x))\" y=\"\(f(y))\" width=\"\(f(width))\" height=\"\(f(height))\" fill=\"none\" stroke=\"#444\"/>\n"
        for i in 0...5 {
            let v = yMax * Double(i) / 5
            let label = percent ? String(format: "%.0f%%", 100 * v) : String(format: "%.2f", v)
            s += "<line x1=\"\(f(x))\" y1=\"\(f(py(v)))\" x2=\"\(f(x + width))\" y2=\"\(f(py(v)))\" stroke=\"#eee\"/>\n"
            s += "<text x=\"\(f(x - 4))\" y=\"\(f(py(v) + 4))\" text-anchor=\"end\">\(label)</text>\n"
        }
        for (i, end) in epochEnds.enumerated() {
            s += "<line x1=\"\(f(px(end)))\" y1=\"\(f(y))\" x2=\"\(f(px(end)))\" y2=\"\(f(y + height))\" stroke=\"#ccc\" stroke-dasharray=\"3,3\"/>\n"
            if epochEnds.count <= 20 {
                s += "<text x=\"\(f(px(end)))\" y=\"\(f(y + height + 14))\" text-anchor=\"middle\">e\(i + 1)</text>\n"
            }
        }
        s += "<text x=\"\(f(x + width / 2))\" y=\"\(f(y + height + 30))\" text-anchor=\"middle\">step (0–\(Int(xMax)))</text>\n"
        for (i, line) in series.enumerated() where !line.points.isEmpty {
            let stride = max(1, line.points.count / 2000)
            let kept = Swift.stride(from: 0, to: line.points.count, by: stride).map { line.points[$0] }
                .filter { $0.y.isFinite }
            let coordinates = kept.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"\(line.width)\" stroke-opacity=\"\(line.opacity)\" points=\"\(coordinates)\"/>\n"
            if line.markers {
                for p in kept { s += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3\" fill=\"\(line.color)\"/>\n" }
            }
            let ly = legendAtBottom ? y + height - 8 - Double(series.count - 1 - i) * 14 : y + 14 + Double(i) * 14
            let lx = x + width - 160
            s += "<line x1=\"\(f(lx))\" y1=\"\(f(ly - 4))\" x2=\"\(f(lx + 20))\" y2=\"\(f(ly - 4))\" stroke=\"\(line.color)\" stroke-width=\"2\" stroke-opacity=\"\(max(line.opacity, 0.5))\"/>\n"
            s += "<text x=\"\(f(lx + 24))\" y=\"\(f(ly))\">\(escape(line.label))</text>\n"
        }
        return s + "</g>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
