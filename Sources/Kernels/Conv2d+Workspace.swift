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
// (`forwardParts`, `backwardPlan`, `tileColumns`, `backwardWorkspaceRows`); the shapes of the
// partial sums and the tap-major weight copy mirror `tiledBackward` and are checked against
// the kernels' measured scratch in MemoryPlannerTests.

extension Conv2d {
    /// Threads (parts) the tiled forward splits the output columns into.
    static func forwardParts(_ g: ConvGeometry, threads: Int) -> Int {
        let work = g.cout * g.rows * g.columns
        return work < parallelWorkThreshold ? 1 : min(threads, g.columns)
    }

    /// Rows of one backward thread's workspace: its im2col rows (needed for dW, or for dx by
    /// col2im) and, for the shifted input gradient, the masked copies of dy.
    /// Returns (rows of cols, all rows).
    static func backwardWorkspaceRows(_ g: ConvGeometry, ownRows: Int, weightGradient: Bool,
                                      shifted: Bool) -> (cols: Int, total: Int) {
        let colsRows = weightGradient || !shifted ? ownRows : 0
        return (colsRows, colsRows + (shifted ? maskedRows(g) : 0))
    }

    /// Peak scratch bytes of `forward` on `threads` threads (0 for a 1x1 convolution whose
    /// product splits without partial sums), with the threads' tiles live together or, with
    /// `concurrent: false`, one after another.
    public static func forwardScratchBytes(input: [Int], weight: [Int], _ p: ConvParameters, threads: Int,
                                           concurrent: Bool = true) -> Int {
        let g = ConvGeometry(input: input, weight: weight, p)
        guard g.columns > 0 else { return 0 }
        if p.isPointwise {
            return Gemm.multiplyScratchBytes(m: g.cout, n: g.columns, k: g.cin, threads: threads)
        }
        let parts = forwardParts(g, threads: threads)
        let tile = tileColumns(rows: g.rows, threads: parts)
        var tiles = 0
        for t in 0..<parts {
            let width = min(tile, Parallel.chunk(t, of: parts, count: g.columns).count)
            guard width > 0 else { continue }
            let bytes = Memory.byteCount(elements: g.rows * width)
            tiles = concurrent ? tiles + bytes : max(tiles, bytes)
        }
        return tiles
    }

    /// Peak scratch bytes of `backward` on `threads` threads, with or without dx and dW, with the
    /// threads' tiles live together or, with `concurrent: false`, one after another.
    public static func backwardScratchBytes(input: [Int], weight: [Int], _ p: ConvParameters, inputGradient: Bool,
                                            weightGradient: Bool, threads: Int, concurrent: Bool = true) -> Int {
        let g = ConvGeometry(input: input, weight: weight, p)
        guard g.columns > 0, inputGradient || weightGradient else { return 0 }
        if p.isPointwise {
            // Two products, one after the other: the larger scratch counts.
            let dx = inputGradient ? Gemm.multiplyScratchBytes(m: g.cin, n: g.columns, k: g.cout, threads: threads) : 0
            let dW = weightGradient ? Gemm.multiplyScratchBytes(m: g.cout, n: g.cin, k: g.columns, threads: threads) : 0
            return max(dx, dW)
        }
        let (split, parts) = backwardPlan(g, threads: threads, inputGradient: inputGradient)
        let rows = g.rows, area = g.kernelArea, plane = g.ho * g.wo
        var bytes = 0
        if split != .channels && parts > 1 && weightGradient {
            bytes += Memory.byteCount(elements: (parts - 1) * g.cout * rows)   // dW partials
        }
        let shifted = inputGradient && g.hasUnitStrideRows
        if shifted { bytes += Memory.byteCount(elements: area * g.cout * g.cin) }   // tap-major weights
        var tiles = 0
        for t in 0..<parts {
            let channels: Range<Int>, columns: Range<Int>
            switch split {
            case .channels: channels = Parallel.chunk(t, of: parts, count: g.cin); columns = 0..<g.columns
            case .images:
                let images = Parallel.chunk(t, of: parts, count: g.n)
                channels = 0..<g.cin; columns = (images.lowerBound * plane)..<(images.upperBound * plane)
            case .columns: channels = 0..<g.cin; columns = Parallel.chunk(t, of: parts, count: g.columns)
            }
            if channels.isEmpty || columns.isEmpty { continue }
            let workRows = backwardWorkspaceRows(g, ownRows: channels.count * area, weightGradient: weightGradient,
                                                 shifted: shifted).total
            let width = min(tileColumns(rows: workRows, threads: parts), columns.count)
            let tile = Memory.byteCount(elements: workRows * width)
            tiles = concurrent ? tiles + tile : max(tiles, tile)
        }
        return bytes + tiles
    }
}

extension Gemm {
    /// Scratch bytes of `Gemm.multiply(m:n:k:)` on `threads` threads: the per-thread partial
    /// sums of a split inner dimension, `(threads − 1)·m·n` floats, when it takes that split.
    /// Mirrors the branch order of `Gemm.multiply` (Runtime/Gemm.swift).
    public static func multiplyScratchBytes(m: Int, n: Int, k: Int, threads: Int) -> Int {
        let flops = 2.0 * Double(m) * Double(n) * Double(k)
        if threads == 1 || flops < 2e6 { return 0 }
        let partials = Memory.byteCount(elements: (threads - 1) * m * n)
        if k >= 8 * max(m, n) && k >= 256 * threads { return partials }
        if n >= 64 * threads && n >= m { return 0 }
        if m >= 16 * threads { return 0 }
        if k >= 256 * threads { return partials }
        return 0
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
