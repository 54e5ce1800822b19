import ArgumentParser
import CommandLineOptions
import DenseNetModels
import Foundation
import Training

/// `densenet summary --model NAME [--input CxHxW] [--batch N] [--classes C] [--json]`: the
/// per-layer table (torchsummary / Keras style), parameter totals, and the predicted tensor
/// memory of one training step under each memory strategy (`MemoryPrediction`, which asks
/// `MemoryPlanner`).
struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Layer table, parameter counts and predicted training memory of a model.",
        discussion: """
        The memory prediction is the peak of live tensor bytes the runtime counts (Memory.peak, \
        bench-memory's peak_tensor_mib) over one training step with the optimizer of --optimizer \
        and --momentum (default SGD with momentum 0.9, as train; --momentum 0: plain SGD): \
        parameters, gradients, optimizer state and the batch, plus what the step allocates \
        (activations kept for backward, gradient buffers, recompute buffers, kernel scratch). On \
        several threads it assumes a kernel's threads hold their column tiles at once (an upper \
        bound; the JSON also gives the lower bound). Process RSS adds the allocator's and \
        libraries' overhead.

        --input takes any size, e.g. 3x1024x1024 or 3x512x384 (height x width): the prediction \
        is made without allocating, for steps larger than this machine too; sizes whose \
        arithmetic would overflow are refused.
        """)

    @OptionGroup var modelOptions: ModelInputOptions

    @Option(help: "Batch size of the shapes and of the memory prediction.")
    var batch = 64

    @OptionGroup var threadsOptions: ThreadsOptions

    @OptionGroup var strategyOptions: StrategyListOptions

    @OptionGroup var optimizerOptions: OptimizerOptions

    @Flag(help: "Also list composite entries (dense blocks, dense layers, transitions) in the table.")
    var nested = false

    @OptionGroup var output: JSONOutputOptions

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        guard modelOptions.model != nil else { throw ValidationError("--model is required") }
    }

    func run() throws {
        let configuration = try modelOptions.configuration()
        // Any input size (--input 3x1024x1024) is described and planned; a step that cannot fit this
        // machine's memory or whose arithmetic would overflow is refused first (MemoryPrediction.plan).
        try MemoryPrediction.checkStep(configuration, batch: batch)
        let architecture = try Architecture(configuration)
        let optimizer = try optimizerOptions.settings()
        let threads = threadsOptions.threads
        var plans = [MemoryPlan]()
        for s in try strategyOptions.parsed() {
            plans.append(try MemoryPrediction.plan(configuration, batch: batch, strategy: s, threads: threads,
                                                   optimizer: optimizer))
        }
        if output.json {
            let report = SummaryReport(configuration, architecture, batch: batch, threads: threads,
                                       optimizer: optimizer.planned, plans: plans)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(architecture.summaryTable(batchSize: batch, includeComposites: nested), terminator: "")
            print(Self.memoryTable(plans))
        }
    }

    static func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }

    /// One row per strategy: the parts of the peak, the peak, and where it occurs.
    static func memoryTable(_ plans: [MemoryPlan]) -> String {
        guard let first = plans.first else { return "" }
        let optimizerName: String
        switch first.optimizer {
        case .sgd: optimizerName = "SGD"
        case .sgdMomentum: optimizerName = "SGD with momentum"
        case .adam: optimizerName = "Adam"
        }
        var lines = ["Predicted training memory per step (tensor bytes the runtime counts, Memory.peak), batch "
                     + "\(first.batch), \(first.threads) thread\(first.threads == 1 ? "" : "s"), \(optimizerName):"]
        let header = ["strategy", "parameters", "gradients", "optimizer", "input", "activations kept",
                      "peak scratch", "predicted peak", "peak during"]
        let rows = plans.map { p in
            [p.policy.name, mib(p.parameterBytes), mib(p.gradientBytes), mib(p.optimizerStateBytes),
             mib(p.inputBytes), mib(p.activationBytes), mib(p.peakScratchBytes), mib(p.peakBytes), p.peakPhase]
        }
        let widths = header.indices.map { i in max(header[i].count, rows.map { $0[i].count }.max() ?? 0) }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                if i == cells.count - 1 { return cell }
                return i == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        lines.append(line(header))
        lines += rows.map(line)
        lines.append("parameters: weights and BN running statistics; activations kept: what the forward pass leaves "
                     + "for backward; predicted peak: baseline (parameters, gradients, optimizer, input) + the step's peak.")
        if first.threads > 1 {
            let bounds = plans.map { "\($0.policy.name) \(String(format: "%.1f", $0.productSpeedupBound))x" }
            lines.append("Convolutions and matrix products: \(String(format: "%.1f", first.productFLOPs / 1e9)) GFLOP per step "
                         + "(\(first.policy.name)); as split across \(first.threads) threads they can run at most "
                         + bounds.joined(separator: ", ") + " faster than on one (the splits alone: bandwidth and balance aside).")
        }
        let spread = plans.map { $0.peakBytes - $0.sequentialPeakBytes }.max() ?? 0
        if spread > 0 {
            lines.append("On \(first.threads) threads the peak assumes each kernel's threads hold their column tiles at once; "
                         + "calls too short for that need up to \(mib(spread)) less.")
        }
        return lines.joined(separator: "\n")
    }
}

