import Runtime

/// 1x1 convolution, stride 1, no padding: with channel-major activations x is already the
/// im2col matrix, so each pass is one product (split across our threads by `Gemm.multiply`).
extension Conv2d {
    /// y (Cout × P) = W (Cout × Cin) · x (Cin × P), P = N·H·W. // (C, N, H, W)
    static func pointwiseForward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, _ g: ConvGeometry,
                                 y: UnsafeMutablePointer<Float>) {
        let p = g.columns
        pointwiseProduct(m: g.cout, n: p, k: g.cin, a: weight, lda: g.cin, b: x, ldb: p, accumulate: false, c: y, ldc: p)
    }

    /// C (m × n) = op(A) (m × k) · B (k × n), or C += it: a 1x1 convolution's product over all
    /// positions (n = P). Where A is not transposed, has few rows (≤ 128: a bottleneck's width)
    /// and `smallProductKernel` allows, our unpacked product (GemmSmallMTemplate.h) on one
    /// vector-aligned column range per thread, B read in place a strip at a time; else
    /// `Gemm.multiply`. Input gradients (Aᵀ with few inner steps) stay with OpenBLAS: by our
    /// product the 216→48 backward fell from 0.64 to 0.51 of square sgemm (bench-kernels --threads
    /// 2 --filter conv1x1, one run each). No scratch either way but Gemm's own; a dry run counts
    /// the product.
    public static func pointwiseProduct(transA: Bool = false, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                                        b: UnsafePointer<Float>, ldb: Int, accumulate: Bool,
                                        c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard !transA, smallProductApplies(outputs: m), let table = KernelLevel.table, n >= 16 else {
            Gemm.multiply(transA: transA, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: accumulate ? 1 : 0,
                          c: c, ldc: ldc)
            return
        }
        let vectors = (n + 15) / 16
        if let dryRun = DryRun.current {
            dryRun.product(flops: 2 * Double(m) * Double(n) * Double(k), parts: min(dryRun.threads, vectors))
            return
        }
        if m == 0 { return }
        let parts = min(Parallel.threadCount, vectors)
        Parallel.forEach(parts) { t in
            let chunk = Parallel.chunk(t, of: parts, count: vectors)
            let start = chunk.lowerBound * 16, end = min(n, chunk.upperBound * 16)
            table.pointee.gemm_small_m(a, lda, transA ? 1 : 0, b + start, ldb, m, end - start, k, c + start, ldc,
                                       accumulate ? 1 : 0)
        }
    }

    /// dx (Cin × P) += Wᵀ · dy; dW (Cout × Cin) += dy · xᵀ (inner dimension P, split across
    /// threads with per-thread partial sums). // (C, N, H, W)
    static func pointwiseBackward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                  _ g: ConvGeometry, dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?) {
        let p = g.columns
        if let dx {
            pointwiseProduct(transA: true, m: g.cin, n: p, k: g.cout, a: weight, lda: g.cin, b: dy, ldb: p,
                             accumulate: true, c: dx, ldc: p)
        }
        if let dWeight {
            Gemm.multiply(transB: true, m: g.cout, n: g.cin, k: p, a: dy, lda: p, b: x, ldb: p,
                          beta: 1, c: dWeight, ldc: g.cin)
        }
    }
}
