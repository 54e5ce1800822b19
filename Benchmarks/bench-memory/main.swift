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

        Everything that can be refused is refused before the first child starts: a model, input \
        or batch whose step cannot fit in physical memory, a batch too small for the model's \
        batch norms (--batch 1 where a batch norm sees a 1x1 map), an output folder that cannot \
        be written. A configuration that fails while measured (an error in the child, a child \
        killed by a signal) is a row marked failed with the reason; the sweep goes on, writes \
        every report, and then exits with status 1, naming the failed rows. Skipped rows \
        (--max-memory) are not failures.
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

    @Flag(help: "Time the measured steps per operation class (convolutions, batch norm, copies, pooling, loss, optimizer, allocation) with the serial share of the step; printed after each row and kept in results.json.")
    var profile = false

    @Option(help: "Kernel level of our C kernels: best (default: the best this CPU has), swift (the Swift references), baseline, avx2, avx512.")
    var kernelLevel = "best"

    @Option(help: "Where thin 3x3 convolutions use our own kernel: measured (default: where bench-kernels measured it faster), off, always.")
    var thinKernels = "measured"

    @OptionGroup var budget: MemoryBudgetOptions

    @OptionGroup var output: OutputFolderOptions

    @OptionGroup var jsonOutput: JSONOutputOptions

    @Option(name: .customLong("child"), help: .hidden)
    var child: String?

    func validate() throws {
        // Bounded: each measured step keeps its time, and warmup + steps must not overflow in the
        // child (a child that traps is a failed row; these are refused before any child).
        guard steps >= 1, steps <= BenchMemory.maximumSteps else {
            throw ValidationError("--steps must be in 1...\(BenchMemory.maximumSteps), got \(steps)")
        }
        guard warmup >= 0, warmup <= BenchMemory.maximumSteps else {
            throw ValidationError("--warmup must be in 0...\(BenchMemory.maximumSteps), got \(warmup)")
        }
        guard ranks >= 1 else { throw ValidationError("--ranks must be at least 1, got \(ranks)") }
        // Open MPI's mpirun refuses root unless told twice; say so here rather than as a failed
        // row ending in the tail of its banner.
        let environment = ProcessInfo.processInfo.environment
        if ranks > 1 && geteuid() == 0
            && !(environment["OMPI_ALLOW_RUN_AS_ROOT"] == "1" && environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] == "1") {
            throw ValidationError("--ranks \(ranks): Open MPI's mpirun refuses to run as root; run as another user, or set "
                                  + "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 for this command")
        }
        _ = try parsedBatches()
        do {
            var probe = BenchmarkConfiguration(model: "", strategy: .naive, batch: 1)
            (probe.kernelLevel, probe.thinKernels) = (kernelLevel, thinKernels)
            _ = try TrainingStepBenchmark.kernelChoice(probe)
        } catch { throw ValidationError("\(error)") }
    }

    func parsedBatches() throws -> [Int] {
        let values = batch.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--batch takes positive integers separated by commas, e.g. 32,64; got '\(batch)'")
        }
        return values.map { $0! }
    }

    /// The models of the sweep: `--model`, or densenet-bc-L-k for each L of `--depths` and k =
    /// `--growth`, each with the options that named it (for error messages).
    func models() throws -> [(name: String, options: String)] {
        let model = modelOptions.model ?? "densenet-bc"
        guard model == "densenet-bc" else { return [(model, "--model \(model)")] }
        guard growth >= 1 else {
            throw ValidationError("--growth must be a positive integer (the channels each dense layer adds, 12 to 48"
                                  + " in the papers); got \(growth)")
        }
        return try depths.split(separator: ",", omittingEmptySubsequences: false).map { d in
            guard let depth = Int(d.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--depths takes integers L = 6n + 4 separated by commas, e.g. 40,100; '\(d)' in '\(depths)' is not one")
            }
            return ("densenet-bc-\(depth)-\(growth)", "--depths \(depth) with --growth \(growth)")
        }
    }

    /// The model `name` with `--classes`, `--input` and `--transition-pooling`, its sizes checked
    /// (`ModelInputOptions.configuration`); an error names the options it came from.
    func configuration(_ model: (name: String, options: String)) throws -> ModelConfiguration {
        do { return try modelOptions.configuration(named: model.name, options: model.options) } catch let error as ConfigurationError {
            throw ValidationError("\(model.options): \(error)")
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
        let models = try models()
        let names = models.map(\.name)
        // Refuse bad names, inputs, poolings, sizes, batches and output folders before starting
        // any child: a step that cannot fit in physical memory (a lower bound, microseconds), or
        // a batch too small for the model's batch norms (a child would die of it).
        for model in models {
            let configuration = try configuration(model)
            for b in try parsedBatches() {
                try MemoryPrediction.checkStep(configuration, batch: b)
                try MemoryPrediction.checkTrainingBatch(configuration, batch: b)
            }
        }
        let pooling = try modelOptions.parsedTransitionPooling()
        let folder = URL(fileURLWithPath: try output.checkedFolder { "results/bench-memory-\(Self.timestamp())" })
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let threads = threadsOptions.threads
        let configurations = try names.flatMap { name in
            try parsedBatches().flatMap { b in
                try strategyOptions.parsed().map { s in
                    BenchmarkConfiguration(model: name, strategy: s, batch: b, input: modelOptions.input,
                                           classes: modelOptions.classes, transitionPooling: pooling, steps: steps,
                                           warmup: warmup, threads: threads, ranks: ranks > 1 ? ranks : nil,
                                           profile: profile)
                    .with(kernelLevel: kernelLevel, thinKernels: thinKernels)
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
            if let profileTable = Reports.profileTable(record) { table("\n" + profileTable + "\n") }
            try Reports.write(records, to: folder)
        }
        if jsonOutput.json { print(String(decoding: try Reports.json(records), as: UTF8.self)) }
        table("wrote \(folder.path)/{results.json,results.csv,results.md,peak-memory.svg}")
        let failed = records.filter { $0.status == "failed" }
        if !failed.isEmpty {
            throw BenchmarkFailures(failed: failed.map { "\($0.model) \($0.strategy) batch \($0.batch): \($0.reason ?? "no reason")" },
                                    total: records.count, folder: folder.path)
        }
    }

    /// The most measured (or warm-up) steps per configuration: days of measuring already.
    static let maximumSteps = 100_000

    static func timestamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        return f.string(from: Date())
    }
}

/// Configurations that failed while measured: the reports are written, then bench-memory exits
/// with status 1 and this message.
struct BenchmarkFailures: Error, CustomStringConvertible {
    var failed: [String]
    var total: Int
    var folder: String

    var description: String {
        "\(failed.count) of \(total) configurations failed (rows marked failed in \(folder)/results.md):\n  "
            + failed.joined(separator: "\n  ")
    }
}
