import COpenBLAS
import Foundation

/// Matrix products, all through OpenBLAS's `cblas_sgemm` (row-major).
///
/// OpenBLAS's own threads are slow on DenseNet's thin products (12 output rows: 24–32 GFLOP/s
/// with two OpenBLAS threads, see shared/reference/machine-notes.md), so OpenBLAS runs with one
/// thread and `multiply` splits the product across our threads itself: by columns of C when C
/// is wide, by rows when it is tall, and by the inner dimension (with per-thread partial sums)
/// when C is small and K is large, as in weight gradients.
public enum Gemm {
    /// OpenBLAS's thread count as last set by us (0: not yet, OpenBLAS's default applies).
    nonisolated(unsafe) private static var blasThreads = 0

    /// Sets OpenBLAS's own thread count (the square-sgemm reference uses all threads). Kernels
    /// that split work across our threads set it back to 1 (`useOneBLASThread`).
    public static func setBLASThreads(_ n: Int) {
        precondition(n >= 1, "Gemm.setBLASThreads: thread count must be at least 1, got \(n)")
        openblas_set_num_threads(Int32(n))
        blasThreads = n
    }

    /// Makes OpenBLAS single-threaded unless it already is: called by every kernel that runs
    /// one-thread products on several of our threads at once (two OpenBLAS thread pools fighting
    /// over two cores would be far slower). Cheap when nothing changes.
    @inlinable
    public static func useOneBLASThread() {
        if currentBLASThreads != 1 { setBLASThreads(1) }
    }

    /// OpenBLAS's thread count as last set through `setBLASThreads` (0 before the first call).
    public static var currentBLASThreads: Int { blasThreads }

    /// OpenBLAS's build description ("OpenBLAS 0.3.21 DYNAMIC_ARCH ... Zen ...").
    public static var blasConfig: String {
        guard let c = openblas_get_config() else { return "unknown" }
        return String(cString: c)
    }

    /// The kernels OpenBLAS chose at load ("Haswell", "SkylakeX", ...; `OPENBLAS_CORETYPE` picks them).
    public static var blasCoreName: String {
        guard let c = openblas_get_corename() else { return "unknown" }
        return String(cString: c)
    }

    /// Whether OpenBLAS runs its AVX-512 kernels, whose products with few rows are much faster
    /// than its AVX2 ones (3x3 48→12 weight gradient per tap: 163–178 against 104 GFLOP/s,
    /// `bench-kernels --compare-thin`, this machine, each core type).
    public static var blasUsesAVX512: Bool {
        let name = blasCoreName.lowercased()
        return ["skylakex", "cooperlake", "sapphirerapids"].contains { name.contains($0) }
    }

