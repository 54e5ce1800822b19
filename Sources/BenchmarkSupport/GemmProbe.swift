import Foundation
import Kernels
import Runtime

/// The machine's practical GEMM limit: one plain `cblas_sgemm` on a square product, with
/// OpenBLAS's own threads (as many as ours), measured in this process.
public enum GemmProbe {
    /// GFLOP/s of C = A·B with A, B, C `size`×`size`, best of `repeats` after one warm-up.
    public static func squareSgemmGFLOPS(size: Int = 2048, repeats: Int = 3, threads: Int = Parallel.threadCount) -> Double {
        let a = Tensor.randomUniform([size, size], seed: 1, category: .scratch)
        let b = Tensor.randomUniform([size, size], seed: 2, category: .scratch)
        let c = Tensor.zeros([size, size], category: .scratch)
        Gemm.setBLASThreads(threads)
        defer { Gemm.setBLASThreads(1) }
        var best = Double.infinity
        for i in 0...repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            Gemm.sgemm(m: size, n: size, k: size, a: a.pointer, lda: size, b: b.pointer, ldb: size,
                       beta: 0, c: c.pointer, ldc: size)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if i > 0 { best = min(best, seconds) }
        }
        withExtendedLifetime((a, b, c)) {}
        return 2 * pow(Double(size), 3) / best / 1e9
    }
}
