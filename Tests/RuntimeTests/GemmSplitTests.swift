import XCTest
import Runtime

/// `Gemm.multiply` in every split it takes, against a plain triple loop in Double, with every
/// transpose and a beta that accumulates; and the split rule on the shapes that motivated each
/// case (Gemm.swift).
final class GemmSplitTests: XCTestCase {
    /// C = alpha·op(A)·op(B) + beta·C by the definition, row-major.
    func reference(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], b: [Float],
                   beta: Float, c: [Float]) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for l in 0..<k {
                    let x = transA ? a[l * m + i] : a[i * k + l]
                    let y = transB ? b[j * k + l] : b[l * n + j]
                    sum += Double(x) * Double(y)
                }
                out[i * n + j] = Float(Double(alpha) * sum + Double(beta) * Double(c[i * n + j]))
            }
        }
        return out
    }

    func testEverySplitMatchesTheDefinition() {
        // (m, n, k, threads, expected split)
        let cases: [(Int, Int, Int, Int, Gemm.Split)] = [
            (128, 392, 300, 16, .grid(rows: 1, columns: 12)),  // DenseNet-121 block 4 at batch 8, 1x1 forward
            (60, 100, 200, 4, .grid(rows: 1, columns: 3)),
            (48, 90, 400, 6, .grid(rows: 3, columns: 2)),
            (20, 600, 150, 2, .columns),
            (300, 40, 150, 4, .rows),
            (12, 10, 9000, 2, .inner),
            (40, 40, 40, 2, .none),
        ]
        for (m, n, k, threads, expected) in cases {
            XCTAssertEqual(Gemm.split(m: m, n: n, k: k, threads: threads), expected, "\(m)x\(n)x\(k) on \(threads)")
            for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = Tensor.randomNormal([m * k], seed: UInt64(m + n)).array
                let b = Tensor.randomNormal([k * n], seed: UInt64(k + 3)).array
                let c = Tensor.randomNormal([m * n], seed: 5).array
                let expectedC = reference(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, b: b,
                                          beta: 1, c: c)
                let out = Tensor(shape: [m * n], values: c)
                let saved = Parallel.threadCount
                Parallel.threadCount = threads
                a.withUnsafeBufferPointer { pa in
                    b.withUnsafeBufferPointer { pb in
                        Gemm.multiply(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5,
                                      a: pa.baseAddress!, lda: transA ? m : k, b: pb.baseAddress!, ldb: transB ? k : n,
                                      beta: 1, c: out.pointer, ldc: n)
                    }
                }
                Parallel.threadCount = saved
                var worst: Float = 0
                for (x, y) in zip(out.array, expectedC) { worst = max(worst, abs(x - y) / max(1, abs(y))) }
                XCTAssertLessThanOrEqual(worst, 1e-4, "\(m)x\(n)x\(k) on \(threads), transA \(transA) transB \(transB)")
            }
        }
    }

    /// A dry run counts each product's FLOPs and the parts its split runs at once.
    func testDryRunCountsProductsAndTheirParts() {
        let (_, dryRun) = DryRun.run(threads: 16) { _ in
            let a = Tensor(shape: [128 * 300]), b = Tensor(shape: [300 * 392]), c = Tensor(shape: [128 * 392])
            Gemm.multiply(m: 128, n: 392, k: 300, a: a.pointer, lda: 300, b: b.pointer, ldb: 392, beta: 0, c: c.pointer, ldc: 392)
            Gemm.multiply(m: 40, n: 40, k: 40, a: a.pointer, lda: 40, b: b.pointer, ldb: 40, beta: 0, c: c.pointer, ldc: 40)
        }
        let big = 2.0 * 128 * 392 * 300, small = 2.0 * 40 * 40 * 40
        XCTAssertEqual(dryRun.productFLOPs, big + small)
        XCTAssertEqual(dryRun.productFLOPsPerThread, big / 12 + small, accuracy: 1e-6 * big)
        XCTAssertEqual(dryRun.productSpeedupBound, (big + small) / (big / 12 + small), accuracy: 1e-9)
    }
}
