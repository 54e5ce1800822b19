import XCTest
import Runtime
import Kernels

/// One convolution to test: shapes, parameters, bias or not.
struct ConvCase: CustomStringConvertible {
    var cin: Int, cout: Int, n: Int, h: Int, w: Int
    var p: ConvParameters
    var bias: Bool

    var inputShape: [Int] { [cin, n, h, w] }
    var weightShape: [Int] { [cout, cin, p.kernelH, p.kernelW] }
    var outputShape: [Int] { Conv2d.outputShape(input: inputShape, weight: weightShape, p) }
    var description: String { "x \(inputShape) w \(weightShape) \(p) bias \(bias)" }
}

/// Saves and restores the global tuning knobs a test changes.
func withConvSettings(threads: Int, workspace: Int, parallelWork: Int = 0, _ body: () throws -> Void) rethrows {
    let saved = (Parallel.threadCount, Conv2d.workspaceLimitBytes, Conv2d.parallelWorkThreshold)
    Parallel.threadCount = threads
    Conv2d.workspaceLimitBytes = workspace
    Conv2d.parallelWorkThreshold = parallelWork
    defer { (Parallel.threadCount, Conv2d.workspaceLimitBytes, Conv2d.parallelWorkThreshold) = saved }
    try body()
}

/// Runs `body` for every case on every C kernel level the CPU supports and on 1, 2 and 3
/// threads, inside that level and thread count with the full workspace: the thin-kernel tests'
/// sweep (Conv2dMicrokernelTests, Conv2dWeightGradientKernelTests).
func forEveryKernelLevelAndThreads(_ cases: [ConvCase], _ body: (KernelLevel, ConvCase, Int) -> Void) {
    for level in KernelLevel.supported where level != .swiftReference {
        for c in cases {
            for threads in [1, 2, 3] {
                KernelLevel.with(level) {
                    withConvSettings(threads: threads, workspace: Conv2d.workspaceLimitBytes) { body(level, c, threads) }
                }
            }
        }
    }
}

final class Conv2dTests: XCTestCase {
    /// Shapes covering every path: 1x1 (one product), 3x3 pad 1, 7x7 stride 2 pad 3, 3x3 stride 2,
    /// 1x1 stride 2 (im2col), a non-square kernel and stride, stride 1 with Wo = W but Ho ≠ H,
    /// a 5x5 kernel on a 3x2 image, odd sizes, batch 1, 2 and 3.
    static let cases: [ConvCase] = [
        ConvCase(cin: 5, cout: 7, n: 3, h: 6, w: 5, p: ConvParameters(kernel: 1), bias: false),
        ConvCase(cin: 4, cout: 6, n: 3, h: 7, w: 9, p: ConvParameters(kernel: 3, padding: 1), bias: true),
        ConvCase(cin: 3, cout: 5, n: 1, h: 11, w: 13, p: ConvParameters(kernel: 7, stride: 2, padding: 3), bias: false),
        ConvCase(cin: 4, cout: 3, n: 3, h: 9, w: 8, p: ConvParameters(kernel: 3, stride: 2), bias: true),
        ConvCase(cin: 6, cout: 4, n: 3, h: 7, w: 7, p: ConvParameters(kernel: 1, stride: 2), bias: false),
        ConvCase(cin: 3, cout: 4, n: 2, h: 5, w: 7, p: ConvParameters(kernel: 3, padding: 1), bias: false),
        ConvCase(cin: 9, cout: 2, n: 1, h: 6, w: 5, p: ConvParameters(kernel: 3, padding: 1), bias: true),
        ConvCase(cin: 2, cout: 3, n: 3, h: 6, w: 7,
                 p: ConvParameters(kernelH: 3, kernelW: 2, strideH: 1, strideW: 2, padH: 2, padW: 1), bias: true),
        // Stride 1 with Wo = W (the shifted-plane gather) but Ho ≠ H, and a kernel wider than the image.
        ConvCase(cin: 3, cout: 4, n: 2, h: 5, w: 6,
                 p: ConvParameters(kernelH: 3, kernelW: 3, strideH: 1, strideW: 1, padH: 0, padW: 1), bias: false),
        ConvCase(cin: 2, cout: 3, n: 3, h: 3, w: 2, p: ConvParameters(kernel: 5, padding: 2), bias: true),
        // The per-tap path with a 5x5 kernel (two rows and columns of padding at each image
        // edge) on a non-square image, several images to a tile.
        ConvCase(cin: 3, cout: 5, n: 4, h: 6, w: 9, p: ConvParameters(kernel: 5, padding: 2), bias: false),
        // Stride 1 with Wo = W and Ho > H: whole output rows of padding.
        ConvCase(cin: 2, cout: 3, n: 3, h: 4, w: 5,
                 p: ConvParameters(kernelH: 1, kernelW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1), bias: true),
    ]

