import CKernels
import Runtime

/// 1x1 convolution, stride 1, no padding: with channel-major activations x is already the
/// im2col matrix, so each pass is one product (split across our threads by `Gemm.multiply`).
extension Conv2d {
    /// y (Cout × P) = W (Cout × Cin) · x (Cin × P), P = N·H·W. // (C, N, H, W)
    static func pointwiseForward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, _ g: ConvGeometry,
                                 y: UnsafeMutablePointer<Float>) {
        let p = g.columns
        guard ownsPointwiseForward(g), let table = KernelLevel.table else {
            Gemm.multiply(m: g.cout, n: p, k: g.cin, a: weight, lda: g.cin, b: x, ldb: p, beta: 0, c: y, ldc: p)
            return
        }
        // Our product, one vector-aligned column range per thread; x read in place; y stored past
        // the caches when it is larger than they would keep for its reader (`pointwiseForwardStreams`).
        let parts = pointwiseForwardParts(g, threads: Parallel.threadCount), vectors = (p + 15) / 16
        let flags: Int32 = pointwiseForwardStreams(g) ? CK_GEMM_STREAM : 0
        Parallel.forEach(parts) { t in
            let chunk = Parallel.chunk(t, of: parts, count: vectors)
            let start = chunk.lowerBound * 16, end = min(p, chunk.upperBound * 16)
            table.pointee.gemm_small_m(weight, g.cin, x + start, p, g.cout, end - start, g.cin, y + start, p, flags)
        }
    }

    /// Whether our 1x1 forward stores y with streaming (non-temporal) stores: from
    /// `pointwiseForwardStreamingBytes` of output, which no cache here keeps until the batch
    /// norm that reads it next, so plain stores only read each line in first. Best of 20–60
    /// calls, 2 threads, alternated three times (GFLOP/s, plain → streaming every output): 216→48
    /// at batch 64 32x32 (12 MiB of y) 137–149 → 154–162, 16x16 (3 MiB) 147–154 → 165–187, 8x8
    /// (0.75 MiB, below the bound) 114–221 → 220–228, the same within noise; DenseNet-121 b8
    /// 256→128 at 56x56 (12 MiB) 172–186 → 185–203, 512→128 at 28x28 (3 MiB) 185–198 → 191–208.
    static func pointwiseForwardStreams(_ g: ConvGeometry) -> Bool {
        g.cout * g.columns * MemoryLayout<Float>.stride >= pointwiseForwardStreamingBytes
    }

    /// Bytes of 1x1 output from which `pointwiseForwardStreams` (1 MiB: about one core's L2).
    static let pointwiseForwardStreamingBytes = 1 << 20

    /// Whether a 1x1 forward runs our unpacked product for few output rows (GemmSmallMTemplate.h:
    /// ≤ 128 outputs where `smallProductKernel` allows, at least one vector of positions, and
    /// `pointwiseForwardMinimumColumnsForWide` of them for more than 64 outputs) instead
    /// of OpenBLAS. Weight gradients stay with OpenBLAS (a long inner dimension), and so do input
    /// gradients added into: by our product (Aᵀ, few inner steps) the 216→48 backward fell from
    /// 0.64 to 0.51 of square sgemm (bench-kernels --threads 2 --filter conv1x1, one run each);
    /// one written whole is ours (`ownsPointwiseInputGradient`).
    ///
    /// Only at the AVX-512 level: the plain forward's B rows are whole feature maps, a power of
    /// two apart, so they share cache sets and the product re-reads them from beyond L2 for every
    /// block of rows; AVX2's blocks are half as wide, and there the 216→48 forward fell to 0.36 of
    /// square sgemm against OpenBLAS's 0.76 (`OPENBLAS_CORETYPE=Haswell bench-kernels
    /// --kernel-level avx2 --filter conv1x1_forward`; AVX-512 level 0.78–0.83 in the same run).
    /// The fused tiles (Conv2d+NormalizedInput.swift) are narrow and stay ours at both levels.
    static func ownsPointwiseForward(_ g: ConvGeometry) -> Bool {
        smallProductApplies(outputs: g.cout)
            && g.columns >= (g.cout <= 64 ? 16 : pointwiseForwardMinimumColumnsForWide)
            && (smallProductKernel == .always || KernelLevel.active.rawValue >= KernelLevel.avx512.rawValue)
    }

    /// The fewest positions for which a plain 1x1 forward of more than 64 outputs is ours. Ours
    /// reads x's rows in place, a cache line from each of Cin rows per block of positions, all of
    /// W for every block; OpenBLAS packs both. With 128 outputs at DenseNet-121's 7x7 (392
    /// positions at batch 8) ours ran 0.42–0.66 of OpenBLAS's speed (`bench-kernels
    /// --compare-pointwise --threads 2`, three runs; at 14x14 and up 0.52–1.09, with 48 outputs
    /// 0.93–1.68). In the model (`bench-memory --model densenet121 --batch 8 --strategies naive
    /// --profile --threads 2`, builds alternated) the 1x1 forward took 0.109–0.111 s/step with ours
    /// everywhere (four runs), 0.102–0.103 with OpenBLAS under 1024 positions (four), 0.108 / 0.112
    /// under 2048, and 0.124 / 0.119 with OpenBLAS for every layer of more than 64 outputs.
    static let pointwiseForwardMinimumColumnsForWide = 1024

    /// Parts the 1x1 forward runs at once on `threads` threads, as it runs.
    static func pointwiseForwardParts(_ g: ConvGeometry, threads: Int) -> Int {
        ownsPointwiseForward(g) ? min(threads, (g.columns + 15) / 16)
                                : Gemm.split(m: g.cout, n: g.columns, k: g.cin, threads: threads).parts(threads: threads)
    }

    /// Scratch bytes of the 1x1 forward, as it runs: none by our product, OpenBLAS's split's otherwise.
    static func pointwiseForwardScratchBytes(_ g: ConvGeometry, threads: Int) -> Int {
        ownsPointwiseForward(g) ? 0 : Gemm.multiplyScratchBytes(m: g.cout, n: g.columns, k: g.cin, threads: threads)
    }

    /// dx (Cin × P) += Wᵀ · dy (= with overwriteDx: by our product, `ownsPointwiseInputGradient`,
    /// or OpenBLAS with beta 0); dW (Cout × Cin) += dy · xᵀ (`pointwiseWeightGradient`). // (C, N, H, W)
    static func pointwiseBackward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                  _ g: ConvGeometry, dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
                                  overwriteDx: Bool = false) {
        let p = g.columns
        if let dx {
            if ownsPointwiseInputGradient(g, overwriting: overwriteDx), let table = KernelLevel.table {
                pointwiseInputGradient(dy, weight: weight, g, dx: dx, table: table)
            } else {
                Gemm.multiply(transA: true, m: g.cin, n: p, k: g.cout, a: weight, lda: g.cin, b: dy, ldb: p,
                              beta: overwriteDx ? 0 : 1, c: dx, ldc: p)
            }
        }
        if let dWeight { pointwiseWeightGradient(dy, x: x, g, dWeight: dWeight) }
    }

    // MARK: Weight gradient

    /// Whether the 1x1 weight gradient multiplies x · dyᵀ (Cin × Cout) into scratch and adds its
    /// transpose to dW, instead of dy · xᵀ straight into dW. Both read each operand along the
    /// inner dimension (the positions); with Cin rows OpenBLAS's kernels get the long side of
    /// the product where they want it. One thread, C sgemm (`OPENBLAS_CORETYPE=SkylakeX`, 0.3.21),
    /// GFLOP/s of dy · xᵀ against x · dyᵀ: Cout 48 with Cin 120, 216, 300 at DenseNet-BC-100's
    /// sizes 59 → 68, 60 → 73, 65 → 90; Cout 48 with Cin 48 53 → 55; Cout 128 (DenseNet-121)
    /// with Cin 256–1024 within 0–6 %, where the transpose would cost about as much, so not there.
    static func transposesPointwiseWeightGradient(_ g: ConvGeometry) -> Bool { g.cout <= 64 }

    /// Rows and columns of the 1x1 weight gradient's product as it runs, over the positions:
    /// dy · xᵀ (Cout × Cin), or x · dyᵀ (Cin × Cout) where `transposesPointwiseWeightGradient`.
    static func pointwiseWeightGradientProduct(_ g: ConvGeometry) -> (m: Int, n: Int) {
        transposesPointwiseWeightGradient(g) ? (g.cin, g.cout) : (g.cout, g.cin)
    }

    /// Whether the transposed 1x1 weight gradient runs our product
    /// (`pointwise_weight_gradient_rows`, GemmSmallMTemplate.h) instead of OpenBLAS: each thread
    /// transposes strips of 512 positions of dy (Cout × 512, rows whole feature maps apart) into
    /// a block that stays in L2 and multiplies x's rows, read in place, by it, adding into its
    /// own Cin × Cout partial; nothing of x is packed. C, 2 threads, each half of the positions,
    /// best of 15, against OpenBLAS 0.3.21 as `Gemm.multiply` runs it (ms): at the AVX-512
    /// level 216→48 over 65,536 positions 9.87 → 7.77, 120→48 6.15 → 4.64, 24→48 1.99 → 1.82,
    /// 288→48 over 16,384 3.09 → 2.55, 330→48 over 4,096 1.48 → 0.73; at the AVX2 level
    /// (OpenBLAS's Haswell kernels) 216→48 9.04 → 8.54, 288→48 2.85 → 2.56, 330→48 1.36 →
    /// 0.66. Outputs a whole number of 16-float vectors, the widths timed (others would end in
    /// `gemm_small_m`'s overlapping last vector, untimed here).
    static func ownsPointwiseWeightGradient(_ g: ConvGeometry) -> Bool {
        transposesPointwiseWeightGradient(g) && g.cout % 16 == 0 && smallProductApplies(outputs: g.cout)
            && g.columns >= 16
    }

    /// Positions per thread, at least, of our 1x1 weight gradient: each part adds its own
    /// Cin × Cout partial.
    static let pointwiseWeightGradientMinimumColumns = 256

    /// Parts the 1x1 weight gradient's product runs at once on `threads` threads, as it runs.
    static func pointwiseWeightGradientParts(_ g: ConvGeometry, threads: Int) -> Int {
        if ownsPointwiseWeightGradient(g) {
            return max(1, min(threads, g.columns / pointwiseWeightGradientMinimumColumns))
        }
        let (m, n) = pointwiseWeightGradientProduct(g)
        return Gemm.split(m: m, n: n, k: g.columns, threads: threads).parts(threads: threads)
    }

    /// Scratch bytes of the 1x1 weight gradient, as it runs: by our product every part's
    /// partial and strip, in one storage; else the transposed product's storage if any and,
    /// beside it, OpenBLAS's split's partial sums.
    static func pointwiseWeightGradientScratchBytes(_ g: ConvGeometry, threads: Int) -> Int {
        let (m, n) = pointwiseWeightGradientProduct(g)
        if ownsPointwiseWeightGradient(g) {
            let parts = pointwiseWeightGradientParts(g, threads: threads)
            return Memory.byteCount(elements: parts * (m * n + Int(CK_POINTWISE_WEIGHT_GRADIENT_STRIP) * g.cout))
        }
        let transposed = transposesPointwiseWeightGradient(g) ? Memory.byteCount(elements: m * n) : 0
        return transposed + Gemm.multiplyScratchBytes(m: m, n: n, k: g.columns, threads: threads)
    }

    /// dW (Cout × Cin) += dy · xᵀ, inner dimension P split across threads with per-thread partial
    /// sums (`Gemm.multiply`); as (x · dyᵀ)ᵀ where `transposesPointwiseWeightGradient`, by our
    /// product where `ownsPointwiseWeightGradient`. // (C, N, H, W)
    static func pointwiseWeightGradient(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, _ g: ConvGeometry,
                                        dWeight: UnsafeMutablePointer<Float>) {
        let p = g.columns, cin = g.cin, cout = g.cout, (m, n) = pointwiseWeightGradientProduct(g)
        guard transposesPointwiseWeightGradient(g) else {
            Gemm.multiply(transB: true, m: m, n: n, k: p, a: dy, lda: p, b: x, ldb: p, beta: 1, c: dWeight, ldc: n)
            return
        }
        if ownsPointwiseWeightGradient(g), let table = KernelLevel.table {
            let parts = pointwiseWeightGradientParts(g, threads: Parallel.threadCount)
            let strip = Int(CK_POINTWISE_WEIGHT_GRADIENT_STRIP) * cout
            let scratch = Tensor(shape: [parts * (m * n + strip)], category: .scratch)
            let partials = scratch.pointer, strips = partials + parts * m * n
            Parallel.forEach(parts) { t in
                let columns = Parallel.chunk(t, of: parts, count: p)
                table.pointee.pointwise_weight_gradient_rows(x, p, dy, p, cin, cout, columns.lowerBound, columns.upperBound,
                                                             partials + t * m * n, strips + t * strip, 0)
            }
            addTransposed(partials, parts: parts, g, to: dWeight)
            withExtendedLifetime(scratch) {}
            return
        }
        let transposed = Tensor(shape: [m, n], category: .scratch)
        Gemm.multiply(transB: true, m: m, n: n, k: p, a: x, lda: p, b: dy, ldb: p, beta: 0, c: transposed.pointer, ldc: n)
        addTransposed(transposed.pointer, parts: 1, g, to: dWeight)
        withExtendedLifetime(transposed) {}
    }

    /// dW (Cout × Cin) += Σ_t partials[t]ᵀ, each partial Cin × Cout, summed in order of t.
    static func addTransposed(_ partials: UnsafePointer<Float>, parts: Int, _ g: ConvGeometry,
                              to dWeight: UnsafeMutablePointer<Float>) {
        let cin = g.cin, cout = g.cout, size = cin * cout
        Parallel.forRanges(cout, minChunk: max(1, Parallel.memoryMinChunk / max(cin * parts, 1))) { rows in
            for co in rows {
                let row = dWeight + co * cin
                for ci in 0..<cin {
                    var sum = partials[ci * cout + co]
                    for t in 1..<max(parts, 1) { sum += partials[t * size + ci * cout + co] }
                    row[ci] += sum
                }
            }
        }
    }

    // MARK: Input gradient by our product

    /// Positions of dy each thread copies into a strip before multiplying (`pointwiseInputGradient`).
    static let pointwiseInputGradientStrip = 64

    /// Whether a 1x1 input gradient that overwrites dx (a fresh gradient buffer) runs our
    /// unpacked product (`gemm_small_m`) instead of OpenBLAS. The product has only Cout inner
    /// steps (48 in DenseNet-BC, 128 in DenseNet-121) for every element of dx, so moving dx
    /// weighs as much as the arithmetic: OpenBLAS with beta 0 first zeroes all of dx, then reads
    /// it back to add the product; ours writes each element once, with streaming stores (dx is
    /// tens of MB, read again only by the next batch norm). At the AVX-512 level only, as the
    /// plain forward (`ownsPointwiseForward`); for more than 64 inner steps only from
    /// `pointwiseForwardMinimumColumnsForWide` positions (`bench-kernels --filter
    /// conv1x1_backward`, dx written: 992→128 at 7x7, 392 positions, 0.56 of square sgemm by ours
    /// against 0.88 by OpenBLAS; at 14x14 and up 0.95–1.00 against 0.87–0.93). In the model
    /// (`bench-memory --profile --threads 2`, builds alternated twice), s/step of the 1x1
    /// backward: DenseNet-BC-100 b64 `naive` 0.320 / 0.315 (OpenBLAS) → 0.286 / 0.295 (ours,
    /// plain stores); 0.308 / 0.298 → 0.283 / 0.276 (streaming), `checkpoint` 0.309 / 0.303 →
    /// 0.276 / 0.276; DenseNet-121 b8 `naive` 0.223 / 0.218 → 0.209 / 0.203, `minimal` 0.249 /
    /// 0.210 → 0.201 / 0.206.
    static func ownsPointwiseInputGradient(_ g: ConvGeometry, overwriting: Bool) -> Bool {
        overwriting && smallProductApplies(outputs: g.cout) && g.columns >= 16
            && (smallProductKernel == .always
                || (KernelLevel.active.rawValue >= KernelLevel.avx512.rawValue
                    && (g.cout <= 64 || g.columns >= pointwiseForwardMinimumColumnsForWide)))
    }

    /// Parts the 1x1 input gradient runs at once on `threads` threads, as it runs: by our product
    /// one range of whole vectors of positions each, else OpenBLAS's split.
    static func pointwiseInputGradientParts(_ g: ConvGeometry, threads: Int, overwriting: Bool) -> Int {
        ownsPointwiseInputGradient(g, overwriting: overwriting)
            ? min(threads, (g.columns + 15) / 16)
            : Gemm.split(m: g.cin, n: g.columns, k: g.cout, threads: threads).parts(threads: threads)
    }

    /// Scratch bytes of the 1x1 input gradient, as it runs: by our product every thread's strip,
    /// in one storage made before the threads start (on the calling thread: allocated on the
    /// workers, jemalloc's per-thread caches kept ~0.3 MiB more resident under `minimal`); else
    /// OpenBLAS's split's.
    static func pointwiseInputGradientScratchBytes(_ g: ConvGeometry, threads: Int, overwriting: Bool) -> Int {
        guard ownsPointwiseInputGradient(g, overwriting: overwriting) else {
            return Gemm.multiplyScratchBytes(m: g.cin, n: g.columns, k: g.cout, threads: threads)
        }
        let parts = pointwiseInputGradientParts(g, threads: threads, overwriting: true)
        return Memory.byteCount(elements: parts * g.cout * pointwiseInputGradientStrip)
    }

    /// dx (Cin × P) = Wᵀ (Cin × Cout) · dy (Cout × P), overwriting dx: each thread copies a
    /// strip of dy's columns (Cout rows a power of two apart in the feature maps, which would
    /// share cache sets) into a contiguous block that stays in L1, and multiplies Wᵀ by it into
    /// dx's columns, reading W's rows in place (CK_GEMM_A_TRANSPOSED) and storing past the
    /// caches. // (C, N, H, W)
    static func pointwiseInputGradient(_ dy: UnsafePointer<Float>, weight: UnsafePointer<Float>, _ g: ConvGeometry,
                                       dx: UnsafeMutablePointer<Float>, table: UnsafePointer<ck_kernels>) {
        let p = g.columns, cin = g.cin, cout = g.cout, strip = pointwiseInputGradientStrip
        let flags = CK_GEMM_STREAM | CK_GEMM_A_TRANSPOSED
        let parts = pointwiseInputGradientParts(g, threads: Parallel.threadCount, overwriting: true)
        let vectors = (p + 15) / 16
        let strips = Tensor(shape: [parts, cout * strip], category: .scratch)
        let allStrips = strips.pointer
        Parallel.forEach(parts) { t in
            let chunk = Parallel.chunk(t, of: parts, count: vectors)
            let start = chunk.lowerBound * 16, end = min(p, chunk.upperBound * 16)
            guard start < end else { return }
            let pb = allStrips + t * cout * strip
            var j = start
            while j < end {
                let n = min(strip, end - j)
                for k in 0..<cout { (pb + k * strip).update(from: dy + k * p + j, count: n) }
                table.pointee.gemm_small_m(weight, cin, pb, strip, cin, n, cout, dx + j, p, flags)
                j += n
            }
        }
        withExtendedLifetime(strips) {}
    }
}
