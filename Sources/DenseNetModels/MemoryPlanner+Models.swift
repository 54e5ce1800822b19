import Kernels
import Runtime

// The forward passes of DenseNet.swift, DenseBlock.swift, DenseLayer.swift,
// DenseBlock+SharedStorage.swift, ResNet.swift and DenseMLP.swift, step by step in terms of
// the simulated operations. Every `drop` marks where the real code lets go of a value: a
// temporary argument after the call it was passed to, a `let` at the end of its scope, a
// `var` when it is reassigned. Keep these in step with the model code: the tests compare
// the result with the runtime's own count on every strategy.

extension PlanAutograd {
    // MARK: DenseNet

    func denseNet(_ c: DenseNetConfiguration, _ a: Architecture, strategy: MemoryStrategy, _ x: PlanVariable) -> PlanVariable {
        let recompute = strategy == .minimal
        var h = recompute ? checkpoint("features.stem", x) { self.denseNetStem(c, $0) } : denseNetStem(c, x)
        for (i, block) in a.denseBlocks.enumerated() {
            let next = denseBlock(block, c, strategy: strategy, h)
            drop(h)
            h = next
            if i < a.transitions.count {
                let t = a.transitions[i]
                let next = recompute ? checkpoint(t.name, h) { self.transition(t, c, $0) } : transition(t, c, h)
                drop(h)
                h = next
            }
        }
        let normalized = batchNorm(h, label: "features.norm5")
        let pooled = globalAvgPool(normalized, label: "avgpool")
        drop(normalized)
        let logits = linear(pooled, outFeatures: c.classCount, label: "classifier")
        drop(pooled)
        drop(h)
        return logits
    }

    /// conv0 (→ norm0 → ReLU → 3x3/2 max pool): `let y = conv0(x)` lives to the end.
    func denseNetStem(_ c: DenseNetConfiguration, _ x: PlanVariable) -> PlanVariable {
        switch c.stem {
        case .cifar:
            return conv2d(x, outChannels: c.initialFeatures, ConvParameters(kernel: 3, padding: 1), label: "features.conv0")
        case .imagenet:
            let y = conv2d(x, outChannels: c.initialFeatures, ConvParameters(kernel: 7, stride: 2, padding: 3),
                           label: "features.conv0")
            let normalized = batchNorm(y, label: "features.norm0")
            let pooled = maxPool2d(normalized, PoolParameters(kernel: 3, stride: 2, padding: 1), label: "features.pool0")
            drop(normalized)
            drop(y)
            return pooled
        }
    }

    /// As `Transition`: BN → ReLU → 2x2/2 average pooling → 1x1 conv (the two commute), or
    /// BN → ReLU → 1x1 conv → 2x2/2 max pooling.
    func transition(_ t: Architecture.Transition, _ c: DenseNetConfiguration, _ x: PlanVariable) -> PlanVariable {
        let normalized = batchNorm(x, label: "\(t.name).norm")
        let window = PoolParameters(kernel: 2, stride: 2)
        switch c.transitionPooling {
        case .average:
            let pooled = avgPool2d(normalized, window, label: "\(t.name).pool")
            drop(normalized)
            let y = conv2d(pooled, outChannels: t.outputChannels, ConvParameters(kernel: 1), label: "\(t.name).conv")
            drop(pooled)
            return y
        case .max:
            let y = conv2d(normalized, outChannels: t.outputChannels, ConvParameters(kernel: 1), label: "\(t.name).conv")
            drop(normalized)
            let pooled = maxPool2d(y, window, label: "\(t.name).pool")
            drop(y)
            return pooled
        }
    }

    func denseBlock(_ b: Architecture.DenseBlock, _ c: DenseNetConfiguration, strategy: MemoryStrategy,
                    _ x: PlanVariable) -> PlanVariable {
        switch strategy {
        case .naive, .checkpoint:
            var features = [keep(x)]
            for i in 0..<b.layerCount {
                features.append(denseLayer(b, i, c, features, checkpointed: strategy == .checkpoint))
            }
            let out = concat(features, label: b.name)
            drop(features)
            return out
        case .shared, .minimal, .sharedConcatenation:
            return sharedDenseBlock(b, c, keepBottleneck: strategy != .minimal,
                                    keepNormalized: strategy == .sharedConcatenation, x)
        }
    }