    // MARK: Parameters and shapes

    func testOutputSizeAndFLOPs() {
        let stem = ConvParameters(kernel: 7, stride: 2, padding: 3)
        XCTAssertTrue(stem.outputSize(height: 224, width: 224) == (112, 112))
        XCTAssertTrue(ConvParameters(kernel: 3, stride: 2).outputSize(height: 9, width: 8) == (4, 3))
        XCTAssertTrue(ConvParameters(kernel: 5).outputSize(height: 3, width: 9) == (0, 5))
        XCTAssertEqual(Conv2d.outputShape(input: [3, 2, 224, 224], weight: [64, 3, 7, 7], stem), [64, 2, 112, 112])
        XCTAssertEqual(Conv2d.forwardFLOPs(input: [48, 64, 32, 32], weight: [12, 48, 3, 3], ConvParameters(kernel: 3, padding: 1)),
                       2.0 * 12 * 48 * 9 * 64 * 32 * 32)
    }

    /// The reference against values worked out by hand: an all-ones 3x3 kernel sums neighbourhoods.
    func testReferenceForwardByHand() {
        let x = Tensor(shape: [1, 1, 3, 3], values: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        let w = Tensor.filled([2, 1, 3, 3], 1)
        w[1, 0, 1, 1] = 3   // second filter: neighbourhood sum plus twice the centre
        let b = Tensor(shape: [2], values: [0, 0.5])
        let y = Tensor(shape: [2, 1, 3, 3])
        Conv2d.forwardReference(x, weight: w, bias: b, ConvParameters(kernel: 3, padding: 1), into: y)
        XCTAssertEqual(y.array, [12, 21, 16, 27, 45, 33, 24, 39, 28,
                                 14.5, 25.5, 22.5, 35.5, 55.5, 45.5, 38.5, 55.5, 46.5])
        let strided = Tensor(shape: [2, 1, 2, 2])
        Conv2d.forwardReference(x, weight: w, bias: nil, ConvParameters(kernel: 3, stride: 2, padding: 1), into: strided)
        XCTAssertEqual(strided.array, [12, 16, 24, 28, 14, 22, 38, 46])
    }

    // MARK: Fast against reference

    /// Forward, dx, dW and dB of the fast path against the reference, for every case, on 1, 2 and
    /// 3 threads, with workspaces of one column per thread, a few columns (tiles smaller than an
    /// output row, crossing rows and images) and the default.
    func testFastMatchesReference() {
        for c in Self.cases {
            for threads in [1, 2, 3] {
                for workspace in [1, 3000, Conv2d.workspaceLimitBytes] {
                    withConvSettings(threads: threads, workspace: workspace) {
                        checkAgainstReference(c, context: "threads \(threads) workspace \(workspace)")
                    }
                }
            }
        }
    }

    /// The per-tap (stride 1, 3x3 pad 1) path with tiles that start and end inside images and
    /// rows, span several images, or hold one image's last row and the next one's first: forward
    /// tiles of 1 to 67 columns on 5x7 images (35 per image; backward's tiles, whose workspace
    /// holds kw·Cout rows per column, are a third as wide), and the default; on 1 and 2 threads,
    /// backward split by images (batch 6) and by channels (batch 5). A tap's shift reads the
    /// neighbouring row or image at the edges, which must count as padding.
    func testShiftedTilesAcrossImages() {
        for (n, split) in [(5, Conv2d.BackwardSplit.channels), (6, .images)] {
            let c = ConvCase(cin: 5, cout: 4, n: n, h: 5, w: 7, p: ConvParameters(kernel: 3, padding: 1), bias: false)
            withConvSettings(threads: 2, workspace: Conv2d.workspaceLimitBytes) {
                XCTAssertEqual(Conv2d.backwardSplit(input: c.inputShape, weight: c.weightShape, c.p, inputGradient: true), split)
            }
            checkShiftedTiles(c)
        }
    }

    func checkShiftedTiles(_ c: ConvCase) {
        let floatsPerColumn = c.cout * MemoryLayout<Float>.stride
        for threads in [1, 2] {
            for width in [1, 6, 7, 8, 34, 35, 36, 41, 67, 105, 201, 1 << 20] {
                // The limit is split among threads and less Memory.alignment each (byteCount rounds up).
                let workspace = width >= 1 << 20 ? Conv2d.workspaceLimitBytes
                    : threads * (width * floatsPerColumn + Memory.alignment)
                withConvSettings(threads: threads, workspace: workspace) {
                    checkAgainstReference(c, context: "threads \(threads) tile \(width)")
                    checkAgainstReference(c, context: "threads \(threads) tile \(width), no dx", inputGradient: false)
                }
            }
        }
    }

    /// The split paths of backward, for the per-tap (stride 1) and the im2col path each: by
    /// channels (many channels, or an odd batch), by whole images (few channels, even batch),
    /// by columns (no dx); without the thin kernel (next test).
    func testBackwardSplits() {
        Conv2d.thinKernels = .off
        defer { Conv2d.thinKernels = .measured }
        let split = [
            ConvCase(cin: 16, cout: 5, n: 3, h: 9, w: 8, p: ConvParameters(kernel: 3, padding: 1), bias: false),
            ConvCase(cin: 3, cout: 12, n: 4, h: 10, w: 9, p: ConvParameters(kernel: 3, padding: 1), bias: true),
            ConvCase(cin: 3, cout: 8, n: 1, h: 23, w: 21, p: ConvParameters(kernel: 7, stride: 2, padding: 3), bias: false),
            ConvCase(cin: 3, cout: 6, n: 4, h: 11, w: 10, p: ConvParameters(kernel: 3, stride: 2, padding: 1), bias: true),
        ]
        let expected: [Conv2d.BackwardSplit] = [.channels, .images, .channels, .images]
        for (c, split) in zip(split, expected) {
            withConvSettings(threads: 2, workspace: 4096) {
                let chosen = { (dx: Bool) in Conv2d.backwardSplit(input: c.inputShape, weight: c.weightShape, c.p, inputGradient: dx) }
                XCTAssertEqual(chosen(false), .columns)
                XCTAssertEqual(chosen(true), split, "\(c)")
                checkAgainstReference(c, context: "split")
                checkAgainstReference(c, context: "split, no dx", inputGradient: false)
            }
        }
    }

    /// With the thin kernel, an odd batch splits positions instead of channels (the kernel gathers
    /// each dx position, so ranges may cut through images), checked against the reference on 2
    /// and 3 threads; an even batch still splits images, and where the kernel's rows do not fit
    /// the workspace, channels again.
    func testThinBackwardSplitsPositionsOnAnOddBatch() {
        Conv2d.thinKernels = .always
        defer { Conv2d.thinKernels = .measured }
        let odd = ConvCase(cin: 16, cout: 8, n: 3, h: 9, w: 8, p: ConvParameters(kernel: 3, padding: 1), bias: false)
        let even = ConvCase(cin: 16, cout: 8, n: 6, h: 9, w: 8, p: ConvParameters(kernel: 3, padding: 1), bias: true)
        for threads in [2, 3] {
            for (c, split) in [(odd, Conv2d.BackwardSplit.columns), (even, .images)] {
                withConvSettings(threads: threads, workspace: Conv2d.workspaceLimitBytes) {
                    let expected: Conv2d.BackwardSplit = c.n % threads == 0 ? .images : split
                    XCTAssertEqual(Conv2d.backwardSplit(input: c.inputShape, weight: c.weightShape, c.p, inputGradient: true),
                                   expected, "\(c), \(threads) threads")
                    checkAgainstReference(c, context: "thin split, \(threads) threads")
                }
            }
            withConvSettings(threads: threads, workspace: 256) {
                XCTAssertEqual(Conv2d.backwardSplit(input: odd.inputShape, weight: odd.weightShape, odd.p, inputGradient: true),
                               odd.n % threads == 0 ? .images : .channels, "\(odd), \(threads) threads, 256-byte workspace")
                checkAgainstReference(odd, context: "thin split, no room, \(threads) threads")
            }
        }
    }

    /// A 1x1 convolution long enough that `Gemm.multiply` splits columns (forward, dx) and the
    /// inner dimension (dW, with partial sums).
    func testPointwiseLargeSplitsGemm() {
        let c = ConvCase(cin: 16, cout: 8, n: 2, h: 64, w: 64, p: ConvParameters(kernel: 1), bias: true)
        withConvSettings(threads: 2, workspace: Conv2d.workspaceLimitBytes) {
            checkAgainstReference(c, context: "pointwise split")
        }
    }

    /// A 1x1 forward of more than 64 outputs is ours from `pointwiseForwardMinimumColumnsForWide`
    /// (1024) positions, where the CPU level gives us the product at all, and OpenBLAS's below
    /// (Conv2d+Pointwise.swift): both sides match the reference.
    func testWidePointwiseForwardBelowAndAboveTheColumnsThreshold() {
        for (n, side) in [(8, 7), (2, 24)] {   // 392 and 1152 positions
            let c = ConvCase(cin: 40, cout: 72, n: n, h: side, w: side, p: ConvParameters(kernel: 1), bias: false)
            withConvSettings(threads: 2, workspace: Conv2d.workspaceLimitBytes) {
                checkAgainstReference(c, context: "wide pointwise, \(n * side * side) positions")
            }
        }
    }

    /// The 1x1 weight gradient of at most 64 outputs, a whole number of vectors, by our product
    /// (`ownsPointwiseWeightGradient`, Conv2d+Pointwise.swift) on every kernel level and 1–3
    /// threads: positions that are not a whole number of strips (512) or vectors, fewer than one
    /// part's 256, dW added to, against the reference; and the planner counts that product's
    /// scratch (each part's partial and strip), so it is the path these cases took.
    func testPointwiseWeightGradientByOurProduct() {
        let saved = Conv2d.smallProductKernel
        defer { Conv2d.smallProductKernel = saved }
        Conv2d.smallProductKernel = .always
        let cases = [ConvCase(cin: 37, cout: 48, n: 3, h: 13, w: 29, p: ConvParameters(kernel: 1), bias: false),
                     ConvCase(cin: 5, cout: 16, n: 1, h: 5, w: 7, p: ConvParameters(kernel: 1), bias: true),
                     ConvCase(cin: 70, cout: 64, n: 2, h: 16, w: 40, p: ConvParameters(kernel: 1), bias: false)]
        forEveryKernelLevelAndThreads(cases) { level, c, threads in
            checkAgainstReference(c, context: "\(level), \(threads) threads", inputGradient: false)
        }
        let bytes = Conv2d.backwardScratchBytes(input: [37, 3, 13, 29], weight: [48, 37, 1, 1], ConvParameters(kernel: 1),
                                                inputGradient: false, weightGradient: true, threads: 3)
        XCTAssertEqual(bytes, Memory.byteCount(elements: 3 * (37 * 48 + 512 * 48)))
    }

    /// A 1x1 forward with 1 MiB of output or more stores it past the caches
    /// (`pointwiseForwardStreams`, Conv2d+Pointwise.swift): 16→8 on 2×128×128 (8 × 32,768 floats),
    /// also into a channel view of a larger buffer, and 16→9 on 2×127×127, whose rows are not a
    /// whole number of vectors (the kernel falls back to plain stores), match the reference on 1
    /// and 2 threads.
    func testPointwiseForwardWithLargeOutput() {
        let aligned = ConvCase(cin: 16, cout: 8, n: 2, h: 128, w: 128, p: ConvParameters(kernel: 1), bias: false)
        let odd = ConvCase(cin: 16, cout: 9, n: 2, h: 127, w: 127, p: ConvParameters(kernel: 1), bias: true)
        for threads in [1, 2] {
            withConvSettings(threads: threads, workspace: Conv2d.workspaceLimitBytes) {
                checkAgainstReference(aligned, context: "1 MiB of output, \(threads) threads")
                checkAgainstReference(odd, context: "1.1 MiB of output in odd rows, \(threads) threads")
                let c = aligned
                let x = Tensor.randomUniform(c.inputShape, seed: 41), w = Tensor.randomUniform(c.weightShape, seed: 42)
                let buffer = Tensor.filled([c.cout + 2, c.n, c.h, c.w], 7), y = buffer.channels(1..<(c.cout + 1))
                let yRef = Tensor(shape: c.outputShape)
                Conv2d.forward(x, weight: w, bias: nil, c.p, into: y)
                Conv2d.forwardReference(x, weight: w, bias: nil, c.p, into: yRef)
                XCTAssertLessThan(GradientCheck.relativeError(y.array, yRef.array), 1e-5, "channel view, \(threads) threads")
                let outside = buffer.channels(0..<1).array + buffer.channels((c.cout + 1)..<(c.cout + 2)).array
                XCTAssertTrue(outside.allSatisfy { $0 == 7 }, "written outside the view, \(threads) threads")
            }
        }
    }

    // MARK: Reference against finite differences

    /// The reference backward against central differences of the reference forward, for
    /// x, weight and bias, with stride, padding and an odd-sized input.
    func testReferenceBackwardMatchesFiniteDifferences() {
        let shapes = [
            ConvCase(cin: 2, cout: 3, n: 2, h: 5, w: 4, p: ConvParameters(kernel: 3, stride: 2, padding: 1), bias: true),
            ConvCase(cin: 3, cout: 2, n: 1, h: 4, w: 5, p: ConvParameters(kernel: 1), bias: true),
            ConvCase(cin: 1, cout: 2, n: 2, h: 6, w: 5,
                     p: ConvParameters(kernelH: 2, kernelW: 3, strideH: 2, strideW: 1, padH: 0, padW: 1), bias: true),
        ]
        for c in shapes {
            let x = Tensor.randomUniform(c.inputShape, seed: 11)
            let w = Tensor.randomUniform(c.weightShape, seed: 12)
            let b = Tensor.randomUniform([c.cout], seed: 13)
            let y = Tensor(shape: c.outputShape)
            let weights = Tensor.randomUniform(c.outputShape, seed: 14)   // loss = Σ weights·y, so dy = weights
            let loss = { () -> Double in
                Conv2d.forwardReference(x, weight: w, bias: b, c.p, into: y)
                return GradientCheck.weightedSum(y, weights.array)
            }
            let dx = Tensor.zeros(c.inputShape), dw = Tensor.zeros(c.weightShape), db = Tensor.zeros([c.cout])
            Conv2d.backwardReference(weights, x: x, weight: w, c.p, dx: dx, dWeight: dw, dBias: db)
            XCTAssertLessThan(GradientCheck.relativeError(dx.array, GradientCheck.numericalGradient(of: x, loss)), 1e-3, "dx \(c)")
            XCTAssertLessThan(GradientCheck.relativeError(dw.array, GradientCheck.numericalGradient(of: w, loss)), 1e-3, "dW \(c)")
            XCTAssertLessThan(GradientCheck.relativeError(db.array, GradientCheck.numericalGradient(of: b, loss)), 1e-3, "dB \(c)")
        }
    }

    // MARK: Accumulation and views

    /// Two backward calls into zeroed gradients give twice the reference gradient of one.
    func testBackwardAccumulates() {
        for c in [Self.cases[0], Self.cases[1], Self.cases[2]] {
            withConvSettings(threads: 2, workspace: 3000) {
                let x = Tensor.randomUniform(c.inputShape, seed: 21), w = Tensor.randomUniform(c.weightShape, seed: 22)
                let dy = Tensor.randomUniform(c.outputShape, seed: 23)
                let dx = Tensor.zeros(c.inputShape), dw = Tensor.zeros(c.weightShape), db = Tensor.zeros([c.cout])
                for _ in 0..<2 { Conv2d.backward(dy, x: x, weight: w, c.p, dx: dx, dWeight: dw, dBias: db) }
                let dxRef = Tensor.zeros(c.inputShape), dwRef = Tensor.zeros(c.weightShape), dbRef = Tensor.zeros([c.cout])
                Conv2d.backwardReference(dy, x: x, weight: w, c.p, dx: dxRef, dWeight: dwRef, dBias: dbRef)
                let twice = { (t: Tensor) in t.array.map { 2 * $0 } }
                XCTAssertLessThan(GradientCheck.relativeError(dx.array, twice(dxRef)), 1e-5, "dx \(c)")
                XCTAssertLessThan(GradientCheck.relativeError(dw.array, twice(dwRef)), 1e-5, "dW \(c)")
                XCTAssertLessThan(GradientCheck.relativeError(db.array, twice(dbRef)), 1e-5, "dB \(c)")
            }
        }
    }

    /// x, y, dy and dx as channel views of larger buffers: results match contiguous copies, and
    /// nothing outside the slices is written.
    func testChannelViewsOfLargerBuffers() {
        for c in [Self.cases[0], Self.cases[1], Self.cases[3]] {
            withConvSettings(threads: 2, workspace: 3000) {
                let (n, h, w) = (c.n, c.h, c.w)
                let (ho, wo) = (c.outputShape[2], c.outputShape[3])
                let xBuffer = Tensor.randomUniform([c.cin + 3, n, h, w], seed: 31)
                let yBuffer = Tensor.filled([c.cout + 2, n, ho, wo], 7)
                let dyBuffer = Tensor.randomUniform([c.cout + 4, n, ho, wo], seed: 32)
                let dxBuffer = Tensor.filled([c.cin + 5, n, h, w], 9)
                let x = xBuffer.channels(2..<(2 + c.cin)), y = yBuffer.channels(1..<(1 + c.cout))
                let dy = dyBuffer.channels(3..<(3 + c.cout)), dx = dxBuffer.channels(4..<(4 + c.cin))
                let wt = Tensor.randomUniform(c.weightShape, seed: 33)
                Conv2d.forward(x, weight: wt, bias: nil, c.p, into: y)
                Conv2d.backward(dy, x: x, weight: wt, c.p, dx: dx, dWeight: nil, dBias: nil)

                let yRef = Tensor(shape: c.outputShape), dxRef = Tensor.filled(c.inputShape, 9)
                Conv2d.forwardReference(x.copy(), weight: wt, bias: nil, c.p, into: yRef)
                Conv2d.backwardReference(dy.copy(), x: x.copy(), weight: wt, c.p, dx: dxRef, dWeight: nil, dBias: nil)
                XCTAssertLessThan(GradientCheck.relativeError(y.array, yRef.array), 1e-5, "y view \(c)")
                XCTAssertLessThan(GradientCheck.relativeError(dx.array, dxRef.array), 1e-5, "dx view \(c)")
                let outsideY = yBuffer.channels(0..<1).array + yBuffer.channels((1 + c.cout)..<(c.cout + 2)).array
                XCTAssertTrue(outsideY.allSatisfy { $0 == 7 }, "y written outside its slice \(c)")
                let outsideDx = dxBuffer.channels(0..<4).array + dxBuffer.channels((4 + c.cin)..<(c.cin + 5)).array
                XCTAssertTrue(outsideDx.allSatisfy { $0 == 9 }, "dx written outside its slice \(c)")
            }
        }
    }
}

/// Fast forward and backward against the reference on one case (Conv2dTests, Conv2dMicrokernelTests).
extension XCTestCase {
    /// Runs fast and reference from the same inputs and the same non-zero starting gradients
    /// (so accumulation, not overwriting, is checked) and compares every output.
    func checkAgainstReference(_ c: ConvCase, context: String, inputGradient: Bool = true,
                               file: StaticString = #filePath, line: UInt = #line) {
        let x = Tensor.randomUniform(c.inputShape, seed: 1)
        let w = Tensor.randomUniform(c.weightShape, seed: 2)
        let b = c.bias ? Tensor.randomUniform([c.cout], seed: 3) : nil
        let dy = Tensor.randomUniform(c.outputShape, seed: 4)
        let y = Tensor.filled(c.outputShape, .nan)     // forward must overwrite every element
        let yRef = Tensor(shape: c.outputShape)
        Conv2d.forward(x, weight: w, bias: b, c.p, into: y)
        Conv2d.forwardReference(x, weight: w, bias: b, c.p, into: yRef)
        let what = "\(c) \(context)"
        XCTAssertLessThan(GradientCheck.relativeError(y.array, yRef.array), 1e-5, "forward \(what)", file: file, line: line)

        let dx = Tensor.randomUniform(c.inputShape, seed: 5), dxRef = dx.copy()
        let dw = Tensor.randomUniform(c.weightShape, seed: 6), dwRef = dw.copy()
        let db = Tensor.randomUniform([c.cout], seed: 7), dbRef = db.copy()
        Conv2d.backward(dy, x: x, weight: w, c.p, dx: inputGradient ? dx : nil, dWeight: dw, dBias: c.bias ? db : nil)
        Conv2d.backwardReference(dy, x: x, weight: w, c.p, dx: inputGradient ? dxRef : nil, dWeight: dwRef,
                                 dBias: c.bias ? dbRef : nil)
        XCTAssertLessThan(GradientCheck.relativeError(dx.array, dxRef.array), 1e-5, "dx \(what)", file: file, line: line)
        XCTAssertLessThan(GradientCheck.relativeError(dw.array, dwRef.array), 1e-5, "dW \(what)", file: file, line: line)
        XCTAssertLessThan(GradientCheck.relativeError(db.array, dbRef.array), 1e-5, "dB \(what)", file: file, line: line)
    }
}
