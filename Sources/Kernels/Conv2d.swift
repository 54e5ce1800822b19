import Runtime

/// 2-D convolution on channel-major activations `(C, N, H, W)` with PyTorch-shaped weights
/// `(Cout, Cin, kh, kw)`.
///
/// Seen as matrices, x is `Cin × (N·H·W)` and y is `Cout × (N·Ho·Wo)` (row stride N·Ho·Wo, so
/// channel views of a larger buffer work unchanged), and the weight is `Cout × (Cin·kh·kw)`.
/// - A 1x1 convolution with stride 1 and no padding is one product, y = W·x
///   (`Conv2d+Pointwise.swift`).
/// - Stride 1 with output rows as wide as the input rows (3x3 pad 1, DenseNet's growth
///   convolutions) is a sum of one product per kernel tap read straight from x, with no im2col
///   (`Conv2d+Shifted.swift`).
/// - Every other convolution (strided, the 7x7 stem) gathers im2col columns `(Cin·kh·kw) × tile`
///   of a few hundred output positions at a time into a counted scratch tile and multiplies,
///   y[:, tile] = W·cols, writing straight into y's columns (`Conv2d+Im2col.swift`).
/// Both tiled paths (`Conv2d+Tiled.swift`) bound their tiles by `workspaceLimitBytes`, so no
/// full-size column matrix is ever made, and split the work across our threads, each running
/// one-thread OpenBLAS.
/// Backward passes accumulate (+=) into every gradient they are given; nil ones are skipped. dx
/// alone may be written instead (`overwriteDx`), for a gradient buffer nothing was added to yet:
/// the product writes it (beta 0, the thin kernel's store) where it can, saving the pass that
/// would zero it first.
public enum Conv2d {
    /// Bound on im2col workspace bytes per call (columns are tiled to stay under it). Default 16 MiB.
    ///
    /// The bound covers all threads' tiles together (each thread gets an equal share). Peak
    /// scratch of one call is at most
    ///   max(workspaceLimitBytes, threads · Memory.byteCount(Cin·kh·kw + kw·Cout))   (tiles, ≥ 1 column each)
    ///   + Memory.byteCount(Cout·Cin·kh·kw)              (tap-major weight copy of the stride-1 path)
    ///   + Memory.byteCount(threads · Cout·Cin·kh·kw)    (dW partial sums, backward only)
    /// The weight-sized terms do not grow with the batch or the image size.
    nonisolated(unsafe) public static var workspaceLimitBytes: Int = 16 << 20

    /// Preferred bytes of one thread's column tile: small enough to stay in the L2 cache between
    /// the gather and the product that reads it (measured with bench-kernels).
    nonisolated(unsafe) static var preferredTileBytes: Int = 512 << 10

    /// Output shape (Cout, N, Ho, Wo) for x (Cin, N, H, W) and weight (Cout, Cin, kh, kw).
    public static func outputShape(input: [Int], weight: [Int], _ p: ConvParameters) -> [Int] {
        precondition(input.count == 4 && weight.count == 4,
                     "Conv2d: input \(input) must be (Cin, N, H, W) and weight \(weight) (Cout, Cin, kh, kw)")
        precondition(input[0] == weight[1],
                     "Conv2d: input \(input) has \(input[0]) channels but weight \(weight) expects \(weight[1])")
        precondition(weight[2] == p.kernelH && weight[3] == p.kernelW,
                     "Conv2d: weight \(weight) does not match kernel \(p.kernelH)x\(p.kernelW)")
        let (ho, wo) = p.outputSize(height: input[2], width: input[3])
        precondition(ho >= 1 && wo >= 1,
                     "Conv2d: input \(input) is smaller than the padded kernel (\(p)), output would be \(ho)x\(wo)")
        return [weight[0], input[1], ho, wo]
    }

    /// FLOPs of one forward (2·Cout·Cin·kh·kw·N·Ho·Wo), for benchmarks. Backward (dx + dW) is twice this.
    public static func forwardFLOPs(input: [Int], weight: [Int], _ p: ConvParameters) -> Double {
        let out = outputShape(input: input, weight: weight, p)
        return 2 * Double(weight[0]) * Double(weight[1] * weight[2] * weight[3]) * Double(out[1] * out[2] * out[3])
    }