    /// One plain `cblas_sgemm` call: C = alpha·op(A)·op(B) + beta·C, with op(A) m×k, op(B) k×n,
    /// C m×n, leading dimensions in elements. Uses whatever OpenBLAS thread count is set.
    @inlinable
    public static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 || DryRun.isActive { return }
        if k == 0 {
            scale(c, rows: m, cols: n, ld: ldc, by: beta)
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    @usableFromInline
    static func scale(_ c: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int, by beta: Float) {
        for i in 0..<rows {
            let row = c + i * ld
            if beta == 0 { for j in 0..<cols { row[j] = 0 } } else { for j in 0..<cols { row[j] *= beta } }
        }
    }

    /// How `multiply` splits a product of op(A) m×k by op(B) k×n across `threads` threads.
    public enum Split: Equatable, Sendable {
        /// One call on the calling thread.
        case none
        /// Columns of C (and of op(B)).
        case columns
        /// Rows of C (and of op(A)).
        case rows
        /// The inner dimension, with `threads − 1` partial sums of C in counted scratch.
        case inner
        /// Blocks of rows × blocks of columns of C: products too small in either direction
        /// alone to give every thread a share (many threads, late blocks' small maps).
        case grid(rows: Int, columns: Int)

        /// Parts run at once on `threads` threads.
        public func parts(threads: Int) -> Int {
            switch self {
            case .none: return 1
            case .columns, .rows, .inner: return threads
            case .grid(let rows, let columns): return rows * columns
            }
        }
    }

    /// The split `multiply` takes: the one function both the product and its scratch query
    /// (`multiplyScratchBytes`) read, so the planner counts what the product allocates.
    public static func split(m: Int, n: Int, k: Int, threads: Int) -> Split {
        let flops = 2.0 * Double(m) * Double(n) * Double(k)
        if threads == 1 || flops < 2e6 { return .none }
        // A small C with a long inner dimension (weight gradients): split k, so each thread
        // reads only its share of both operands.
        if k >= 8 * max(m, n) && k >= 256 * threads { return .inner }
        if n >= 64 * threads && n >= m { return .columns }
        if m >= 16 * threads { return .rows }
        if k >= 256 * threads { return .inner }
        // Neither direction alone has a share for every thread: as many blocks of at least 32
        // columns and 16 rows as the threads allow (DenseNet-121's last block at batch 8 has
        // 392 columns, which ran on one thread of 16 before).
        let byColumns = max(1, min(threads, n / 32))
        let byRows = max(1, min(threads / byColumns, m / 16))
        if byColumns * byRows >= 2 { return .grid(rows: byRows, columns: byColumns) }
        return .none
    }

    /// Scratch bytes of `multiply(m:n:k:)` on `threads` threads: the per-thread partial sums of
    /// a split inner dimension, `(threads − 1)·m·n` floats.
    public static func multiplyScratchBytes(m: Int, n: Int, k: Int, threads: Int) -> Int {
        split(m: m, n: n, k: k, threads: threads) == .inner ? Memory.byteCount(elements: (threads - 1) * m * n) : 0
    }

    /// C = alpha·op(A)·op(B) + beta·C split across `Parallel.threadCount` threads, each calling
    /// one-thread OpenBLAS on its own part. In a dry run, counts its scratch and returns.
    public static func multiply(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                                alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                                b: UnsafePointer<Float>, ldb: Int,
                                beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if let dryRun = DryRun.current {
            dryRun.scratch(multiplyScratchBytes(m: m, n: n, k: k, threads: dryRun.threads))
            dryRun.product(flops: 2 * Double(m) * Double(n) * Double(k),
                           parts: split(m: m, n: n, k: k, threads: dryRun.threads).parts(threads: dryRun.threads))
            return
        }
        useOneBLASThread()
        let threads = Parallel.threadCount
        switch split(m: m, n: n, k: k, threads: threads) {
        case .none:
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        case .inner:
            multiplySplitK(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                           b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, threads: threads)
        case .columns:
            Parallel.forEach(threads) { t in
                let cols = Parallel.chunk(t, of: threads, count: n)
                let bPart = transB ? b + cols.lowerBound * ldb : b + cols.lowerBound
                sgemm(transA: transA, transB: transB, m: m, n: cols.count, k: k, alpha: alpha, a: a, lda: lda,
                      b: bPart, ldb: ldb, beta: beta, c: c + cols.lowerBound, ldc: ldc)
            }
        case .rows:
            Parallel.forEach(threads) { t in
                let rows = Parallel.chunk(t, of: threads, count: m)
                let aPart = transA ? a + rows.lowerBound : a + rows.lowerBound * lda
                sgemm(transA: transA, transB: transB, m: rows.count, n: n, k: k, alpha: alpha, a: aPart, lda: lda,
                      b: b, ldb: ldb, beta: beta, c: c + rows.lowerBound * ldc, ldc: ldc)
            }
        case .grid(let rowBlocks, let columnBlocks):
            Parallel.forEach(rowBlocks * columnBlocks) { t in
                let rows = Parallel.chunk(t / columnBlocks, of: rowBlocks, count: m)
                let cols = Parallel.chunk(t % columnBlocks, of: columnBlocks, count: n)
                let aPart = transA ? a + rows.lowerBound : a + rows.lowerBound * lda
                let bPart = transB ? b + cols.lowerBound * ldb : b + cols.lowerBound
                sgemm(transA: transA, transB: transB, m: rows.count, n: cols.count, k: k, alpha: alpha, a: aPart, lda: lda,
                      b: bPart, ldb: ldb, beta: beta, c: c + rows.lowerBound * ldc + cols.lowerBound, ldc: ldc)
            }
        }
    }

    /// Splits the inner dimension: thread 0 accumulates into C, the others into counted scratch
    /// partials that are added to C at the end.
    static func multiplySplitK(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                               a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                               beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int) {
        let partials = Tensor(shape: [threads - 1, m, n], category: .scratch)
        let pp = partials.pointer
        Parallel.forEach(threads) { t in
            let ks = Parallel.chunk(t, of: threads, count: k)
            // op(A) columns ks: A is m×k (lda) or k×m transposed.
            let aPart = transA ? a + ks.lowerBound * lda : a + ks.lowerBound
            let bPart = transB ? b + ks.lowerBound : b + ks.lowerBound * ldb
            if t == 0 {
                sgemm(transA: transA, transB: transB, m: m, n: n, k: ks.count, alpha: alpha, a: aPart, lda: lda,
                      b: bPart, ldb: ldb, beta: beta, c: c, ldc: ldc)
            } else {
                sgemm(transA: transA, transB: transB, m: m, n: n, k: ks.count, alpha: alpha, a: aPart, lda: lda,
                      b: bPart, ldb: ldb, beta: 0, c: pp + (t - 1) * m * n, ldc: n)
            }
        }
        Parallel.addPartials(pp, count: threads - 1, rows: m, columns: n, into: c, ldc: ldc)
        withExtendedLifetime(partials) {}
    }
}
