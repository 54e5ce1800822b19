import Foundation

/// bench-memory's outputs: a Markdown table, CSV, JSON and an SVG chart of peak memory.
public enum Reports {
    static func f(_ x: Double?, _ digits: Int = 1) -> String {
        guard let x else { return "–" }
        return String(format: "%.\(digits)f", x)
    }

    public static let tableHeader =
        "| model | strategy | batch | input | peak−baseline MiB | peak tensor MiB | median s/step | floor s | ×floor | img/s | status |\n" +
        "|---|---|---|---|---|---|---|---|---|---|---|"

    public static func tableRow(_ r: BenchmarkRecord) -> String {
        let ratio = (r.median_step_s != nil && r.floor_s != nil && r.floor_s! > 0) ? r.median_step_s! / r.floor_s! : nil
        let batch = (r.ranks ?? 1) > 1 ? "\(r.batch) (\(r.ranks!) ranks)" : "\(r.batch)"
        return "| \(r.model) | \(r.strategy) | \(batch) | \(r.input) | \(f(r.peak_minus_baseline_mib)) | "
            + "\(f(r.peak_tensor_mib)) | \(f(r.median_step_s, 3)) | \(f(r.floor_s, 3)) | \(f(ratio, 2)) | "
            + "\(f(r.images_per_s)) | \(r.status == "ok" ? "ok" : "\(r.status): \(r.reason ?? "")") |"
    }

    /// A record's profile (`bench-memory --profile`): seconds per step by operation class, their
    /// share of the step, the part of them outside parallel regions (serial: what more threads
    /// cannot shorten), the threads' idle time inside them (waiting, per thread), the regions with
    /// fewer parts than threads (narrow), the time on as many dedicated cores (estimated: serial
    /// time, each region as its longest part), calls and page faults per step; then the
    /// unattributed rest, the serial share, the waiting and the step on dedicated cores; nil
    /// without a profile.
    public static func profileTable(_ r: BenchmarkRecord) -> String? {
        guard let entries = r.profile, let step = r.median_step_s, step > 0 else { return nil }
        let total = (r.step_times_s ?? [step]).reduce(0, +) / Double(max(r.step_times_s?.count ?? 1, 1))
        let threads = Double(max(r.threads ?? 1, 1))
        var lines = ["profile of \(r.model) \(r.strategy) batch \(r.batch), \(r.threads ?? 1) threads "
                     + String(format: "(mean step %.3f s)", total),
                     "| operation | s/step | share | serial s/step | waiting s/step | narrow regions/step "
                        + "| s/step on \(r.threads ?? 1) cores (est.) | calls/step | page faults/step |",
                     "|---|---|---|---|---|---|---|---|---|"]
        for e in entries.sorted(by: { $0.seconds > $1.seconds }) where e.calls > 0 {
            let waiting = e.idleThreadSeconds.map { $0 / threads }
            lines.append("| \(e.operation) | \(f(e.seconds, 4)) | \(f(100 * e.seconds / total))% | "
                         + "\(f(e.parallelSeconds == nil ? nil : e.serialSeconds, 4)) | \(f(waiting, 4)) | "
                         + "\(e.narrowRegions.map(String.init) ?? "–") | \(f(e.dedicatedSeconds, 4)) | \(e.calls) | \(e.pageFaults) |")
        }
        if let rest = r.profile_unattributed_s {
            let faults = r.profile_unattributed_page_faults.map(String.init) ?? "–"
            lines.append("| (unattributed: autograd, glue) | \(f(rest, 4)) | \(f(100 * rest / total))% | "
                         + "\(f(r.profile_unattributed_serial_s, 4)) | \(f(r.profile_unattributed_waiting_s, 4)) | – | "
                         + "\(f(r.profile_unattributed_dedicated_s, 4)) | – | \(faults) |")
        }
        lines.append("serial share of the step (outside parallel regions): \(f(r.serial_share.map { 100 * $0 }))%; "
                     + "waiting (idle threads in parallel regions, within the classes above): \(f(r.waiting_s, 4)) s/step; "
                     + "parallel regions: \(r.parallel_regions.map(String.init) ?? "–")/step")
        if let dedicated = r.dedicated_step_s {
            lines.append("step on \(r.threads ?? 1) dedicated cores, estimated (serial time, each parallel region as long as "
                         + "its longest part's CPU time; memory bandwidth not in it): \(f(dedicated, 3)) s "
                         + "(×\(f(dedicated / total, 2)) of the mean step measured)")
        }
        return lines.joined(separator: "\n")
    }

    public static func markdown(_ records: [BenchmarkRecord]) -> String {
        ([tableHeader] + records.map(tableRow)).joined(separator: "\n") + "\n"
    }

    static let csvColumns = ["model", "strategy", "batch", "input", "status", "reason", "params", "baseline_rss_mib",
                             "peak_rss_mib", "peak_minus_baseline_mib", "peak_tensor_mib", "predicted_peak_tensor_mib",
                             "median_step_s", "min_step_s", "images_per_s", "gflop_per_step", "sgemm_gflops", "floor_s",
                             "jemalloc_allocated_mib", "jemalloc_resident_mib", "threads"]

