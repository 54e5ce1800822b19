import DenseNetModels
import Foundation
import Runtime

extension ModelBounds {
    /// Refuses a model and batch whose sizes could overflow 64-bit arithmetic anywhere in
    /// describing (`Architecture`), planning (`MemoryPlanner`) or running one training step:
    /// a high-resolution input (`--input 3x1024x1024` is fine, `3x100000000x100000000` is not)
    /// times the batch. Checked before the planner or a module runs, after `check(_:field:)`
    /// where that applies; a step larger than this machine's memory is still described and
    /// predicted (`densenet summary` says how much it would need).
    ///
    /// First one example, with a generous bound that is never below the truth, so that
    /// `Architecture`'s own per-example arithmetic cannot overflow: every layer's output taken
    /// as `widest × H × W` elements and `2 × widest × 49` FLOPs per output element (7x7 is the
    /// zoo's largest kernel), times more layers than there are. Then the batch, exactly: the
    /// sum of the layers' outputs (× 4 bytes × 8, room for gradients, recomputation and
    /// scratch) and the forward FLOPs (× 3, forward and backward), both times the batch.
    public static func checkStep(_ model: ModelConfiguration, batch: Int, field: String = "--input") throws {
        let s = model.inputShape
        let example = "\(field) \(s) of \(model.name): the sizes of one example"
        let widest = try widestLayer(model, what: example)
        let layers = try layerCountBound(model, what: example)
        let elements = try CheckedSize.product([widest, s.height, s.width], what: example)
        _ = try CheckedSize.product([elements, 4 * 8, layers], what: "\(example) (bytes of all layers' outputs, at most)")
        _ = try CheckedSize.product([elements, widest, 2 * 49, layers], what: "\(example) (FLOPs, at most)")
        let architecture = try Architecture(model)
        let step = "\(field) \(s) of \(model.name) with batch \(batch): the sizes of one training step"
        _ = try CheckedSize.product([architecture.leafOutputElements, batch, 4 * 8], what: "\(step) (bytes of the layers' outputs)")
        _ = try CheckedSize.product([architecture.forwardFLOPs, batch, 3], what: "\(step) (FLOPs)")
    }

    /// The most channels (features) any layer reads or writes.
    static func widestLayer(_ model: ModelConfiguration, what: String) throws -> Int {
        switch model {
        case .denseNet(let c):
            var widest = max(c.inputShape.channels, c.initialFeatures, c.classCount)
            if let factor = c.bottleneckFactor { widest = max(widest, try CheckedSize.product(factor, c.growthRate, what: what)) }
            var width = c.initialFeatures
            for (b, layers) in c.blockConfig.enumerated() {
                width = try CheckedSize.sum(width, CheckedSize.product(layers, c.growthRate, what: what), what: what)
                widest = max(widest, width)
                if b + 1 < c.blockConfig.count { width = c.compressed(width) }
            }
            return widest
        case .resNet(let c):
            return ([c.inputShape.channels, c.stemChannels, c.classCount] + c.stageChannels).max() ?? 1
        case .denseMLP(let c):
            let hidden = try CheckedSize.sum(c.blockConfig, what: what)
            return max(c.inputFeatures, c.outputCount, try CheckedSize.sum(c.inputFeatures,
                                                                            CheckedSize.product(hidden, c.growthRate, what: what), what: what))
        }
    }

    /// More entries than `Architecture` lists: 16 per dense layer or residual block, plus 64.
    static func layerCountBound(_ model: ModelConfiguration, what: String) throws -> Int {
        let units: Int
        switch model {
        case .denseNet(let c): units = try CheckedSize.sum(c.blockConfig, what: what)
        case .resNet(let c): units = try CheckedSize.sum(c.blocksPerStage, what: what)
        case .denseMLP(let c): units = try CheckedSize.sum(c.blockConfig, what: what)
        }
        return try CheckedSize.sum(CheckedSize.product(units, 16, what: what), 64, what: what)
    }
}
