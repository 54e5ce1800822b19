import Runtime

/// 1x1 convolution, stride 1, no padding: with channel-major activations x is already the
/// im2col matrix, so each pass is one product (split across our threads by `Gemm.multiply`).
extension Conv2d {
    /// y (Cout × P) = W (Cout × Cin) · x (Cin × P), P = N·H·W. // (C, N, H, W)
    static func pointwiseForward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, _ g: ConvGeometry,
                                 y: UnsafeMutablePointer<Float>) {
        let p = g.columns
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
