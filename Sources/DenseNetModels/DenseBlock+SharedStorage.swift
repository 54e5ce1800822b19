import Autograd
import Kernels
import NeuralLayers
import Runtime

/// The dense block of the `shared` and `minimal` strategies as one operation with a
/// hand-written backward (Pleiss et al. 2017, "Memory-Efficient Implementation of DenseNets",
/// arXiv 1707.06990).
///
/// The block owns one feature buffer of its final width, channel-major (C, N, H, W): its input
/// is copied into channels [0, c0) and layer l writes its k new maps into [c_l, c_l + k), so the
/// input of every layer, the concatenation of all earlier maps, is the contiguous prefix
/// [0, c_l) and is never copied. The BN1/ReLU output of every layer lives in one storage shared
/// by all layers of the block (as wide as the widest layer input) and is recomputed in backward,
/// where the same storage first holds the recomputed activation and then, overwritten, its
/// gradient. The gradient of the block's features is one buffer, into whose prefix every layer
/// adds its input gradient.
///
/// `shared` keeps each layer's bottleneck half (conv1 output and BN2/ReLU output, bn_size·k
/// channels each); `minimal` keeps nothing per layer but the batch statistics and recomputes it.
/// The `shared-concat` ablation also keeps each layer's own BN1/ReLU output instead of sharing it.
///
/// With `fuseNormalization` (bottleneck layers) there is no BN1/ReLU storage at all: conv1 reads
/// its input normalised tile by tile (`Conv2d.pointwiseForwardNormalized` and its weight
/// gradient, Conv2d+NormalizedInput.swift).
///
/// Its backward keeps no BN1/ReLU gradient in memory either: conv1's input gradient is made tile
/// by tile, in the pass that makes its weight gradient, and taken at once through the ReLU and
/// norm1 with its statistics held fixed (`BatchNormState.pointwiseBackward`). The rest of norm1's gradient, through
/// its batch statistics, is one `a + xhat·b` per channel; the norm1s of all layers normalise a
/// channel with the same statistics (`statistics(knownPrefix:)`), so their terms add up and are
/// applied once, when the channel's gradient is complete (`applyStatisticsGradient`).
struct SharedDenseBlock {
    let block: DenseBlock
    let keepBottleneck: Bool
    let keepNormalized: Bool
    let fuseNormalization: Bool

    /// Whether this block's layers take the fused path: bottleneck layers (conv1 is 1x1) when asked.
    private var fused: Bool { fuseNormalization && !keepNormalized && block.layers.first?.bottleneckWidth != nil }

    private var label: String {
        keepNormalized ? "denseblock(shared-concat)" : keepBottleneck ? "denseblock(shared)" : "denseblock(minimal)"
    }

    /// What one layer keeps between forward and backward.
    private final class Saved {
        var mean1: Tensor, invStd1: Tensor
        var mean2: Tensor?, invStd2: Tensor?
        var normalized: Tensor?         // BN1/ReLU output (shared-concat ablation only)
        var bottleneckOutput: Tensor?   // conv1 output (shared strategy only)
        var normalizedBottleneck: Tensor? // BN2/ReLU output (shared strategy only)
        var dropoutSeed: UInt64?
        var dropoutExamples: ExampleRange?
        init(mean1: Tensor, invStd1: Tensor) { self.mean1 = mean1; self.invStd1 = invStd1 }
    }

