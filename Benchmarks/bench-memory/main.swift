import ArgumentParser
import Runtime
import BenchmarkSupport
import DenseNetModels
import Foundation

/// Peak RSS and step time of DenseNet training per memory strategy, each configuration in a
/// fresh child process.
@main
struct BenchMemory: ParsableCommand {
    /// OpenBLAS's best kernels for this CPU first (`BLASCoreSelection`), then the command line.
    static func main() {
        BLASCoreSelection.adoptBestCoreType()
        main(nil)
    }

    static let configuration = CommandConfiguration(
        commandName: "bench-memory",
        abstract: "Peak RSS and time per training step of DenseNets under each memory strategy.",
        discussion: """
        With no options: DenseNet-BC (k=12) at depths 40, 100 and 160, batch 64, 3x32x32, every strategy.
        Each (model, strategy, batch, input) runs in a fresh child process; peak RSS is its VmHWM.
        """)

    @Option(help: "A named model (densenet121, densenet-bc-100-12, d2l, ...) or 'densenet-bc' with --depths and --growth.")
    var model = "densenet-bc"

    @Option(help: "Depths L for --model densenet-bc (each 6n+4).")
    var depths = "40,100,160"

    @Option(help: "Growth rate k for --model densenet-bc.")
    var growth = 12

    @Option(help: "Batch sizes, comma-separated.")
    var batch = "64"

    @Option(help: "Input CxHxW (default: the model's).")
    var input: String?

    @Option(help: "Strategies, comma-separated: naive,checkpoint,shared,minimal (and the ablation step shared-concat).")
    var strategies = "naive,checkpoint,shared,minimal"

    @Option(help: "Measured steps per configuration.")
    var steps = 3

    @Option(help: "Warm-up steps per configuration (not measured).")
    var warmup = 1

    @Option(help: "Threads (kernels and GEMM).")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: .customLong("max-rss"),
            help: "Memory budget in MiB: configurations whose predicted peak tensor memory (MemoryPlanner, as densenet summary; the process RSS is larger) exceeds it are skipped, not run.")
    var maxRSS: Double?

    @Option(help: "Also write the JSON records here.")
    var json: String?

    @Option(help: "Also write the CSV here.")
    var csv: String?

    @Option(help: "Output folder (default: results/bench-memory-<time>).")
    var out: String?

    @Option(name: .customLong("child"), help: .hidden)
    var child: String?

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more, got \(warmup)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if let maxRSS, !(maxRSS > 0) { throw ValidationError("--max-rss takes a positive number of MiB, got \(maxRSS)") }
        _ = try parsedBatches()
        _ = try parsedStrategies()
    }

    func parsedBatches() throws -> [Int] {
        let values = batch.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--batch takes positive integers separated by commas, e.g. 32,64; got '\(batch)'")
        }
        return values.map { $0! }
    }

    func parsedStrategies() throws -> [MemoryPolicy] {
        try strategies.split(separator: ",").map { name in
            let trimmed = name.trimmingCharacters(in: .whitespaces)
            do { return try MemoryPolicy(named: trimmed) } catch { throw ValidationError("\(error)") }
        }
    }

    func models() throws -> [String] {
        guard model == "densenet-bc" else { return [model] }
        return try depths.split(separator: ",").map { d in
            guard let depth = Int(d.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--depths takes integers separated by commas, e.g. 40,100; got '\(depths)'")
            }
            return "densenet-bc-\(depth)-\(growth)"
        }
    }

    func run() throws {
        if let child {
            // Child mode: measure one configuration, print its record as the last line.
            let c = try JSONDecoder().decode(BenchmarkConfiguration.self, from: Data(child.utf8))
            let record: BenchmarkRecord
            do { record = try TrainingStepBenchmark.run(c) } catch {
                record = .failed(c, input: c.input ?? "default", reason: "\(error)")
            }
            print(String(decoding: try JSONEncoder().encode(record), as: UTF8.self))
            return
        }
        let names = try models()
        // Refuse bad names and inputs before starting any child.
        for name in names { _ = try ModelZoo.configuration(named: name, classes: nil, input: input) }
        let folder = URL(fileURLWithPath: out ?? "results/bench-memory-\(Self.timestamp())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let configurations = try names.flatMap { name in
            try parsedBatches().flatMap { b in
                try parsedStrategies().map { s in
                    BenchmarkConfiguration(model: name, strategy: s, batch: b, input: input, steps: steps,
                                           warmup: warmup, threads: threads)
                }
            }
        }
        print("bench-memory: \(configurations.count) configurations, \(steps) steps each after \(warmup) warm-up, "
              + "\(threads) threads; results in \(folder.path)")
        print(Reports.tableHeader)
        var records = [BenchmarkRecord]()
        for (i, c) in configurations.enumerated() {
            if let budget = maxRSS, let (predicted, shape) = predictedPeakMiB(c), predicted > budget {
                // Over budget: say so in the row instead of running a child that may not fit.
                var record = BenchmarkRecord.failed(c, input: shape, reason: String(
                    format: "predicted peak tensor memory %.0f MiB exceeds --max-rss %.0f MiB", predicted, budget))
                record.status = "skipped"
                record.predicted_peak_tensor_mib = predicted
                records.append(record)
                print(Reports.tableRow(record))
                try write(records, to: folder)
                continue
            }
            FileHandle.standardError.write(Data("[\(i + 1)/\(configurations.count)] \(c.model) \(c.strategy.name) batch \(c.batch)…\n".utf8))
            let record = ChildProcess.measure(c, inputLabel: input ?? "default")
            records.append(record)
            print(Reports.tableRow(record))
            try write(records, to: folder)
        }
        print("wrote \(folder.path)/{results.json,results.csv,results.md,peak-memory.svg}")
    }

    /// The planner's peak tensor MiB of one configuration's training step and its input shape
    /// (nil if it cannot plan it).
    func predictedPeakMiB(_ c: BenchmarkConfiguration) -> (Double, String)? {
        guard let configuration = try? ModelZoo.configuration(named: c.model, classes: c.classes, input: c.input),
              let plan = try? MemoryPlanner.plan(configuration, batch: c.batch, policy: c.strategy, threads: c.threads)
        else { return nil }
        return (Double(plan.peakBytes) / 1_048_576, configuration.inputShape.description)
    }

    func write(_ records: [BenchmarkRecord], to folder: URL) throws {
        let jsonData = try Reports.json(records)
        try jsonData.write(to: folder.appendingPathComponent("results.json"))
        try Reports.csv(records).write(to: folder.appendingPathComponent("results.csv"), atomically: true, encoding: .utf8)
        try Reports.markdown(records).write(to: folder.appendingPathComponent("results.md"), atomically: true, encoding: .utf8)
        let byDepth = records.contains { Reports.depth(of: $0.model) != nil } && Set(records.map(\.model)).count > 1
        let svg = byDepth
            ? Reports.svgChart(records, x: { Reports.depth(of: $0.model) }, xLabel: "depth L", title: "Peak memory against depth")
            : Reports.svgChart(records, x: { Double($0.batch) }, xLabel: "batch", title: "Peak memory against batch")
        try svg.write(to: folder.appendingPathComponent("peak-memory.svg"), atomically: true, encoding: .utf8)
        if let json { try jsonData.write(to: URL(fileURLWithPath: json)) }
        if let csv { try Reports.csv(records).write(toFile: csv, atomically: true, encoding: .utf8) }
    }

    static func timestamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        return f.string(from: Date())
    }
}
