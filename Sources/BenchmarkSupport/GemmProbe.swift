import Foundation
import Kernels
import Runtime

/// The machine's practical GEMM limit: plain `cblas_sgemm` on a square product, with OpenBLAS's
/// own threads (as many as ours), measured in this process.
///
/// One short timing is not a figure one can act on: on a shared 2-vCPU machine the floor of the
/// same model moved between 0.86 and 1.56 s from one child process to the next (issue 13). So a
/// benchmark takes several probes interleaved with its measured steps (`Series`), each the best
/// of a few products, and reports their median and spread.
public enum GemmProbe {
    /// GFLOP/s of C = A·B with A, B, C `size`×`size`, best of `repeats` after one warm-up.
    public static func squareSgemmGFLOPS(size: Int = 2048, repeats: Int = 3, threads: Int = Parallel.threadCount) -> Double {
        let series = Series(size: size)
        return series.probe(repeats: repeats, threads: threads)
    }

    /// Probes interleaved with other work. The three matrices live in their own anonymous
    /// mapping, outside the runtime's counted memory (so `Memory.peak` never sees them), and
    /// their pages are returned to the system after each probe (`madvise(MADV_DONTNEED)`), so
    /// between probes they hold no resident memory.
    public final class Series {
        public let size: Int
        /// GFLOP/s of each probe, in order.
        public private(set) var rates: [Double] = []
        let base: UnsafeMutableRawPointer
        let bytes: Int

        public init(size: Int = 2048) {
            precondition(size >= 1, "GemmProbe.Series: size \(size) must be positive")
            self.size = size
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let matrix = (size * size * MemoryLayout<Float>.stride + page - 1) / page * page
            bytes = 3 * matrix
            guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                  p != MAP_FAILED else { fatalError("GemmProbe: cannot map \(bytes) bytes for the probe") }
            base = p
        }

        deinit { munmap(base, bytes) }

        /// One probe: fills A and B, runs `repeats` + 1 products on `threads` OpenBLAS threads,
        /// returns (and records) the best one's GFLOP/s, releases the pages, and waits `settle`
        /// seconds: OpenBLAS's idle workers spin for about 2^28 cycles after a multi-threaded
        /// call and would take a core from whatever is timed next.
        @discardableResult
        public func probe(repeats: Int = 2, threads: Int = Parallel.threadCount, settle: Double = 0.2) -> Double {
            let count = size * size
            let matrix = bytes / 3
            let a = base.bindMemory(to: Float.self, capacity: count)
            let b = (base + matrix).bindMemory(to: Float.self, capacity: count)
            let c = (base + 2 * matrix).bindMemory(to: Float.self, capacity: count)
            for i in 0..<count {
                a[i] = Float(i % 251) / 251 - 0.5
                b[i] = Float(i % 241) / 241 - 0.5
            }
            Gemm.setBLASThreads(threads)
            var best = Double.infinity
            for i in 0...max(repeats, 1) {
                let start = DispatchTime.now().uptimeNanoseconds
                Gemm.sgemm(m: size, n: size, k: size, a: a, lda: size, b: b, ldb: size, beta: 0, c: c, ldc: size)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                if i > 0 { best = min(best, seconds) }
            }
            Gemm.setBLASThreads(1)
            madvise(base, bytes, MADV_DONTNEED)
            if settle > 0 { Thread.sleep(forTimeInterval: settle) }
            let rate = 2 * pow(Double(size), 3) / best / 1e9
            rates.append(rate)
            return rate
        }

        /// The median probe (the middle one, or the mean of the two middle ones).
        public var median: Double? {
            guard !rates.isEmpty else { return nil }
            let s = rates.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : 0.5 * (s[s.count / 2 - 1] + s[s.count / 2])
        }

        /// (highest − lowest) / median: 0.1 means the probes spread over 10 % of their median.
        public var spread: Double? {
            guard let median, median > 0, let lo = rates.min(), let hi = rates.max() else { return nil }
            return (hi - lo) / median
        }
    }
}
