import CKernels
import Runtime

/// Thin 3x3 convolutions (pad 1, stride 1: DenseNet's growth convolutions, 48→12 or 128→32) by
/// our own register-blocked kernel instead of per-tap OpenBLAS products, which are a poor shape
/// for any GEMM library (12 output rows, Papers/reproduction.md, "Where the time goes").
///
/// The kernel (`conv3x3_rows` of Sources/CKernels, compiled per instruction-set level, chosen
/// by `KernelLevel`) computes the forward, and the input gradient as the forward of dy with the
/// weights transposed and rotated 180°. It runs inside the per-tap path's own threads and
/// scratch (Conv2d+Tiled.swift): the tap-major weight copy holds its packed weights (the same
/// count of floats) and each thread's workspace holds its zero-padded input rows, so the scratch
/// of a call, and the memory planner's prediction of it, is unchanged. The weight gradient has a
/// kernel of its own (`conv3x3_weight_gradient_rows`, Sources/CKernels/Conv3x3WeightGradientTemplate.h):
/// each thread sums its positions into its own tap-major dW partial (the per-tap path's
/// partials, added up as before) and copies its rows into its own workspace, so its scratch is
/// unchanged too. Every shape where a kernel was not measured faster stays with OpenBLAS (`ThinKernelUse`).
/// The per-tap path and the reference (Conv2d+Reference.swift) stay beside it;
/// `Conv2dMicrokernelTests` compares every level with the reference, and `bench-kernels
/// --compare-thin` times it against the per-tap path in alternation.
extension Conv2d {
    /// Where thin 3x3 convolutions use the kernel.
    public enum ThinKernelUse: String, CaseIterable, Sendable {
        /// Never: the per-tap OpenBLAS path (Conv2d+Shifted.swift).
        case off
        /// Where `bench-kernels --compare-thin` measured it faster than the per-tap path: on the
        /// AVX2 and AVX-512 levels, forward and input gradient (median speedups of three
        /// alternated runs 1.03–1.28×; the baseline level's 4-lane version ran at 0.44–0.58× and
        /// is never used), on a shared 2-vCPU Zen 5, Papers/design-notes.md. The weight gradient
        /// kernel on AVX2 and AVX-512, where Cout ≥ 32 against OpenBLAS's AVX-512 kernels and for
        /// every Cout against its AVX2 ones (`thinWeightGradientMeasuredOutputs`): `--compare-thin --threads 2 --repeats 9`, three runs on the same loaded
        /// machine (load 4–6 on 2 cores), speedups of dW alone over the per-tap path: 128→32
        /// (batch 8, 56x56) 1.18 / 1.25 / 1.09 (AVX2), 1.09 / 1.19 / 1.35 (AVX-512); 48→12
        /// (batch 64, 32x32) 0.85 / 0.85 / 0.80 and 0.83 / 0.83 / 0.68, so not there; the whole
        /// 128→32 backward with both kernels 1.07–1.13× (AVX-512) where the dx kernel alone gave
        /// 1.00–1.02× in the first two runs (the third run's per-tap median was an outlier:
        /// 1.80 against 1.58). Baseline level 0.45–0.64×. With 32 outputs or more the backward
        /// kernels (dx, dW) need `thinBackwardMinimumColumns` positions (DenseNet-121's 14x14 and
        /// 7x7 maps at batch 8 are faster per tap).
        case measured
        /// Wherever it can (tests, and benchmarks of every level).
        case always
    }

    /// Where thin 3x3 convolutions use the kernel (default `.measured`).
    nonisolated(unsafe) public static var thinKernels: ThinKernelUse = .measured

    /// Calls (forward, or backward with dx) the kernel took since the process started, counted
    /// on the calling thread: tests check that it ran.
    nonisolated(unsafe) public private(set) static var thinKernelCalls = 0

    /// Backward calls whose weight gradient the kernel computed, counted as `thinKernelCalls`.
    nonisolated(unsafe) public internal(set) static var thinWeightGradientCalls = 0

