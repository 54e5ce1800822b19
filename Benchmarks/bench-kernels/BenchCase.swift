import Foundation
import Runtime

/// The sizes of one plain `cblas_sgemm` product C (m × n) = op(A) (m × k) · op(B) (k × n).
struct GemmShape: CustomStringConvertible {
    var m: Int, n: Int, k: Int
    var transA = false, transB = false

    var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
    var description: String { "M=\(m) N=\(n) K=\(k)" }
}

/// What a case's work is measured in.
enum Work {
    /// Floating-point operations per run (compute-bound kernels: reported as GFLOP/s).
    case flops(Double)
    /// Bytes read plus written per run (memory-bound kernels: reported as GB/s).
    case bytes(Double)
}

/// A prepared case: `run` is timed; `check` (run once, before timing) compares the fast kernel
/// with its reference and returns a pass flag and a one-line verdict ("ok (batch 2, rel err …)").
struct Prepared {
    var check: (() -> CheckResult)?
    var run: () -> Void
}

struct CheckResult {
    var passed: Bool
    var detail: String
}

/// One benchmark entry. `setup` allocates its tensors (freed when the case is done) and returns
/// the closures; `sgemm` lists the plain products of the same sizes to compare with (empty for
/// memory-bound kernels). A new kernel is one more `BenchCase` in `BenchKernels.cases`:
///
///     BenchCase(kernel: "bn_relu_forward", shape: "[48,64,32,32]", work: .bytes(2 * bytes)) {
///         let x = Tensor.randomNormal(...), y = Tensor(shape: ...)
///         return Prepared(check: nil, run: { BatchNorm.forwardTraining(x, ..., into: y, ...) })
///     }
struct BenchCase {
    var kernel: String
    var shape: String
    var work: Work
    var sgemm: [GemmShape] = []
    var note: String? = nil
    var setup: () -> Prepared
}

/// One line of the JSON output.
struct Record: Codable {
    var kernel: String
    var shape: String
    var milliseconds: Double
    var gflops: Double?
    var gbytes_per_s: Double?
    /// GFLOP/s of plain cblas_sgemm on the same-sized product(s), OpenBLAS threads = --threads.
    var sgemm_gflops: Double?
    var sgemm_square_gflops: Double?
    /// gflops ÷ sgemm_square_gflops.
    var ratio: Double?
    /// gflops ÷ sgemm_gflops.
    var ratio_to_same_shape_sgemm: Double?
    var threads: Int
    var check: String?
    var note: String?
}

/// Seconds of one call of `body`.
func seconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
}

func median(_ values: [Double]) -> Double {
    let v = values.sorted()
    return v.count % 2 == 1 ? v[v.count / 2] : 0.5 * (v[v.count / 2 - 1] + v[v.count / 2])
}

/// Times several bodies in interleaved rounds (so that load from other processes on the shared
/// machine hits all of them alike) and returns each one's median seconds. In each round every
/// body runs twice and the second, warm run is timed.
///
/// Each round starts with a pause: after a multi-threaded OpenBLAS call its idle worker threads
/// spin for about 2^28 cycles (OPENBLAS_THREAD_TIMEOUT) before sleeping, and would otherwise
/// take a core from the kernel timed next (that halved some kernels' figures).
func interleavedMedians(repeats: Int, _ bodies: [() -> Void]) -> [Double] {
    var times = [[Double]](repeating: [], count: bodies.count)
    for _ in 0..<max(repeats, 1) {
        Thread.sleep(forTimeInterval: 0.2)
        for (i, body) in bodies.enumerated() {
            body()
            times[i].append(seconds(body))
        }
    }
    return times.map(median)
}

/// Plain single `cblas_sgemm` calls of `shape` on random matrices, with OpenBLAS's own thread
/// count set to `threads` for the call (and back to 1 afterwards, for our kernels).
func plainSgemm(_ s: GemmShape, threads: Int) -> () -> Void {
    let rowsA = s.transA ? s.k : s.m, colsA = s.transA ? s.m : s.k
    let rowsB = s.transB ? s.n : s.k, colsB = s.transB ? s.k : s.n
    let a = Tensor.randomUniform([rowsA, colsA], seed: 1, category: .scratch)
    let b = Tensor.randomUniform([rowsB, colsB], seed: 2, category: .scratch)
    let c = Tensor.zeros([s.m, s.n], category: .scratch)
    return {
        Gemm.setBLASThreads(threads)
        Gemm.sgemm(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, a: a.pointer, lda: colsA,
                   b: b.pointer, ldb: colsB, beta: 0, c: c.pointer, ldc: s.n)
        Gemm.useOneBLASThread()
    }
}