    /// `DenseLayer.callAsFunction(_:checkpointed:)`.
    func denseLayer(_ b: Architecture.DenseBlock, _ i: Int, _ c: DenseNetConfiguration, _ features: [PlanVariable],
                    checkpointed: Bool) -> PlanVariable {
        let name = "\(b.name).denselayer\(i + 1)"
        if checkpointed {
            let bottleneckOutput = checkpoint("\(name).bottleneck", features) { inputs in
                let concatenated = self.concat(inputs, label: "\(name).concat")
                let out = self.bottleneck(b, c, concatenated, name: name)
                self.drop(concatenated)
                return out
            }
            let out = layerTail(b, c, bottleneckOutput, name: name)
            drop(bottleneckOutput)
            return out
        }
        let input = features.count == 1 ? keep(features[0]) : concat(features, label: "\(name).concat")
        let bottleneckOutput = bottleneck(b, c, input, name: name)
        let out = layerTail(b, c, bottleneckOutput, name: name)
        drop(bottleneckOutput)
        drop(input)
        return out
    }

    /// BN → ReLU → conv1 (1x1 to bn_size·k, or 3x3 to k without bottleneck).
    func bottleneck(_ b: Architecture.DenseBlock, _ c: DenseNetConfiguration, _ x: PlanVariable, name: String) -> PlanVariable {
        let normalized = batchNorm(x, label: "\(name).norm1")
        let p = b.bottleneckWidth == nil ? ConvParameters(kernel: 3, padding: 1) : ConvParameters(kernel: 1)
        let out = conv2d(normalized, outChannels: b.bottleneckWidth ?? b.growthRate, p, label: "\(name).conv1")
        drop(normalized)
        return out
    }

    /// (BN → ReLU → 3x3 conv →) dropout.
    func layerTail(_ b: Architecture.DenseBlock, _ c: DenseNetConfiguration, _ x: PlanVariable, name: String) -> PlanVariable {
        var y = keep(x)
        if b.bottleneckWidth != nil {
            let normalized = batchNorm(y, label: "\(name).norm2")
            let next = conv2d(normalized, outChannels: b.growthRate, ConvParameters(kernel: 3, padding: 1),
                              label: "\(name).conv2")
            drop(normalized)
            drop(y)
            y = next
        }
        let out = dropout(y, p: c.dropRate, label: "\(name).dropout")
        drop(y)
        return out
    }