    /// Whether the kernel computes this convolution's forward (`outputs` = Cout) or input
    /// gradient (`outputs` = Cin) at the active level.
    static func thinKernelApplies(_ g: ConvGeometry, outputs: Int) -> Bool {
        guard thinKernels != .off, let table = KernelLevel.table, g.hasUnitStrideRows, g.kh == 3, g.kw == 3,
              g.ph == 1, g.pw == 1, g.ho == g.h, table.pointee.conv3x3_block_size(outputs) > 0 else { return false }
        return thinKernels == .always || KernelLevel.active.rawValue >= KernelLevel.avx2.rawValue
    }

    /// Whether the kernel computes this convolution's input gradient at the active level.
    static func thinInputGradientApplies(_ g: ConvGeometry) -> Bool {
        thinKernelApplies(g, outputs: g.cin)
            && (thinKernels == .always || g.cout < 32 || g.columns >= thinBackwardMinimumColumns)
    }

    /// Whether the weight gradient kernel computes this convolution's dW at the active level
    /// (it takes any channel counts; `.measured` only where it was measured faster).
    static func thinWeightGradientApplies(_ g: ConvGeometry) -> Bool {
        guard thinKernels != .off, KernelLevel.table != nil, g.hasUnitStrideRows, g.kh == 3, g.kw == 3,
              g.ph == 1, g.pw == 1, g.ho == g.h else { return false }
        return thinKernels == .always
            || (KernelLevel.active.rawValue >= KernelLevel.avx2.rawValue && g.cout >= thinWeightGradientMeasuredOutputs
                && g.columns >= thinBackwardMinimumColumns)
    }

    /// The fewest positions (N·H·W) for which `.measured` takes the backward kernels (dx, dW) of a
    /// 3x3 with 32 or more outputs: below it the per-tap products (M = 32 or 128, K = 128) are
    /// OpenBLAS's good shapes and the kernels' per-image copies weigh more. `bench-kernels
    /// --compare-thin --threads 2 --repeats 7`, two runs, 128→32 at batch 8, whole backward
    /// against per tap: 28x28 (6,272 positions) ×1.07 with both kernels; 14x14 (1,568) ×0.88–0.94,
    /// dx kernel alone ×0.97–1.03; 7x7 (392) ×0.49–0.56, dx alone ×0.81–0.86. 48→12 at batch 64
    /// gains at every size (8x8, 4,096 positions: ×1.88 both, ×1.73 dx alone), so it keeps them.
    static let thinBackwardMinimumColumns = 4096

    /// The fewest output channels for which `.measured` takes the weight gradient kernel: it copies
    /// Cin + Cout rows for Cin·Cout·9 multiply-adds per position, so the copies weigh ~2.7× more
    /// on 48→12 than on 128→32 (ThinKernelUse.measured has the figures). That holds against
    /// OpenBLAS's AVX-512 kernels; against its AVX2 ones, whose 12-row products are slow, the
    /// kernel wins at 48→12 too (dW alone 137–147 against 104 GFLOP/s per tap, the whole backward
    /// 0.74 against 0.60 of square sgemm: `OPENBLAS_CORETYPE=Haswell bench-kernels --compare-thin`),
    /// so it takes every shape there. `bench-kernels --compare-thin` sets it to `Int.max` to time
    /// the other kernels with dW per tap.
    nonisolated(unsafe) public static var thinWeightGradientMeasuredOutputs = Gemm.blasUsesAVX512 ? 32 : 1

    /// The register block (output channels) of the active level's kernel for `outputs` channels.
    static func thinKernelBlock(outputs: Int) -> Int {
        KernelLevel.table!.pointee.conv3x3_block_size(outputs)
    }

    /// Floats of padded rows the kernel needs for `inputs` input channels.
    static func thinKernelPadFloats(_ g: ConvGeometry, inputs: Int) -> Int {
        ck_conv3x3_pad_floats(inputs, g.w)
    }

    /// Packs the weights into `packed` (the tap-major copy's Cout·Cin·9 floats).
    static func packThinKernelWeights(_ weight: UnsafePointer<Float>, _ g: ConvGeometry, inputGradient: Bool,
                                      into packed: UnsafeMutablePointer<Float>) {
        ck_conv3x3_pack(weight, g.cout, g.cin, inputGradient ? 1 : 0, thinKernelBlock(outputs: inputGradient ? g.cin : g.cout),
                        packed)
    }

