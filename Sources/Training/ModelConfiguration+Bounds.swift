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
/// (a convolution's or linear layer's `c_in × outputs`, and batch norm's `2 c_in`), in closed
/// form per block, so it is O(blocks) and never more than the true count
/// (`Architecture+Counting.swift` has the exact one).
public enum ModelBounds {
    /// Refuses a validated `model` (`ModelConfiguration.validate()`) when one example's input, or its parameters, cannot fit in physical
    /// memory, or a size overflows; `field` prefixes the names in the error (e.g.
    /// "model_configuration" for a checkpoint, "--model" for an option).
    public static func check(_ model: ModelConfiguration, field: String) throws {
        let input = model.inputShape
        let inputElements = try CheckedSize.product([input.channels, input.height, input.width],
                                                    what: "\(field).input (C × H × W of \(model.name))")
        try CheckedSize.fitsInMemory(try CheckedSize.bytes(elements: inputElements, what: "\(field).input bytes"),
                                     what: "\(field).input: bytes of one example of \(model.name)")
        let weights = try parameterLowerBound(model, what: "\(field): parameter count of \(model.name)")
        try CheckedSize.fitsInMemory(try CheckedSize.bytes(elements: weights, what: "\(field): parameter bytes of \(model.name)"),
                                     what: "\(field): bytes of \(model.name)'s parameters (at least)")
    }

    /// A lower bound of the parameter count (see the type's note).
    public static func parameterLowerBound(_ model: ModelConfiguration, what: String) throws -> Int {
        switch model {
        case .denseNet(let c):
            var total = 0
            var width = c.initialFeatures
            for (b, layers) in c.blockConfig.enumerated() {
                // Layer j reads width + j·k channels: Σ = n·width + k·n(n−1)/2; each is read by
                // batch norm (2) and by a convolution with at least k outputs.
                let inputs = try denseInputs(width: width, layers: layers, growth: c.growthRate, what: what)
                total = try CheckedSize.sum(total, CheckedSize.product(inputs, CheckedSize.sum(c.growthRate, 2, what: what), what: what), what: what)
                width = try CheckedSize.sum(width, CheckedSize.product(layers, c.growthRate, what: what), what: what)
                if b + 1 < c.blockConfig.count {
                    let next = c.compressed(width)
                    total = try CheckedSize.sum(total, CheckedSize.product(width, next, what: what), what: what)
                    width = next
                }
            }
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
            var total = 0
            var width = c.inputFeatures
            if !c.denseConnections {
                let hidden = try CheckedSize.sum(c.blockConfig, what: what)
                total = try CheckedSize.product(width, c.growthRate, what: what)
                total = try CheckedSize.sum(total, CheckedSize.product([max(hidden - 1, 0), c.growthRate, c.growthRate],
                                                                       what: what), what: what)
                return try CheckedSize.sum(total, CheckedSize.product(CheckedSize.sum(c.growthRate, 1, what: what), c.outputCount, what: what), what: what)
            }
            for (b, layers) in c.blockConfig.enumerated() {
                let inputs = try denseInputs(width: width, layers: layers, growth: c.growthRate, what: what)
                total = try CheckedSize.sum(total, CheckedSize.product(inputs, c.growthRate, what: what), what: what)
                width = try CheckedSize.sum(width, CheckedSize.product(layers, c.growthRate, what: what), what: what)
                if b + 1 < c.blockConfig.count {
                    let next = c.compressed(width)
                    total = try CheckedSize.sum(total, CheckedSize.product(width, next, what: what), what: what)
                    width = next
                }
            }
            return try CheckedSize.sum(total, CheckedSize.product(CheckedSize.sum(width, 1, what: what), c.outputCount, what: what), what: what)
        }
    }

    /// Σ_{j<n} (width + j·k) = n·width + k·n(n−1)/2, checked.
    static func denseInputs(width: Int, layers n: Int, growth k: Int, what: String) throws -> Int {
        let pairs = n % 2 == 0 ? try CheckedSize.product(n / 2, max(n - 1, 0), what: what)
            : try CheckedSize.product(n, (n - 1) / 2, what: what)
        return try CheckedSize.sum(CheckedSize.product(n, width, what: what), CheckedSize.product(k, pairs, what: what),
                                   what: what)
    }
}