/// The JSON form of `densenet summary`.
struct SummaryReport: Encodable {
    struct Layer: Encodable {
        var name: String
        var type: String
        var output_shape: [Int]
        var params: Int
    }

    struct StrategyPlan: Encodable {
        var predicted_peak_bytes: Int
        var predicted_peak_lower_bound_bytes: Int
        var parameters_bytes: Int
        var gradients_bytes: Int
        var optimizer_state_bytes: Int
        var input_bytes: Int
        var activations_kept_bytes: Int
        var peak_scratch_bytes: Int
        var forward_peak_bytes: Int
        var bytes_at_peak: [String: Int]
        var peak_during: String
        /// FLOPs of convolutions and matrix products per step, and the most their splits across
        /// the threads let them speed up over one thread (MemoryPlan.productSpeedupBound).
        var product_flops: Double
        var product_speedup_bound: Double
    }

    var model: String
    var input: String
    var batch: Int
    var classes: Int
    var threads: Int
    var optimizer: String
    var params_trainable: Int
    var params_non_trainable: Int
    var params_total: Int
    var forward_flops_per_example: Int
    var layers: [Layer]
    var strategies: [String: StrategyPlan]

    init(_ configuration: ModelConfiguration, _ architecture: Architecture, batch: Int, threads: Int,
         optimizer: PlannedOptimizer, plans: [MemoryPlan]) {
        model = configuration.name
        input = configuration.inputShape.description
        self.batch = batch
        classes = configuration.outputCount
        self.threads = threads
        self.optimizer = optimizer.rawValue
        params_trainable = architecture.trainableParameters
        params_non_trainable = architecture.nonTrainableParameters
        params_total = architecture.totalParameters
        forward_flops_per_example = architecture.forwardFLOPs
        layers = architecture.leaves.map { layer in
            let s = layer.outputShape
            let flat = s.height == 1 && s.width == 1
            let isLinear: Bool
            if case .linear = layer.kind { isLinear = true } else { isLinear = false }
            return Layer(name: layer.name, type: architecture.typeName(layer),
                         output_shape: isLinear || flat ? [batch, s.channels] : [batch, s.channels, s.height, s.width],
                         params: layer.trainableParameters)
        }
        var strategies = [String: StrategyPlan]()
        for p in plans {
            strategies[p.policy.name] = StrategyPlan(
                predicted_peak_bytes: p.peakBytes, predicted_peak_lower_bound_bytes: p.sequentialPeakBytes,
                parameters_bytes: p.parameterBytes, gradients_bytes: p.gradientBytes,
                optimizer_state_bytes: p.optimizerStateBytes, input_bytes: p.inputBytes,
                activations_kept_bytes: p.activationBytes, peak_scratch_bytes: p.peakScratchBytes,
                forward_peak_bytes: p.forwardPeakBytes, bytes_at_peak: p.bytesAtPeak, peak_during: p.peakPhase,
                product_flops: p.productFLOPs, product_speedup_bound: p.productSpeedupBound)
        }
        self.strategies = strategies
    }

}