    /// `SharedDenseBlock`: one feature buffer per block, one BN1/ReLU storage shared by its
    /// layers (scratch, freed after the forward pass and allocated again in backward), the
    /// bottleneck half kept (`shared`, activations) or recomputed (`minimal`, scratch); the
    /// `shared-concat` ablation keeps every layer's own BN1/ReLU output instead of the shared one.
    func sharedDenseBlock(_ b: Architecture.DenseBlock, _ c: DenseNetConfiguration, keepBottleneck: Bool,
                          keepNormalized: Bool, _ x: PlanVariable) -> PlanVariable {
        let (n, h, w) = (x.shape[1], x.shape[2], x.shape[3])
        let k = b.growthRate, positions = n * h * w
        let (threads, concurrentTiles) = (threads, concurrentTiles)
        let conv3 = ConvParameters(kernel: 3, padding: 1), conv1 = ConvParameters(kernel: 1)
        let buffer = allocate([b.outputChannels, n, h, w])
        sim.phase = "forward \(b.name)"
        var statistics = [Int]()          // mean and invStd of every BN (activations), kept to the end
        var kept = [(Int, Int)?]()        // the bottleneck half of each layer (shared only)
        var keptNormalized = [Int?]()     // each layer's BN1/ReLU output (shared-concat only)
        let sharedWidth = keepNormalized ? 0 : b.outputChannels - k
        let shared = sim.allocate(sharedWidth * positions, .scratch)
        for i in 0..<b.layerCount {
            let cl = b.layerInputChannels(i)
            statistics += [sim.allocate(cl, .activations), sim.allocate(cl, .activations)]
            keptNormalized.append(keepNormalized ? sim.allocate(cl * positions, .activations) : nil)
            if let width = b.bottleneckWidth {
                let category: MemoryCategory = keepBottleneck ? .activations : .scratch
                let out = sim.allocate(width * positions, category)
                sim.transient(Conv2d.forwardScratchBytes(input: [cl, n, h, w], weight: [width, cl, 1, 1], conv1,
                                                         threads: threads, concurrent: concurrentTiles))
                let normalized = sim.allocate(width * positions, category)
                statistics += [sim.allocate(width, .activations), sim.allocate(width, .activations)]
                sim.transient(Conv2d.forwardScratchBytes(input: [width, n, h, w], weight: [k, width, 3, 3], conv3,
                                                         threads: threads, concurrent: concurrentTiles))
                if keepBottleneck {
                    kept.append((out, normalized))
                } else {
                    sim.release(normalized)
                    sim.release(out)
                    kept.append(nil)
                }
            } else {
                sim.transient(Conv2d.forwardScratchBytes(input: [cl, n, h, w], weight: [k, cl, 3, 3], conv3,
                                                         threads: threads, concurrent: concurrentTiles))
                kept.append(nil)
            }
        }
        sim.release(shared)
        let dropRate = c.dropRate
        // The statistics belong to the backward closure alone (`Saved`); the buffer to it and the output.
        defer { statistics.forEach(sim.release) }
        return record(b.name, buffer, inputs: [x.node], parameters: true, saved: [buffer.buffer] + statistics) {
            [unowned self] _, _ in
            let shared = sim.allocate(sharedWidth * positions, .scratch)
            for i in (0..<b.layerCount).reversed() {
                let cl = b.layerInputChannels(i)
                let masked = dropRate > 0 ? sim.allocate(k * positions, .scratch) : nil
                // A kept BN1/ReLU output moves to a local that lives to the end of the iteration.
                defer { if let normalized = keptNormalized[i] { sim.release(normalized) } }
                if let width = b.bottleneckWidth {
                    let gradBottleneck = sim.allocate(width * positions, .scratch)
                    var recomputed = [Int]()
                    if kept[i] == nil {
                        recomputed.append(sim.allocate(width * positions, .scratch))
                        sim.transient(Conv2d.forwardScratchBytes(input: [cl, n, h, w], weight: [width, cl, 1, 1], conv1,
                                                                 threads: threads, concurrent: concurrentTiles))
                        recomputed.append(sim.allocate(width * positions, .scratch))
                    }
                    let gradNormalized = sim.allocate(width * positions, .scratch)
                    sim.transient(Conv2d.backwardScratchBytes(input: [width, n, h, w], weight: [k, width, 3, 3], conv3,
                                                              inputGradient: true, weightGradient: true, threads: threads, concurrent: concurrentTiles))
                    sim.release(gradNormalized)
                    recomputed.forEach(sim.release)
                    if let (out, normalized) = kept[i] {
                        sim.release(out)
                        sim.release(normalized)
                    }
                    sim.transient(Conv2d.backwardScratchBytes(input: [cl, n, h, w], weight: [width, cl, 1, 1], conv1,
                                                              inputGradient: false, weightGradient: true, threads: threads, concurrent: concurrentTiles))
                    sim.transient(Gemm.multiplyScratchBytes(m: cl, n: positions, k: width, threads: threads))
                    sim.release(gradBottleneck)
                } else {
                    let gradNormalized = sim.allocate(cl * positions, .scratch)
                    sim.transient(Conv2d.backwardScratchBytes(input: [cl, n, h, w], weight: [k, cl, 3, 3], conv3,
                                                              inputGradient: true, weightGradient: true, threads: threads, concurrent: concurrentTiles))
                    sim.release(gradNormalized)
                }
                if let masked { sim.release(masked) }
            }
            sim.release(shared)
        }
    }

    // MARK: ResNet

    func resNet(_ c: ResNetConfiguration, _ a: Architecture, strategy: MemoryStrategy, _ x: PlanVariable) -> PlanVariable {
        let recomputeBlocks = strategy != .naive
        var h = strategy == .minimal ? checkpoint("stem", x) { self.resNetStem(c, $0) } : resNetStem(c, x)
        for r in a.residualBlocks {
            let next = recomputeBlocks ? checkpoint(r.name, h) { self.residualBlock(r, c, $0) } : residualBlock(r, c, h)
            drop(h)
            h = next
        }
        let pooled = globalAvgPool(h, label: "avgpool")
        let logits = linear(pooled, outFeatures: c.classCount, label: "fc")
        drop(pooled)
        drop(h)
        return logits
    }

    /// `maxPool2d(bn1(conv1(x), relu: true))`: each temporary goes after the call it feeds.
    func resNetStem(_ c: ResNetConfiguration, _ x: PlanVariable) -> PlanVariable {
        let y = conv2d(x, outChannels: c.stemChannels, ConvParameters(kernel: 7, stride: 2, padding: 3), label: "conv1")
        let normalized = batchNorm(y, label: "bn1")
        drop(y)
        let pooled = maxPool2d(normalized, PoolParameters(kernel: 3, stride: 2, padding: 1), label: "maxpool")
        drop(normalized)
        return pooled
    }

