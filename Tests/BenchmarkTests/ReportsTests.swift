import BenchmarkSupport
import DenseNetModels
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

/// bench-memory's reports (Sources/BenchmarkSupport/Reports.swift) written from records: the
/// expected texts are written out by hand, failed and skipped rows included.
final class ReportsTests: XCTestCase {
    /// Two measured naive rows (batch 32 and 64), a measured shared row, a failed minimal row
    /// (its reason has a comma and quotes) and a skipped checkpoint row at batch 128.
    func records() -> [BenchmarkRecord] {
        var failed = BenchmarkRecord.failed(BenchmarkConfiguration(model: "densenet-bc-40-12", strategy: .minimal, batch: 64),
                                            input: "3x32x32", reason: "child died with signal 9, \"killed\"")
        failed.threads = nil
        var skipped = BenchmarkRecord.failed(BenchmarkConfiguration(model: "densenet-bc-40-12", strategy: .checkpoint, batch: 128),
                                             input: "3x32x32", reason: "predicted peak tensor memory 2048.0 MiB exceeds --max-memory 1024.0 MiB")
        skipped.status = "skipped"
        skipped.predicted_peak_tensor_mib = 2048
        return [.measured(batch: 32, peakMinusBaseline: 256), .measured(batch: 64, peakMinusBaseline: 512.5),
                .measured(strategy: .shared, batch: 64, peakMinusBaseline: 128), failed, skipped]
    }

    func testMarkdownKeepsFailedAndSkippedRows() {
        let lines = Reports.markdown(records()).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(lines, [
            "| model | strategy | batch | input | peak−baseline MiB | peak tensor MiB | median s/step | floor s | ×floor | img/s | status |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            "| densenet-bc-40-12 | naive | 32 | 3x32x32 | 256.0 | 480.4 | 0.500 | 0.250 | 2.00 | 128.0 | ok |",
            "| densenet-bc-40-12 | naive | 64 | 3x32x32 | 512.5 | 480.4 | 0.500 | 0.250 | 2.00 | 128.0 | ok |",
            "| densenet-bc-40-12 | shared | 64 | 3x32x32 | 128.0 | 480.4 | 0.500 | 0.250 | 2.00 | 128.0 | ok |",
            "| densenet-bc-40-12 | minimal | 64 | 3x32x32 | – | – | – | – | – | – | failed: child died with signal 9, \"killed\" |",
            "| densenet-bc-40-12 | checkpoint | 128 | 3x32x32 | – | – | – | – | – | – | skipped: predicted peak tensor memory 2048.0 MiB exceeds --max-memory 1024.0 MiB |",
            "",
        ])
    }

    func testCSVQuotesReasonsAndLeavesMissingValuesEmpty() {
        let lines = Reports.csv(records()).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(lines.count, 7)
        XCTAssertEqual(lines[0], "model,strategy,batch,input,status,reason,params,baseline_rss_mib,peak_rss_mib,"
                       + "peak_minus_baseline_mib,peak_tensor_mib,predicted_peak_tensor_mib,median_step_s,min_step_s,"
                       + "images_per_s,gflop_per_step,sgemm_gflops,floor_s,jemalloc_allocated_mib,jemalloc_resident_mib,threads")
        XCTAssertEqual(lines[2], "densenet-bc-40-12,naive,64,3x32x32,ok,,176122,100.0,612.5,512.5,480.4,480.4,0.5,0.45,"
                       + "128.0,10.0,40.0,0.25,500.0,520.0,2")
        XCTAssertEqual(lines[4], "densenet-bc-40-12,minimal,64,3x32x32,failed,\"child died with signal 9, \"\"killed\"\"\""
                       + String(repeating: ",", count: 15))
        XCTAssertEqual(lines[5], "densenet-bc-40-12,checkpoint,128,3x32x32,skipped,predicted peak tensor memory 2048.0 MiB"
                       + " exceeds --max-memory 1024.0 MiB,,,,,,2048.0" + String(repeating: ",", count: 9))
        XCTAssertEqual(lines[6], "")
        // Every row has the header's 21 columns (the quoted comma is not a separator).
        for line in lines[1...5] {
            var columns = 1, quoted = false
            for ch in line { if ch == "\"" { quoted.toggle() } else if ch == ",", !quoted { columns += 1 } }
            XCTAssertEqual(columns, 21, line)
        }
    }

    func testJSONRoundTripsEveryRecord() throws {
        let data = try Reports.json(records())
        let decoded = try JSONDecoder().decode([BenchmarkRecord].self, from: data)
        XCTAssertEqual(decoded.map(\.status), ["ok", "ok", "ok", "failed", "skipped"])
        XCTAssertEqual(decoded.map(\.strategy), ["naive", "naive", "shared", "minimal", "checkpoint"])
        XCTAssertEqual(decoded[3].reason, "child died with signal 9, \"killed\"")
        XCTAssertNil(decoded[3].peak_rss_mib)
        XCTAssertEqual(decoded[4].predicted_peak_tensor_mib, 2048)
        XCTAssertEqual(decoded[1].peak_minus_baseline_mib, 512.5)
        XCTAssertEqual(decoded[1].step_times_s, [0.5, 0.45, 0.55])
        // The fields are the records' snake_case names, as the scripts read them.
        let objects = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertEqual(objects[1]["peak_minus_baseline_mib"] as? Double, 512.5)
        XCTAssertEqual(objects[4]["status"] as? String, "skipped")
    }

