import Runtime

// How many scratch bytes a kernel call allocates at its peak, for the memory planner
// (`MemoryPlanner` in DenseNetModels, `densenet summary`). Each answer is what `Memory` counts
// for the `.scratch` storages that call holds at once: every storage rounded by
// `Memory.byteCount(elements:)`, the tiles of all threads counted together (they are allocated
// by concurrently running threads). A call too short for the second thread to start before the
// first has finished holds one tile at a time: `concurrent: false` gives that case (each
// thread's tile in turn, the largest counting), a lower bound; the default is the upper bound.
// On one thread the two agree and are exact.
//
// The convolution answers come from the same planning functions the kernels call
// (`forwardParts`, `forwardWorkspace`, `backwardPlan`, `backwardPart`, `backwardWorkspace`,
// `backwardPartialShape`, `makesTapMajorWeights`, `tapMajorShape` in Conv2d+Tiled.swift and
// Conv2d+Shifted.swift), so only the summing is here; MemoryPlannerTests checks the answers
// against the kernels' measured scratch.

extension Conv2d {
    /// Peak scratch bytes of `forward` on `threads` threads (0 for a 1x1 convolution whose
    /// product splits without partial sums), with the threads' tiles live together or, with
    /// `concurrent: false`, one after another. The tap-major weight copy of the per-tap path
    /// is made before the threads start and lives through all their tiles.
    public static func forwardScratchBytes(input: [Int], weight: [Int], _ p: ConvParameters, threads: Int,
                                           concurrent: Bool = true) -> Int {
        let g = ConvGeometry(input: input, weight: weight, p)
        guard g.columns > 0 else { return 0 }
        if p.isPointwise { return pointwiseForwardScratchBytes(g, threads: threads) }
        let parts = forwardParts(g, threads: threads)
        var bytes = 0
        if makesTapMajorWeights(g, multipliesByWeights: true) {
            bytes += Memory.byteCount(elements: tapMajorShape(g).reduce(1, *))
        }
        var tiles = 0
        for t in 0..<parts {
            let (rows, width) = forwardWorkspace(g, parts: parts, columns: Parallel.chunk(t, of: parts, count: g.columns).count)
            guard width > 0 else { continue }
            let tile = Memory.byteCount(elements: rows * width)
            tiles = concurrent ? tiles + tile : max(tiles, tile)
        }
        return bytes + tiles
    }

    /// Peak scratch bytes of `backward` on `threads` threads, with or without dx and dW, with the
    /// threads' tiles live together or, with `concurrent: false`, one after another. The
    /// tap-major weight copy and the dW partial sums are made before the threads start and live
    /// through all their tiles. `overwritingInputGradient`: dx is a fresh buffer to write
    /// (`backward`'s `overwriteDx`), which a 1x1 convolution may compute by our own product.
    public static func backwardScratchBytes(input: [Int], weight: [Int], _ p: ConvParameters, inputGradient: Bool,
                                            weightGradient: Bool, threads: Int, concurrent: Bool = true,
                                            overwritingInputGradient: Bool = false) -> Int {
        let g = ConvGeometry(input: input, weight: weight, p)
        guard g.columns > 0, inputGradient || weightGradient else { return 0 }
        if p.isPointwise {
            // Two products, one after the other: the larger scratch counts.
            let dx = inputGradient
                ? pointwiseInputGradientScratchBytes(g, threads: threads, overwriting: overwritingInputGradient) : 0
            let dW = weightGradient ? pointwiseWeightGradientScratchBytes(g, threads: threads) : 0
            return max(dx, dW)
        }
        let (split, parts) = backwardPlan(g, threads: threads, inputGradient: inputGradient)
        var bytes = 0
        if makesTapMajorWeights(g, multipliesByWeights: inputGradient) {
            bytes += Memory.byteCount(elements: tapMajorShape(g).reduce(1, *))
        }
        let partials = backwardPartialShape(g, split: split, parts: parts, weightGradient: weightGradient)
        if partials[0] > 0 { bytes += Memory.byteCount(elements: partials.reduce(1, *)) }
        var tiles = 0
        for t in 0..<parts {
            let (channels, columns) = backwardPart(t, of: parts, split: split, g)
            if channels.isEmpty || columns.isEmpty { continue }
            let (rows, width) = backwardWorkspace(g, channels: channels.count, parts: parts, columns: columns.count)
            let tile = Memory.byteCount(elements: rows * width)
            tiles = concurrent ? tiles + tile : max(tiles, tile)
        }
        return bytes + tiles
    }
}

extension Pooling {
    /// Scratch bytes of `maxForward` over x (C, N, H, W) on `threads` threads: one row of
    /// column maxima per thread (`Elementwise.parts` over the C·N planes).
    public static func maxForwardScratchBytes(input: [Int], threads: Int) -> Int {
        precondition(input.count == 4, "Pooling.maxForwardScratchBytes: input \(input) is not (C, N, H, W)")
        let planes = input[0] * input[1], planeSize = input[2] * input[3]
        let parts = max(1, min(threads, planes, planes * max(planeSize, 1) / Elementwise.minChunk))
        return Memory.byteCount(elements: parts * input[3])
    }
}