    /// Forward over output columns `columns`: y[:, columns] = conv(x) with packed weights.
    static func thinForward(_ x: UnsafePointer<Float>, packed: UnsafePointer<Float>, _ g: ConvGeometry,
                            columns: Range<Int>, pad: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>) {
        KernelLevel.table!.pointee.conv3x3_rows(x, g.inputColumns, packed, thinKernelBlock(outputs: g.cout), g.cin, g.cout, g.h, g.w,
                                                columns.lowerBound, columns.upperBound, y, g.columns, 0, pad)
    }

    /// Weight gradient over the positions `columns` for the input channels `channels`:
    /// tapGrad[tap][:, channels] += dy[:, q] · x[channels, q shifted by the tap]ᵀ, tapGrad
    /// (kh·kw, Cout, Cin) as the per-tap path's partials; `pad` holds `padFloats` floats.
    /// // dy (Cout, N, H, W), x (Cin, N, H, W), tapGrad (9, Cout, Cin)
    static func thinWeightGradient(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, _ g: ConvGeometry, channels: Range<Int>,
                                   columns: Range<Int>, pad: UnsafeMutablePointer<Float>, padFloats: Int,
                                   tapGrad: UnsafeMutablePointer<Float>) {
        KernelLevel.table!.pointee.conv3x3_weight_gradient_rows(
            x + channels.lowerBound * g.inputColumns, g.inputColumns, dy, g.columns, channels.count, g.cout, g.h, g.w,
            columns.lowerBound, columns.upperBound, tapGrad + channels.lowerBound, g.cin, pad, padFloats)
    }

    /// Input gradient over the positions `columns` (this thread's images or range of positions:
    /// each dx position is gathered from dy, so ranges may cut through images):
    /// dx[:, columns] += conv(dy, Wᵀ rotated) with packed (transposed) weights (= when not
    /// `accumulate`: every position of the range is written whole).
    static func thinInputGradient(_ dy: UnsafePointer<Float>, packed: UnsafePointer<Float>, _ g: ConvGeometry,
                                  columns: Range<Int>, pad: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                  accumulate: Bool = true) {
        KernelLevel.table!.pointee.conv3x3_rows(dy, g.columns, packed, thinKernelBlock(outputs: g.cin), g.cout, g.cin, g.h, g.w,
                                                columns.lowerBound, columns.upperBound, dx, g.inputColumns,
                                                accumulate ? 1 : 0, pad)
    }
}

extension Conv2d {
    /// The tap-major weight copy's storage (same shape and count, so the same counted scratch),
    /// filled with the kernel's packed weights.
    static func thinKernelWeights(_ weight: UnsafePointer<Float>, _ g: ConvGeometry, inputGradient: Bool) -> Tensor {
        thinKernelCalls += 1
        let packed = Tensor(shape: tapMajorShape(g), category: .scratch)
        packThinKernelWeights(weight, g, inputGradient: inputGradient, into: packed.pointer)
        return packed
    }

    /// Whether every one of `parts` threads' workspaces (`workspace(t)`: rows × columns, 0 columns
    /// for no work) holds the kernel's padded rows of `inputs` channels.
    static func thinKernelFits(_ g: ConvGeometry, inputs: Int, parts: Int, workspace: (Int) -> (rows: Int, columns: Int)) -> Bool {
        let need = thinKernelPadFloats(g, inputs: inputs)
        return (0..<parts).allSatisfy { t in
            let (rows, columns) = workspace(t)
            return columns == 0 || rows * columns >= need
        }
    }

    /// Whether every one of `parts` threads' workspaces (`workspace(t)`: its input channels, and
    /// rows × columns, 0 columns for no work) holds the weight gradient kernel's smallest chunk.
    static func thinWeightGradientFits(_ g: ConvGeometry, parts: Int,
                                       workspace: (Int) -> (channels: Int, rows: Int, columns: Int)) -> Bool {
        (0..<parts).allSatisfy { t in
            let (channels, rows, columns) = workspace(t)
            return columns == 0 || rows * columns >= ck_conv3x3_weight_gradient_floats(channels, g.cout, g.w)
        }
    }
}
