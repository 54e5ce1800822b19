import ArgumentParser
import BenchmarkSupport
import CommandLineOptions
import DataParallel
import DenseNetModels
import Foundation
import Runtime

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
        With no options: DenseNet-BC (k=12) at depths 40, 100 and 160 (--model densenet-bc, the \
        default, with --depths and --growth), batch 64, 3x32x32, every strategy, SGD with momentum. \
        Each (model, strategy, batch, input) runs in a fresh child process; peak RSS is its VmHWM. \
        Every record also carries the planner's predicted peak of tensor memory \
        (predicted_peak_tensor_mib, as densenet summary); with --max-memory SIZE, the \
        configurations predicted above it are skipped (a row saying so), not run. --input takes \
        any size (3x1024x1024, 3x512x384); Scripts/ablation_resolution.py sweeps resolutions.

        The reports go to --out (default results/bench-memory-TIME): results.json, results.csv, \
        results.md and peak-memory.svg; --json also prints the records on standard output (the \
        table then goes to standard error).
        """)

    @OptionGroup var modelOptions: ModelInputOptions

    @Option(help: "Depths L for --model densenet-bc (each 6n+4).")
    var depths = "40,100,160"

    @Option(help: "Growth rate k for --model densenet-bc.")
    var growth = 12

    @Option(help: "Batch sizes, comma-separated.")
    var batch = "64"

    @OptionGroup var strategyOptions: StrategyListOptions

    @Option(help: "Measured steps per configuration.")
    var steps = 3

    @Option(help: "Warm-up steps per configuration (not measured).")
    var warmup = 1

    @OptionGroup var threadsOptions: ThreadsOptions

    @Option(help: "Data-parallel ranks: each configuration runs under `mpirun -np N` with --batch as the global batch (default 1).")
    var ranks = 1

    @OptionGroup var budget: MemoryBudgetOptions

    @OptionGroup var output: OutputFolderOptions

    @OptionGroup var jsonOutput: JSONOutputOptions

    @Option(name: .customLong("child"), help: .hidden)
    var child: String?

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more, got \(warmup)") }
        guard ranks >= 1 else { throw ValidationError("--ranks must be at least 1, got \(ranks)") }
        _ = try parsedBatches()
    }

    func parsedBatches() throws -> [Int] {
        let values = batch.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--batch takes positive integers separated by commas, e.g. 32,64; got '\(batch)'")
        }
        return values.map { $0! }
    }

    func models() throws -> [String] {
        let model = modelOptions.model ?? "densenet-bc"
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
            if c.rankCount > 1 {
                // One rank of `mpirun -np N`: an error ends this rank non-zero, and mpirun the job
                // (the parent reports it); rank 0 prints the record.
                return try Communicator.withWorld { communicator in
                    if let record = try TrainingStepBenchmark.runRank(c, communicator: communicator) {
                        print(String(decoding: try JSONEncoder().encode(record), as: UTF8.self))
                    }
                }
            }
            let record: BenchmarkRecord
            do { record = try TrainingStepBenchmark.run(c) } catch {
                record = .failed(c, input: c.input ?? "default", reason: "\(error)")
            }
            print(String(decoding: try JSONEncoder().encode(record), as: UTF8.self))
            return
        }
        let names = try models()
        // Refuse bad names, inputs and poolings before starting any child.
        for name in names {
            let model = try modelOptions.configuration(named: name)
            for b in try parsedBatches() { try MemoryPrediction.checkSizes(model, batch: b) }
        }
        let pooling = try modelOptions.parsedTransitionPooling()
        let folder = URL(fileURLWithPath: output.folder { "results/bench-memory-\(Self.timestamp())" })
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let threads = threadsOptions.threads
        let configurations = try names.flatMap { name in
            try parsedBatches().flatMap { b in
                try strategyOptions.parsed().map { s in
                    BenchmarkConfiguration(model: name, strategy: s, batch: b, input: modelOptions.input,
                                           classes: modelOptions.classes, transitionPooling: pooling, steps: steps,
                                           warmup: warmup, threads: threads, ranks: ranks > 1 ? ranks : nil)
                }
            }
        }
        // With --json, standard output holds the JSON alone.
        let table: (String) -> Void = jsonOutput.json
            ? { FileHandle.standardError.write(Data(($0 + "\n").utf8)) } : { print($0) }
        table("bench-memory: \(configurations.count) configurations, \(steps) steps each after \(warmup) warm-up, "
              + "\(threads) threads\(ranks > 1 ? " per rank, \(ranks) ranks" : ""); results in \(folder.path)")
        table(Reports.tableHeader)
        var records = [BenchmarkRecord]()
        for (i, c) in configurations.enumerated() {
            // Over several ranks, for a rank's largest slice.
            let predicted = try? MemoryPrediction.plan(try c.modelConfiguration(), batch: (c.batch + ranks - 1) / ranks,
                                                       strategy: c.strategy, threads: c.threads).peakBytes
            var record: BenchmarkRecord
            if let predicted, !budget.admits(predicted), let limit = budget.maxMemory {
                // Over budget: say so in the row instead of running a child that may not fit.
                let shape = (try? c.modelConfiguration().inputShape.description) ?? (c.input ?? "default")
                record = .failed(c, input: shape, reason: String(
                    format: "predicted peak tensor memory %.1f MiB exceeds --max-memory %.1f MiB",
                    Double(predicted) / 1_048_576, Double(limit) / 1_048_576))
                record.status = "skipped"
            } else {
                FileHandle.standardError.write(Data("[\(i + 1)/\(configurations.count)] \(c.model) \(c.strategy.name) batch \(c.batch)…\n".utf8))
                record = ChildProcess.measure(c, inputLabel: modelOptions.input ?? "default")
            }
            record.predicted_peak_tensor_mib = predicted.map { Double($0) / 1_048_576 }
            records.append(record)
            table(Reports.tableRow(record))
            try Reports.write(records, to: folder)
        }
        if jsonOutput.json { print(String(decoding: try Reports.json(records), as: UTF8.self)) }
        table("wrote \(folder.path)/{results.json,results.csv,results.md,peak-memory.svg}")
    }

    static func timestamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        return f.string(from: Date())
    }
}