    /// y (Cout,N,Ho,Wo) = conv(x (Cin,N,H,W), weight (Cout,Cin,kh,kw)) + bias (Cout) if given.
    /// Overwrites y, which may be a channel view of a larger buffer.
    public static func forward(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: ConvParameters, into y: Tensor) {
        let span = Profile.begin(profileOperation(p, backward: false)); defer { Profile.end(span) }
        let g = ConvGeometry(x: x, weight: weight, p, kernel: "forward")
        g.check(output: y, name: "y", kernel: "forward")
        g.check(bias: bias, name: "bias", kernel: "forward")
        guard g.columns > 0 else { return }
        if let dryRun = DryRun.current {
            dryRun.scratch(forwardScratchBytes(input: x.shape, weight: weight.shape, p, threads: dryRun.threads,
                                               concurrent: dryRun.concurrentTiles))
            let parts = p.isPointwise ? pointwiseForwardParts(g, threads: dryRun.threads) : forwardParts(g, threads: dryRun.threads)
            dryRun.product(flops: 2 * Double(g.cout) * Double(g.rows) * Double(g.columns), parts: parts)
            return
        }
        Gemm.useOneBLASThread()
        if p.isPointwise {
            pointwiseForward(x.pointer, weight: weight.pointer, g, y: y.pointer)
        } else {
            tiledForward(x.pointer, weight: weight.pointer, g, y: y.pointer)
        }
        if let bias { addBias(bias.pointer, to: y.pointer, g) }
    }

    /// dx += dL/dx (Cin,N,H,W) (dx = with `overwriteDx`, its contents before never read),
    /// dWeight += dL/dW, dBias += dL/db.
    public static func backward(_ dy: Tensor, x: Tensor, weight: Tensor, _ p: ConvParameters,
                                dx: Tensor?, dWeight: Tensor?, dBias: Tensor?, overwriteDx: Bool = false) {
        let span = Profile.begin(profileOperation(p, backward: true)); defer { Profile.end(span) }
        let g = ConvGeometry(x: x, weight: weight, p, kernel: "backward")
        g.check(output: dy, name: "dy", kernel: "backward")
        if let dx {
            precondition(dx.shape == x.shape && dx.isContiguous,
                         "Conv2d.backward: dx \(dx.shape) (contiguous: \(dx.isContiguous)) must match x \(x.shape) and be contiguous")
        }
        if let dWeight {
            precondition(dWeight.shape == weight.shape && dWeight.isContiguous,
                         "Conv2d.backward: dWeight \(dWeight.shape) must match weight \(weight.shape) and be contiguous")
        }
        g.check(bias: dBias, name: "dBias", kernel: "backward")
        guard g.columns > 0 else { return }
        if let dryRun = DryRun.current {
            dryRun.scratch(backwardScratchBytes(input: x.shape, weight: weight.shape, p, inputGradient: dx != nil,
                                                weightGradient: dWeight != nil, threads: dryRun.threads,
                                                concurrent: dryRun.concurrentTiles, overwritingInputGradient: overwriteDx))
            let flops = 2 * Double(g.cout) * Double(g.rows) * Double(g.columns), t = dryRun.threads
            if p.isPointwise {
                if dx != nil { dryRun.product(flops: flops, parts: pointwiseInputGradientParts(g, threads: t, overwriting: overwriteDx)) }
                if dWeight != nil { dryRun.product(flops: flops, parts: pointwiseWeightGradientParts(g, threads: t)) }
            } else if dx != nil || dWeight != nil {
                let parts = backwardPlan(g, threads: t, inputGradient: dx != nil).parts
                dryRun.product(flops: flops * Double((dx != nil ? 1 : 0) + (dWeight != nil ? 1 : 0)), parts: parts)
            }
            return
        }
        Gemm.useOneBLASThread()
        if let dBias { accumulateRowSums(dy.pointer, g, into: dBias.pointer) }
        if dx == nil && dWeight == nil { return }
        if p.isPointwise {
            pointwiseBackward(dy.pointer, x: x.pointer, weight: weight.pointer, g,
                              dx: dx?.pointer, dWeight: dWeight?.pointer, overwriteDx: overwriteDx)
        } else {
            tiledBackward(dy.pointer, x: x.pointer, weight: weight.pointer, g,
                          dx: dx?.pointer, dWeight: dWeight?.pointer, overwriteDx: overwriteDx)
        }
    }

    /// The class `bench-memory --profile` counts a call in.
    @inline(__always)
    static func profileOperation(_ p: ConvParameters, backward: Bool) -> Profile.Operation {
        if p.isPointwise { return backward ? .conv1x1Backward : .conv1x1Forward }
        if p.kernelH == 3 && p.kernelW == 3 { return backward ? .conv3x3Backward : .conv3x3Forward }
        return backward ? .convOtherBackward : .convOtherForward
    }