    /// `relu(add(bn2(conv2(bn1(conv1(x)))), shortcut))`.
    func residualBlock(_ r: Architecture.ResidualBlock, _ c: ResNetConfiguration, _ x: PlanVariable) -> PlanVariable {
        let t1 = conv2d(x, outChannels: r.outputChannels, ConvParameters(kernel: 3, stride: r.stride, padding: 1),
                        label: "\(r.name).conv1")
        let t2 = batchNorm(t1, label: "\(r.name).bn1")
        drop(t1)
        let t3 = conv2d(t2, outChannels: r.outputChannels, ConvParameters(kernel: 3, padding: 1), label: "\(r.name).conv2")
        drop(t2)
        let y = batchNorm(t3, label: "\(r.name).bn2")
        drop(t3)
        let shortcut = r.hasProjection
            ? conv2d(x, outChannels: r.outputChannels, ConvParameters(kernel: 1, stride: r.stride),
                     label: "\(r.name).downsample.0")
            : keep(x)
        let sum = add(y, shortcut, label: "\(r.name).add")
        let out = relu(sum, label: "\(r.name).relu2")
        drop(sum)
        drop(y)
        drop(shortcut)
        return out
    }

    // MARK: Dense MLP

    func denseMLP(_ c: DenseMLPConfiguration, _ a: Architecture, strategy: MemoryStrategy, _ x: PlanVariable) -> PlanVariable {
        var h = keep(x)
        for (i, block) in a.denseBlocks.enumerated() {
            let next = mlpBlock(block, c, strategy: strategy, h)
            drop(h)
            h = next
            if i < a.transitions.count {
                let t = a.transitions[i]
                let y = linear(h, outFeatures: t.outputChannels, label: "\(t.name).fc")
                let next = relu(y, label: "\(t.name).relu")
                drop(y)
                drop(h)
                h = next
            }
        }
        let out = linear(h, outFeatures: c.outputCount, label: "output")
        drop(h)
        return out
    }

    /// fc [→ BN] → ReLU; `let y = fc(x)` lives to the end.
    func mlpLayer(_ b: Architecture.DenseBlock, _ i: Int, _ c: DenseMLPConfiguration, _ x: PlanVariable) -> PlanVariable {
        let name = "\(b.name).denselayer\(i + 1)"
        let y = linear(x, outFeatures: b.growthRate, label: "\(name).fc")
        let out = c.batchNorm ? batchNorm(y, label: "\(name).norm") : relu(y, label: "\(name).relu")
        drop(y)
        return out
    }

    func mlpBlock(_ b: Architecture.DenseBlock, _ c: DenseMLPConfiguration, strategy: MemoryStrategy,
                  _ x: PlanVariable) -> PlanVariable {
        func joined(_ features: [PlanVariable], _ i: Int) -> PlanVariable {
            features.count == 1 ? keep(features[0]) : concat(features, label: "\(b.name).denselayer\(i + 1).concat")
        }
        switch strategy {
        case .naive, .checkpoint:
            var features = [keep(x)]
            for i in 0..<b.layerCount {
                if strategy == .naive {
                    let input = joined(features, i)
                    features.append(mlpLayer(b, i, c, input))
                    drop(input)
                } else {
                    features.append(checkpoint("\(b.name).denselayer\(i + 1)", features) { inputs in
                        let input = joined(inputs, i)
                        let out = self.mlpLayer(b, i, c, input)
                        self.drop(input)
                        return out
                    })
                }
            }
            let out = concat(features, label: b.name)
            drop(features)
            return out
        case .shared, .minimal, .sharedConcatenation:
            let n = x.shape[1]
            let buffer = allocate([b.outputChannels, n])
            // `SharedFeatures.place`: the slice, recorded with the placed value as input.
            func place(_ v: PlanVariable) -> PlanVariable {
                recordView("\(b.name).place", of: buffer, shape: v.shape, inputs: [v.node])
            }
            func prefix(_ pieces: [PlanVariable]) -> PlanVariable {
                recordView("\(b.name).prefix", of: buffer, shape: [pieces.reduce(0) { $0 + $1.shape[0] }, n],
                           inputs: pieces.map(\.node))
            }
            var pieces = [place(x)]
            for i in 0..<b.layerCount {
                let input = prefix(pieces)
                let output = strategy == .minimal
                    ? checkpoint("\(b.name).denselayer\(i + 1)", input) { self.mlpLayer(b, i, c, $0) }
                    : mlpLayer(b, i, c, input)
                pieces.append(place(output))
                drop(input)
                drop(output)
            }
            let out = prefix(pieces)
            drop(pieces)
            drop(buffer)
            return out
        }
    }
}
