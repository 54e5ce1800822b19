import BenchmarkSupport
import DenseNetModels
import Foundation

/// A fresh directory under the system's temporary directory, removed by `remove()`.
struct ScratchDirectory {
    let url: URL

    init(_ label: String) {
        url = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("\(label)-\(getpid())-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    func read(_ name: String) throws -> String { try String(contentsOf: file(name), encoding: .utf8) }

    /// Writes an executable `/bin/sh` script and returns its URL.
    func script(_ name: String, _ body: String) throws -> URL {
        let path = file(name)
        try ("#!/bin/sh\n" + body + "\n").write(to: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path.path)
        return path
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

extension BenchmarkRecord {
    /// A measured record with round numbers in every field.
    static func measured(model: String = "densenet-bc-40-12", strategy: MemoryPolicy = .naive, batch: Int = 64,
                         peakMinusBaseline: Double = 512.5) -> BenchmarkRecord {
        let c = BenchmarkConfiguration(model: model, strategy: strategy, batch: batch, threads: 2)
        var r = BenchmarkRecord.failed(c, input: "3x32x32", reason: "replaced below")
        r.status = "ok"
        r.reason = nil
        r.params = 176_122
        r.baseline_rss_mib = 100
        r.peak_rss_mib = 100 + peakMinusBaseline
        r.peak_minus_baseline_mib = peakMinusBaseline
        r.peak_tensor_mib = 480.4
        r.predicted_peak_tensor_mib = 480.4
        r.median_step_s = 0.5
        r.min_step_s = 0.45
        r.images_per_s = 128
        r.gflop_per_step = 10
        r.sgemm_gflops = 40
        r.floor_s = 0.25
        r.jemalloc_allocated_mib = 500
        r.jemalloc_resident_mib = 520
        r.threads = 2
        r.step_times_s = [0.5, 0.45, 0.55]
        return r
    }
}