    /// The chart plots the measured rows only: one line per strategy that has any, a dot per
    /// row, the x axis spanning their batches (not the skipped row's 128).
    func testSVGChartPlotsTheMeasuredRows() throws {
        let svg = Reports.svgChart(records(), x: { Double($0.batch) }, xLabel: "batch", title: "Peak memory against batch")
        let elements = try SVGElements(svg)
        XCTAssertEqual(elements.count("svg"), 1)
        XCTAssertEqual(elements.count("polyline"), 2)   // naive, shared
        XCTAssertEqual(elements.count("circle"), 3)
        XCTAssertTrue(elements.texts.contains("naive"))
        XCTAssertTrue(elements.texts.contains("shared"))
        XCTAssertFalse(elements.texts.contains("minimal"))
        XCTAssertFalse(elements.texts.contains("checkpoint"))
        XCTAssertTrue(elements.texts.contains("32"))
        XCTAssertTrue(elements.texts.contains("64"))
        XCTAssertFalse(elements.texts.contains("128"))
        XCTAssertTrue(elements.texts.contains("Peak memory against batch"))
        // The naive line rises from batch 32 to 64: SVG's y grows downwards.
        let naive = try XCTUnwrap(elements.polylinePoints.first)
        XCTAssertEqual(naive.count, 2)
        XCTAssertLessThan(naive[0].x, naive[1].x)
        XCTAssertGreaterThan(naive[0].y, naive[1].y)
    }

    func testChartOfNoMeasuredRowIsStillAnImage() throws {
        let svg = Reports.svgChart(Array(records()[3...]), x: { Double($0.batch) }, xLabel: "batch", title: "t")
        let elements = try SVGElements(svg)
        XCTAssertEqual(elements.count("polyline"), 0)
        XCTAssertEqual(elements.count("svg"), 1)
    }

    func testWriteCreatesTheFourFiles() throws {
        let dir = ScratchDirectory("reports-tests")
        defer { dir.remove() }
        let records = records()
        try Reports.write(records, to: dir.url)
        XCTAssertEqual(try dir.read("results.md"), Reports.markdown(records))
        XCTAssertEqual(try dir.read("results.csv"), Reports.csv(records))
        let json = try JSONDecoder().decode([BenchmarkRecord].self, from: Data(contentsOf: dir.file("results.json")))
        XCTAssertEqual(json.map(\.status), ["ok", "ok", "ok", "failed", "skipped"])
        // One model: the chart is against batch.
        let chart = try SVGElements(try dir.read("peak-memory.svg"))
        XCTAssertTrue(chart.texts.contains("batch"))
        // Several densenet-bc-L-k models: against depth.
        let depths = [BenchmarkRecord.measured(model: "densenet-bc-40-12"), .measured(model: "densenet-bc-100-12")]
        try Reports.write(depths, to: dir.url)
        let depthChart = try SVGElements(try dir.read("peak-memory.svg"))
        XCTAssertTrue(depthChart.texts.contains("depth L"))
        XCTAssertTrue(depthChart.texts.contains("100"))
    }

    func testDepthOfModelNames() {
        XCTAssertEqual(Reports.depth(of: "densenet-bc-100-12"), 100)
        XCTAssertNil(Reports.depth(of: "densenet121"))
        XCTAssertNil(Reports.depth(of: "densenet-bc-100"))
    }
}

/// The elements and text of an SVG document, read by Foundation's XML parser (so the chart is
/// well-formed XML).
final class SVGElements: NSObject, XMLParserDelegate {
    private(set) var names: [String] = []
    private(set) var texts: [String] = []
    private(set) var polylinePoints: [[(x: Double, y: Double)]] = []
    private var text = ""

    init(_ svg: String) throws {
        super.init()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = self
        guard parser.parse() else {
            throw NSError(domain: "SVGElements", code: 1,
                          userInfo: [NSLocalizedDescriptionKey: "not well-formed: \(parser.parserError.map { "\($0)" } ?? "?")"])
        }
    }

    func count(_ name: String) -> Int { names.filter { $0 == name }.count }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        names.append(name)
        text = ""
        if name == "polyline" {
            let points = (attributes["points"] ?? "").split(separator: " ").compactMap { pair -> (x: Double, y: Double)? in
                let xy = pair.split(separator: ",").compactMap { Double($0) }
                return xy.count == 2 ? (xy[0], xy[1]) : nil
            }
            polylinePoints.append(points)
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text" { texts.append(text.trimmingCharacters(in: .whitespacesAndNewlines)) }
        text = ""
    }
}