    func callAsFunction(_ x: Variable) -> Variable {
        block.enterForward()
        let (c0, n, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let training = block.isTraining
        let k = block.growthRate
        let buffer = Tensor(shape: [block.outputWidth, n, h, w], category: .activations)
        buffer.channels(0..<c0).assign(x.value)
        var saved = [Saved]()
        do {
            // The BN1/ReLU storage shared by every layer of the block.
            let shared = Tensor(shape: keepNormalized || fused ? [0] : [block.outputWidth - k, n, h, w], category: .scratch)
            for layer in block.layers {
                let cl = layer.inputWidth
                let s = Saved(mean1: Tensor(shape: [cl]), invStd1: Tensor(shape: [cl]))
                let input = buffer.channels(0..<cl)
                let newFeatures = buffer.channels(cl..<(cl + k))
                // norm1's statistics: those of the channels the previous layer saw are its own.
                let previous = saved.last.map { (mean: $0.mean1, invStd: $0.invStd1) }
                layer.norm1.state.statistics(input, training: training, mean: s.mean1, invStd: s.invStd1,
                                             knownPrefix: previous)
                // BN1/ReLU of the input, into the shared storage (or, shared-concat, a kept tensor of its own).
                func normalizedInput() -> Tensor {
                    let normalized = keepNormalized ? Tensor(shape: [cl, n, h, w], category: .activations)
                                                    : shared.channels(0..<cl)
                    if keepNormalized { s.normalized = normalized }
                    reapply(layer.norm1, input, into: normalized, mean: s.mean1, invStd: s.invStd1)
                    return normalized
                }
                if let norm2 = layer.norm2, let conv2 = layer.conv2, let width = layer.bottleneckWidth {
                    let category: MemoryCategory = keepBottleneck ? .activations : .scratch
                    let b = Tensor(shape: [width, n, h, w], category: category)
                    if fused {
                        convolveNormalized(layer, input, mean: s.mean1, invStd: s.invStd1, into: b)
                    } else {
                        convolve(layer.conv1, normalizedInput(), into: b)
                    }
                    let c = Tensor(shape: [width, n, h, w], category: category)
                    s.mean2 = Tensor(shape: [width]); s.invStd2 = Tensor(shape: [width])
                    normalize(norm2, b, into: c, mean: s.mean2!, invStd: s.invStd2!, training: training)
                    convolve(conv2, c, into: newFeatures)
                    if keepBottleneck { s.bottleneckOutput = b; s.normalizedBottleneck = c }
                } else {
                    convolve(layer.conv1, normalizedInput(), into: newFeatures)
                }
                if training && layer.dropRate > 0 {
                    let seed = Autograd.nextDropoutSeed()
                    Dropout.forward(newFeatures, p: layer.dropRate, seed: seed, examples: Autograd.dropoutExamples,
                                    into: newFeatures)
                    s.dropoutSeed = seed
                    s.dropoutExamples = Autograd.dropoutExamples
                }
                saved.append(s)
            }
        }
        let parameters = block.layers.flatMap { layerParameters($0) }
        let inputs = [x] + parameters.map { $0.variable }
        // Writes the input's gradient when fresh (a copy of the buffer's first channels).
        return Autograd.recordWriting(label, buffer, inputs: inputs, writable: 1) { [self] gradOutput, gradInputs, fresh in
            self.backward(gradOutput, buffer: buffer, saved: saved, training: training,
                          inputWidth: c0, gradInputs: gradInputs, overwriteInput: fresh[0])
        }
    }

    /// norm1, conv1(, conv1 bias), norm2, conv2(, conv2 bias) weight/bias per layer, in this order.
    private func layerParameters(_ layer: DenseLayer) -> [Parameter] {
        var p = [layer.norm1.weight, layer.norm1.bias, layer.conv1.weight]
        if let b = layer.conv1.bias { p.append(b) }
        if let norm2 = layer.norm2, let conv2 = layer.conv2 {
            p += [norm2.weight, norm2.bias, conv2.weight]
            if let b = conv2.bias { p.append(b) }
        }
        return p
    }

    /// One layer's gradient slots (nil where no gradient is wanted, or no such parameter), read
    /// from the backward's slots in `layerParameters` order.
    private struct LayerGradients {
        var gamma1, beta1, weight1, bias1: Tensor?
        var gamma2, beta2, weight2, bias2: Tensor?

        init(_ layer: DenseLayer, _ slots: [Tensor?]) {
            var i = 0
            func next() -> Tensor? { defer { i += 1 }; return slots[i] }
            (gamma1, beta1, weight1) = (next(), next(), next())
            bias1 = layer.conv1.bias != nil ? next() : nil
            if layer.norm2 != nil, let conv2 = layer.conv2 {
                (gamma2, beta2, weight2) = (next(), next(), next())
                bias2 = conv2.bias != nil ? next() : nil
            }
        }
    }

    // MARK: Forward pieces

    /// BN + ReLU by batch norm's one rule (`BatchNormState`), the statistics written to mean/invStd.
    private func normalize(_ bn: BatchNormLayer, _ x: Tensor, into y: Tensor, mean: Tensor, invStd: Tensor,
                           training: Bool) {
        bn.state.normalize(x, gamma: bn.weight.value, beta: bn.bias.value, training: training, relu: true,
                           into: y, mean: mean, invStd: invStd)
    }

    private func reapply(_ bn: BatchNormLayer, _ x: Tensor, into y: Tensor, mean: Tensor, invStd: Tensor) {
        BatchNorm.forwardWithStatistics(x, gamma: bn.weight.value, beta: bn.bias.value, mean: mean,
                                        invStd: invStd, relu: true, into: y)
    }

    private func convolve(_ conv: ConvLayer, _ x: Tensor, into y: Tensor) {
        Conv2d.forward(x, weight: conv.weight.value, bias: conv.bias?.value, conv.geometry, into: y)
    }

    /// conv1(relu(norm1(x))) with norm1's statistics given, the normalised x never stored.
    private func convolveNormalized(_ layer: DenseLayer, _ x: Tensor, mean: Tensor, invStd: Tensor, into y: Tensor) {
        Conv2d.pointwiseForwardNormalized(x, gamma: layer.norm1.weight.value, beta: layer.norm1.bias.value, mean: mean,
                                          invStd: invStd, weight: layer.conv1.weight.value, bias: layer.conv1.bias?.value,
                                          into: y)
    }

    // MARK: Backward

    /// Layers in reverse order; each adds its input gradient into the prefix of `gradOutput`,
    /// which is complete for a layer's own channels by the time that layer is reached.
    private func backward(_ gradOutput: Tensor, buffer: Tensor, saved: [Saved], training: Bool, inputWidth: Int,
                          gradInputs: [Tensor?], overwriteInput: Bool) {
        let (n, h, w) = (buffer.shape[1], buffer.shape[2], buffer.shape[3])
        let k = block.growthRate
        // Gradient slots of each layer's parameters, in `layerParameters` order.
        var slot = 1
        var slots = [LayerGradients]()
        for layer in block.layers {
            let count = layerParameters(layer).count
            slots.append(LayerGradients(layer, Array(gradInputs[slot..<(slot + count)])))
            slot += count
        }
        let shared = Tensor(shape: keepNormalized || fused ? [0] : [block.outputWidth - k, n, h, w], category: .scratch)
        // The fused path's bottleneck-sized tensors, for all layers of the block (`fusedBackward`).
        let arena = fused ? block.layers.first?.bottleneckWidth.map { Tensor(shape: [3 * $0, n, h, w], category: .scratch) } : nil
        // The fused path's norm1 gradients through their batch statistics, added up per channel of
        // the prefix the layers read (BatchNorm+StatisticsGradient.swift); in training only.
        let terms = fused && training
            ? (a: Tensor.zeros([block.outputWidth - k], category: .scratch), b: Tensor.zeros([block.outputWidth - k], category: .scratch))
            : nil
        for (index, layer) in block.layers.enumerated().reversed() {
            let s = saved[index], g = slots[index]
            let cl = layer.inputWidth
            let input = buffer.channels(0..<cl)
            // This layer's maps have their whole gradient but the later norm1s' statistics parts.
            if let terms, index + 1 < saved.count {
                applyStatisticsGradient(terms, channels: cl..<(cl + k), buffer: buffer, gradOutput: gradOutput,
                                        statistics: saved[index + 1])
            }
            var gradNew = gradOutput.channels(cl..<(cl + k))
            if let seed = s.dropoutSeed {
                let masked = Tensor.zeros([k, n, h, w], category: .scratch)
                Dropout.backward(gradNew, p: layer.dropRate, seed: seed, examples: s.dropoutExamples, dx: masked)
                gradNew = masked
            }
            if fused, let arena {
                fusedBackward(layer, s, g, input: input, gradNew: gradNew, gradOutput: gradOutput, training: training,
                              arena: arena, terms: terms)
                continue
            }
            let normalized: Tensor
            if let kept = s.normalized {
                normalized = kept
                s.normalized = nil
            } else {
                normalized = shared.channels(0..<cl)
                reapply(layer.norm1, input, into: normalized, mean: s.mean1, invStd: s.invStd1)
            }
            let (dGamma1, dBeta1, dWeight1, dBias1) = (g.gamma1, g.beta1, g.weight1, g.bias1)
            if let norm2 = layer.norm2, let conv2 = layer.conv2, let width = layer.bottleneckWidth,
               let mean2 = s.mean2, let invStd2 = s.invStd2 {
                let (dGamma2, dBeta2, dWeight2, dBias2) = (g.gamma2, g.beta2, g.weight2, g.bias2)
                let gradBottleneck = Tensor(shape: [width, n, h, w], category: .scratch)   // written by norm2's backward
                do {
                    let b: Tensor, c: Tensor
                    if let kept = s.bottleneckOutput, let keptC = s.normalizedBottleneck {
                        (b, c) = (kept, keptC)
                    } else {
                        b = Tensor(shape: [width, n, h, w], category: .scratch)
                        convolve(layer.conv1, normalized, into: b)
                        c = Tensor(shape: [width, n, h, w], category: .scratch)
                        reapply(norm2, b, into: c, mean: mean2, invStd: invStd2)
                    }
                    let gradC = Tensor(shape: [width, n, h, w], category: .scratch)
                    Conv2d.backward(gradNew, x: c, weight: conv2.weight.value, conv2.geometry,
                                    dx: gradC, dWeight: dWeight2, dBias: dBias2, overwriteDx: true)
                    normBackward(norm2, gradC, x: b, mean: mean2, invStd: invStd2, training: training,
                                 dx: gradBottleneck, dGamma: dGamma2, dBeta: dBeta2, overwriteDx: true)
                }
                s.bottleneckOutput = nil
                s.normalizedBottleneck = nil
                Conv2d.backward(gradBottleneck, x: normalized, weight: layer.conv1.weight.value, layer.conv1.geometry,
                                dx: nil, dWeight: dWeight1, dBias: dBias1)
                // The shared storage now takes the gradient of the BN1/ReLU output, written over the
                // normalised values conv1's weight gradient has just read:
                // (c_l × P) = conv1.weightᵀ (c_l × width) · gradBottleneck (width × P).
                Conv2d.backward(gradBottleneck, x: normalized, weight: layer.conv1.weight.value, layer.conv1.geometry,
                                dx: normalized, dWeight: nil, dBias: nil, overwriteDx: true)
                normBackward(layer.norm1, normalized, x: input, mean: s.mean1, invStd: s.invStd1, training: training,
                             dx: gradOutput.channels(0..<cl), dGamma: dGamma1, dBeta: dBeta1)
            } else {
                let gradNormalized = Tensor(shape: [cl, n, h, w], category: .scratch)
                Conv2d.backward(gradNew, x: normalized, weight: layer.conv1.weight.value, layer.conv1.geometry,
                                dx: gradNormalized, dWeight: dWeight1, dBias: dBias1, overwriteDx: true)
                normBackward(layer.norm1, gradNormalized, x: input, mean: s.mean1, invStd: s.invStd1,
                             training: training, dx: gradOutput.channels(0..<cl), dGamma: dGamma1, dBeta: dBeta1)
            }
        }
        if let dx = gradInputs[0] {
            if let terms, let first = saved.first {
                applyStatisticsGradient(terms, channels: 0..<inputWidth, buffer: buffer, gradOutput: gradOutput,
                                        statistics: first)
            }
            if overwriteInput {
                Elementwise.copy(gradOutput.channels(0..<inputWidth), into: dx)
            } else {
                Elementwise.accumulate(gradOutput.channels(0..<inputWidth), into: dx)
            }
        }
        withExtendedLifetime(shared) {}
    }

    /// The backward of one bottleneck layer on the fused path: the bottleneck half as on the other
    /// paths, then conv1's weight gradient and norm1's input gradient in one pass over the input's
    /// tiles, the statistics part of the latter added to `terms` (`BatchNormState.pointwiseBackward`).
    ///
    /// Every bottleneck-sized tensor lives in `arena` (3·width channels, allocated once per block,
    /// so the layers reuse its pages instead of faulting in new ones): c | b | gradC while the
    /// bottleneck's backward runs, then gradBottleneck in c's place (c is dead, b and gradC are
    /// read), and b | gradC, dead by then, are the workspace of that last pass.
    private func fusedBackward(_ layer: DenseLayer, _ s: Saved, _ g: LayerGradients, input: Tensor, gradNew: Tensor,
                               gradOutput: Tensor, training: Bool, arena: Tensor, terms: BatchNormState.StatisticsGradientTerms?) {
        guard let norm2 = layer.norm2, let conv2 = layer.conv2, let width = layer.bottleneckWidth,
              let mean2 = s.mean2, let invStd2 = s.invStd2 else {
            preconditionFailure("SharedDenseBlock: the fused path needs a bottleneck layer with its statistics")
        }
        precondition(arena.shape[0] == 3 * width, "SharedDenseBlock: arena \(arena.shape) for bottleneck width \(width)")
        let (dGamma1, dBeta1, dWeight1, dBias1) = (g.gamma1, g.beta1, g.weight1, g.bias1)
        let (dGamma2, dBeta2, dWeight2, dBias2) = (g.gamma2, g.beta2, g.weight2, g.bias2)
        let slot0 = arena.channels(0..<width), slot1 = arena.channels(width..<(2 * width))
        let gradC = arena.channels((2 * width)..<(3 * width))
        let b: Tensor, c: Tensor
        if let kept = s.bottleneckOutput, let keptC = s.normalizedBottleneck {
            (b, c) = (kept, keptC)
        } else {
            (b, c) = (slot1, slot0)
            convolveNormalized(layer, input, mean: s.mean1, invStd: s.invStd1, into: b)
            reapply(norm2, b, into: c, mean: mean2, invStd: invStd2)
        }
        s.bottleneckOutput = nil
        s.normalizedBottleneck = nil
        Conv2d.backward(gradNew, x: c, weight: conv2.weight.value, conv2.geometry,
                        dx: gradC, dWeight: dWeight2, dBias: dBias2, overwriteDx: true)
        let gradBottleneck = slot0
        normBackward(norm2, gradC, x: b, mean: mean2, invStd: invStd2, training: training,
                     dx: gradBottleneck, dGamma: dGamma2, dBeta: dBeta2, overwriteDx: true)
        if dWeight1 == nil, let dBias1 {
            Conv2d.backward(gradBottleneck, x: input, weight: layer.conv1.weight.value, layer.conv1.geometry,
                            dx: nil, dWeight: nil, dBias: dBias1)
        }
        // conv1's weight gradient and norm1's input gradient in one pass over the input's tiles, its
        // statistics part added to `terms`; b | gradC, dead by now, hold what the kernel keeps.
        let cl = input.shape[0], norm1 = layer.norm1
        norm1.state.pointwiseBackward(gradBottleneck, x: input, weight: layer.conv1.weight.value,
                                           gamma: norm1.weight.value, beta: norm1.bias.value, mean: s.mean1,
                                           invStd: s.invStd1, training: training, dx: gradOutput.channels(0..<cl),
                                           dGamma: dGamma1, dBeta: dBeta1, dWeight: dWeight1,
                                           dBias: dWeight1 == nil ? nil : dBias1,
                                           terms: terms.map { ($0.a.channels(0..<cl), $0.b.channels(0..<cl)) },
                                           workspace: arena.channels(width..<(3 * width)))
    }

    /// Adds the norm1s' statistics parts held in `terms` to the gradient of the block buffer's
    /// `channels`, with the statistics of `statistics`' norm1, which covers them (every norm1
    /// that read them used the same: copied from the layer before, or under synchronised batch
    /// norm taken again over the ranks, the same sums up to the order an all-reduce adds them in).
    private func applyStatisticsGradient(_ terms: BatchNormState.StatisticsGradientTerms, channels r: Range<Int>,
                                         buffer: Tensor, gradOutput: Tensor, statistics: Saved) {
        BatchNorm.accumulateStatisticsGradient(x: buffer.channels(r), mean: statistics.mean1.channels(r),
                                               invStd: statistics.invStd1.channels(r), a: terms.a.channels(r),
                                               b: terms.b.channels(r), dx: gradOutput.channels(r))
    }

    private func normBackward(_ bn: BatchNormLayer, _ dy: Tensor, x: Tensor, mean: Tensor, invStd: Tensor,
                              training: Bool, dx: Tensor, dGamma: Tensor?, dBeta: Tensor?, overwriteDx: Bool = false) {
        bn.state.normalizeBackward(dy, x: x, gamma: bn.weight.value, beta: bn.bias.value, mean: mean, invStd: invStd,
                                   training: training, relu: true, dx: dx, dGamma: dGamma, dBeta: dBeta,
                                   overwriteDx: overwriteDx)
    }
}
