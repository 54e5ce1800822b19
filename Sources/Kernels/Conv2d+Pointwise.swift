import Runtime

/// 1x1 convolution, stride 1, no padding: with channel-major activations x is already the
/// im2col matrix, so each pass is one product (split across our threads by `Gemm.multiply`).
extension Conv2d {
    /// y (Cout × P) = W (Cout × Cin) · x (Cin × P), P = N·H·W. // (C, N, H, W)
    static func pointwiseForward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, _ g: ConvGeometry,
                                 y: UnsafeMutablePointer<Float>) {
        let p = g.columns
        if smallProductApplies(outputs: g.cout), let table = KernelLevel.table, p >= 16 {
            // Few output rows: our unpacked product (GemmSmallMTemplate.h) on column ranges of
            // whole vectors, one per thread; x is read in place, a 32-column strip at a time.
            let vectors = (p + 15) / 16
            let parts = min(Parallel.threadCount, vectors)
            Parallel.forEach(parts) { t in
                let chunk = Parallel.chunk(t, of: parts, count: vectors)
                let start = chunk.lowerBound * 16, end = min(p, chunk.upperBound * 16)
                table.pointee.gemm_small_m(weight, g.cin, x + start, p, g.cout, end - start, g.cin, y + start, p)
            }
            return
        }
        Gemm.multiply(m: g.cout, n: p, k: g.cin, a: weight, lda: g.cin, b: x, ldb: p, beta: 0, c: y, ldc: p)
    }

    /// dx (Cin × P) += Wᵀ · dy; dW (Cout × Cin) += dy · xᵀ (inner dimension P, split across
    /// threads with per-thread partial sums). // (C, N, H, W)
    static func pointwiseBackward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                  _ g: ConvGeometry, dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?) {
        let p = g.columns
        if let dx {
            Gemm.multiply(transA: true, m: g.cin, n: p, k: g.cout, a: weight, lda: g.cin, b: dy, ldb: p,
                          beta: 1, c: dx, ldc: p)
        }
        if let dWeight {
            Gemm.multiply(transB: true, m: g.cout, n: g.cin, k: p, a: dy, lda: p, b: x, ldb: p,
                          beta: 1, c: dWeight, ldc: g.cin)
        }
    }
}