    public static func csv(_ records: [BenchmarkRecord]) -> String {
        func cell(_ v: Any?) -> String {
            guard let v else { return "" }
            let s = "\(v)"
            return s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        var lines = [csvColumns.joined(separator: ",")]
        for r in records {
            let values: [Any?] = [r.model, r.strategy, r.batch, r.input, r.status, r.reason, r.params, r.baseline_rss_mib,
                                  r.peak_rss_mib, r.peak_minus_baseline_mib, r.peak_tensor_mib, r.predicted_peak_tensor_mib,
                                  r.median_step_s, r.min_step_s, r.images_per_s, r.gflop_per_step, r.sgemm_gflops,
                                  r.floor_s, r.jemalloc_allocated_mib, r.jemalloc_resident_mib, r.threads]
            lines.append(values.map(cell).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public static func json(_ records: [BenchmarkRecord]) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(records)
    }

    /// Peak RSS − baseline against a numeric x (depth or batch), one line per strategy.
    public static func svgChart(_ records: [BenchmarkRecord], x: (BenchmarkRecord) -> Double?, xLabel: String,
                                title: String) -> String {
        let ok = records.filter { $0.status == "ok" && $0.peak_minus_baseline_mib != nil && x($0) != nil }
        let (w, h, left, bottom, top, right) = (640.0, 400.0, 70.0, 50.0, 40.0, 140.0)
        let xs = ok.compactMap(x), ys = ok.compactMap { $0.peak_minus_baseline_mib }
        let (x0, x1) = (xs.min() ?? 0, max(xs.max() ?? 1, (xs.min() ?? 0) + 1))
        let y1 = max(ys.max() ?? 1, 1) * 1.1
        func px(_ v: Double) -> Double { left + (v - x0) / (x1 - x0) * (w - left - right) }
        func py(_ v: Double) -> Double { h - bottom - v / y1 * (h - bottom - top) }
        let colors = ["naive": "#d62728", "checkpoint": "#ff7f0e", "shared": "#1f77b4", "minimal": "#2ca02c"]
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(w / 2 - 60)" y="20" font-size="14">\(title)</text>
        <line x1="\(left)" y1="\(h - bottom)" x2="\(w - right)" y2="\(h - bottom)" stroke="black"/>
        <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(h - bottom)" stroke="black"/>
        <text x="\(w / 2 - 40)" y="\(h - 12)">\(xLabel)</text>
        <text x="14" y="\(h / 2 + 40)" transform="rotate(-90 14 \(h / 2 + 40))">peak RSS − baseline (MiB)</text>

        """
        for i in 0...4 {
            let v = y1 * Double(i) / 4
            svg += "<text x=\"\(left - 8)\" y=\"\(py(v) + 4)\" text-anchor=\"end\">\(Int(v))</text>\n"
            svg += "<line x1=\"\(left)\" y1=\"\(py(v))\" x2=\"\(w - right)\" y2=\"\(py(v))\" stroke=\"#ddd\"/>\n"
        }
        for v in Set(xs).sorted() {
            svg += "<text x=\"\(px(v))\" y=\"\(h - bottom + 16)\" text-anchor=\"middle\">\(Int(v))</text>\n"
        }
        let strategies = ["naive", "checkpoint", "shared", "minimal"].filter { s in ok.contains { $0.strategy == s } }
        for (i, s) in strategies.enumerated() {
            let points = ok.filter { $0.strategy == s }.compactMap { r in x(r).map { ($0, r.peak_minus_baseline_mib!) } }
                .sorted { $0.0 < $1.0 }
            let color = colors[s] ?? "black"
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\""
                + points.map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " ") + "\"/>\n"
            for p in points { svg += "<circle cx=\"\(px(p.0))\" cy=\"\(py(p.1))\" r=\"3\" fill=\"\(color)\"/>\n" }
            svg += "<text x=\"\(w - right + 10)\" y=\"\(top + 20 + Double(i) * 18)\" fill=\"\(color)\">\(s)</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// Writes `results.json`, `results.csv`, `results.md` and `peak-memory.svg` of `records` into
    /// `folder` (bench-memory rewrites them after each configuration). The chart's x axis is the
    /// depth when the records span several `densenet-bc-L-k` models, else the batch.
    public static func write(_ records: [BenchmarkRecord], to folder: URL) throws {
        try json(records).write(to: folder.appendingPathComponent("results.json"))
        try csv(records).write(to: folder.appendingPathComponent("results.csv"), atomically: true, encoding: .utf8)
        try markdown(records).write(to: folder.appendingPathComponent("results.md"), atomically: true, encoding: .utf8)
        let byDepth = records.contains { depth(of: $0.model) != nil } && Set(records.map(\.model)).count > 1
        let svg = byDepth
            ? svgChart(records, x: { depth(of: $0.model) }, xLabel: "depth L", title: "Peak memory against depth")
            : svgChart(records, x: { Double($0.batch) }, xLabel: "batch", title: "Peak memory against batch")
        try svg.write(to: folder.appendingPathComponent("peak-memory.svg"), atomically: true, encoding: .utf8)
    }

    /// L from a `densenet-bc-L-k` name.
    public static func depth(of model: String) -> Double? {
        let parts = model.split(separator: "-")
        guard parts.count == 4, parts[0] == "densenet", parts[1] == "bc" else { return nil }
        return Double(parts[2])
    }
}