    // MARK: Bias

    /// y[co, :] += bias[co]. // (Cout, N, Ho, Wo)
    static func addBias(_ bias: UnsafePointer<Float>, to y: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
        let columns = g.columns
        Parallel.forRanges(g.cout, minChunk: max(1, 65536 / columns)) { rows in
            for co in rows {
                let row = y + co * columns, b = bias[co]
                for j in 0..<columns { row[j] += b }
            }
        }
    }

    /// dBias[co] += Σ_j dy[co, j]. // (Cout, N, Ho, Wo)
    static func accumulateRowSums(_ dy: UnsafePointer<Float>, _ g: ConvGeometry, into dBias: UnsafeMutablePointer<Float>) {
        let columns = g.columns
        Parallel.forRanges(g.cout, minChunk: max(1, 65536 / columns)) { rows in
            for co in rows {
                let row = dy + co * columns
                // Eight interleaved Float sums vectorise; they are combined in Double.
                var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
                var s4: Float = 0, s5: Float = 0, s6: Float = 0, s7: Float = 0
                var j = 0
                var total = 0.0
                while j + 8 <= columns {
                    s0 += row[j]; s1 += row[j + 1]; s2 += row[j + 2]; s3 += row[j + 3]
                    s4 += row[j + 4]; s5 += row[j + 5]; s6 += row[j + 6]; s7 += row[j + 7]
                    j += 8
                    if j & 4095 == 0 {   // flush now and then so long rows keep Float precision
                        total += Double(s0 + s1 + s2 + s3) + Double(s4 + s5 + s6 + s7)
                        s0 = 0; s1 = 0; s2 = 0; s3 = 0; s4 = 0; s5 = 0; s6 = 0; s7 = 0
                    }
                }
                total += Double(s0 + s1 + s2 + s3) + Double(s4 + s5 + s6 + s7)
                while j < columns { total += Double(row[j]); j += 1 }
                dBias[co] += Float(total)
            }
        }
    }
}

/// Sizes of one convolution, checked once per call.
struct ConvGeometry {
    let cin: Int, cout: Int, n: Int, h: Int, w: Int, ho: Int, wo: Int
    let kh: Int, kw: Int, sh: Int, sw: Int, ph: Int, pw: Int

    /// kh·kw
    var kernelArea: Int { kh * kw }
    /// Rows of the im2col matrix and columns of the weight matrix: Cin·kh·kw.
    var rows: Int { cin * kh * kw }
    /// Columns of y (and of the im2col matrix): N·Ho·Wo.
    var columns: Int { n * ho * wo }
    /// Row stride of x as a matrix: N·H·W.
    var inputColumns: Int { n * h * w }

    init(x: Tensor, weight: Tensor, _ p: ConvParameters, kernel: String) {
        precondition(x.rank == 4 && x.isContiguous,
                     "Conv2d.\(kernel): x \(x.shape) must be a contiguous (Cin, N, H, W) tensor (strides \(x.strides))")
        precondition(weight.isContiguous, "Conv2d.\(kernel): weight \(weight.shape) must be contiguous")
        self.init(input: x.shape, weight: weight.shape, p)
    }

    init(input: [Int], weight: [Int], _ p: ConvParameters) {
        let out = Conv2d.outputShape(input: input, weight: weight, p)
        cin = input[0]; n = input[1]; h = input[2]; w = input[3]
        cout = weight[0]; ho = out[2]; wo = out[3]
        kh = p.kernelH; kw = p.kernelW; sh = p.strideH; sw = p.strideW; ph = p.padH; pw = p.padW
    }

    var outputShape: [Int] { [cout, n, ho, wo] }

    /// Stride 1 and output rows as wide as input rows: im2col rows are shifted input planes
    /// (the per-tap path of Conv2d+Shifted.swift).
    var hasUnitStrideRows: Bool { sh == 1 && sw == 1 && wo == w }

    func check(output y: Tensor, name: String, kernel: String) {
        precondition(y.shape == outputShape && y.isContiguous,
                     "Conv2d.\(kernel): \(name) \(y.shape) must be a contiguous \(outputShape) for x \([cin, n, h, w]) and weight \([cout, cin, kh, kw])")
    }

    func check(bias: Tensor?, name: String, kernel: String) {
        guard let bias else { return }
        precondition(bias.shape == [cout] && bias.isContiguous,
                     "Conv2d.\(kernel): \(name) \(bias.shape) must be [\(cout)] for weight \([cout, cin, kh, kw])")
    }
}
