import DenseNetModels
import Foundation
import Runtime

/// Size checks of a model configuration that take microseconds, for numbers that come from a
/// file (a checkpoint's `model_configuration`) or a command line: one example's input and a
/// lower bound of the parameters, in checked arithmetic (`CheckedSize`), against this machine's
/// physical memory. A configuration with 10^9 layers or 10^12 classes is refused here, with the
/// figure, before a module is built or a planner walks its layers.
///
/// The parameter bound counts, per layer, only the weights that read each input channel once
/// (a convolution's or linear layer's `c_in × outputs`, and batch norm's `2 c_in`), and a
/// DenseNet's 3x3 convolutions after a bottleneck, in closed form per block, so it is O(blocks)
/// and never more than the true count
/// (`Architecture+Counting.swift` has the exact one).
public enum ModelBounds {
    /// Refuses a validated `model` (`ModelConfiguration.validate()`) when one example's input, or its parameters, cannot fit in physical
    /// memory, or a size overflows; `field` prefixes the names in the error (e.g.
    /// "model_configuration" for a checkpoint).
    public static func check(_ model: ModelConfiguration, field: String) throws {
        try check(model, input: "\(field).input", parameters: field)
    }

    /// As `check(_:field:)`, with the names of the input's numbers (`input`, e.g. "--input
    /// 3x3037000500x3037000500") and of the numbers that size the parameters (`parameters`, e.g.
    /// "--model densenet-bc-100000-12") given apart, as the command lines name their options.
    public static func check(_ model: ModelConfiguration, input inputName: String, parameters parametersName: String) throws {
        let input = model.inputShape
        let inputElements = try CheckedSize.product([input.channels, input.height, input.width],
                                                    what: "\(inputName) (C × H × W of \(model.name))")
        try CheckedSize.fitsInMemory(try CheckedSize.bytes(elements: inputElements, what: "\(inputName) bytes"),
                                     what: "\(inputName): bytes of one example of \(model.name)")
        let weights = try parameterLowerBound(model, what: "\(parametersName): parameter count of \(model.name)")
        try CheckedSize.fitsInMemory(try CheckedSize.bytes(elements: weights, what: "\(parametersName): parameter bytes of \(model.name)"),
                                     what: "\(parametersName): bytes of \(model.name)'s parameters (at least)")
    }

    /// A lower bound of the parameter count (see the type's note).
    public static func parameterLowerBound(_ model: ModelConfiguration, what: String) throws -> Int {
        switch model {
        case .denseNet(let c):
            // Layer j reads width + j·k channels; each is read by batch norm (2) and by the first
            // convolution: a 1x1 to f·k channels with a bottleneck (then a 3x3 from f·k to k per
            // layer), else a 3x3 to k.
            let perInput: Int, perLayer: Int
            if let f = c.bottleneckFactor {
                let bottleneck = try CheckedSize.product(f, c.growthRate, what: what)
                perInput = try CheckedSize.sum(bottleneck, 2, what: what)
                perLayer = try CheckedSize.product([bottleneck, c.growthRate, 9], what: what)
            } else {
                perInput = try CheckedSize.sum(CheckedSize.product(c.growthRate, 9, what: what), 2, what: what)
                perLayer = 0
            }
            let (total, width) = try denseBlocksWeights(width: c.initialFeatures, blocks: c.blockConfig, growth: c.growthRate,
                                                        compression: c.compression, perInput: perInput, perLayer: perLayer,
                                                        what: what)
            return try CheckedSize.sum(total, CheckedSize.product(CheckedSize.sum(width, 1, what: what), c.classCount, what: what), what: what)
        case .resNet(let c):
            var total = try CheckedSize.product([c.stemChannels, c.inputShape.channels, 49], what: what)
            for (channels, blocks) in zip(c.stageChannels, c.blocksPerStage) {
                // Each block's second 3x3 convolution: channels × channels × 9.
                total = try CheckedSize.sum(total, CheckedSize.product([blocks, channels, channels, 9], what: what), what: what)
            }
            let last = c.stageChannels.last ?? 0
            return try CheckedSize.sum(total, CheckedSize.product(CheckedSize.sum(last, 1, what: what), c.classCount, what: what), what: what)
        case .denseMLP(let c):
            if !c.denseConnections {
                let hidden = try CheckedSize.sum(c.blockConfig, what: what)
                var total = try CheckedSize.product(c.inputFeatures, c.growthRate, what: what)
                total = try CheckedSize.sum(total, CheckedSize.product([max(hidden - 1, 0), c.growthRate, c.growthRate],
                                                                       what: what), what: what)
                return try CheckedSize.sum(total, CheckedSize.product(CheckedSize.sum(c.growthRate, 1, what: what), c.outputCount, what: what), what: what)
            }
            let (total, width) = try denseBlocksWeights(width: c.inputFeatures, blocks: c.blockConfig, growth: c.growthRate,
                                                        compression: c.compression, perInput: c.growthRate, perLayer: 0,
                                                        what: what)
            return try CheckedSize.sum(total, CheckedSize.product(CheckedSize.sum(width, 1, what: what), c.outputCount, what: what), what: what)
        }
    }

    /// Weights of dense blocks from `width` channels and of the transitions between them,
    /// checked: each layer input (`denseInputs`) times `perInput`, `perLayer` per layer, and
    /// width × compressed width per transition; returns them with the last block's width.
    static func denseBlocksWeights(width start: Int, blocks: [Int], growth: Int, compression: Double, perInput: Int,
                                   perLayer: Int, what: String) throws -> (total: Int, width: Int) {
        var total = 0, width = start
        for (b, layers) in blocks.enumerated() {
            let inputs = try denseInputs(width: width, layers: layers, growth: growth, what: what)
            total = try CheckedSize.sum(total, CheckedSize.product(inputs, perInput, what: what), what: what)
            total = try CheckedSize.sum(total, CheckedSize.product(layers, perLayer, what: what), what: what)
            width = try CheckedSize.sum(width, CheckedSize.product(layers, growth, what: what), what: what)
            if b + 1 < blocks.count {
                let next = try compressed(width, compression: compression, what: what)
                total = try CheckedSize.sum(total, CheckedSize.product(width, next, what: what), what: what)
                width = next
            }
        }
        return (total, width)
    }

    /// Σ_{j<n} (width + j·k) = n·width + k·n(n−1)/2, checked.
    static func denseInputs(width: Int, layers n: Int, growth k: Int, what: String) throws -> Int {
        let pairs = n % 2 == 0 ? try CheckedSize.product(n / 2, max(n - 1, 0), what: what)
            : try CheckedSize.product(n, (n - 1) / 2, what: what)
        return try CheckedSize.sum(CheckedSize.product(n, width, what: what), CheckedSize.product(k, pairs, what: what),
                                   what: what)
    }
}
