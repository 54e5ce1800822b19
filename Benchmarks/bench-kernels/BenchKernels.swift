import ArgumentParser
import BenchmarkSupport
import CommandLineOptions
import Foundation
import Kernels
import Runtime

/// Times the fast kernels against the machine's practical limits: plain `cblas_sgemm` on the
/// same-sized products, a square 2048 sgemm (the GEMM ceiling) and a large copy (bandwidth).
@main
struct BenchKernels: ParsableCommand {
    /// OpenBLAS's best kernels for this CPU first (`BLASCoreSelection`), then the command line.
    static func main() {
        BLASCoreSelection.adoptBestCoreType()
        main(nil)
    }

    static let configuration = CommandConfiguration(
        commandName: "bench-kernels",
        abstract: "Benchmark the convolution kernels against plain sgemm and memory bandwidth.")

    @Option(help: "Write the records as a JSON array to this path.")
    var json: String?

    /// Threads for our kernels (Parallel.threadCount) and for OpenBLAS in the plain sgemm runs.
    @OptionGroup var threadsOptions: ThreadsOptions
    var threads: Int { threadsOptions.threads }

    @Option(help: "Timed runs per case; the median is reported.")
    var repeats: Int = 5

    @Flag(help: "Skip the checks of each fast kernel against its reference.")
    var noCheck = false

    @Option(help: "Run only the cases whose kernel name and shape, as in the table (\"conv3x3_backward 128->32 N=8 7x7 k3 s1 p1\"), contain this string (e.g. conv3x3, or \"backward 128->32 N=8 7x7\").")
    var filter: String?

    @Option(help: "Kernel level of our C kernels: best (default: the best this CPU has), swift (the Swift references), baseline, avx2, avx512. With OPENBLAS_CORETYPE=Haswell in the environment OpenBLAS runs its AVX2 kernels too: the code an AVX2 machine would run.")
    var kernelLevel = "best"

    @Flag(help: "Instead of the cases: time the thin 3x3 convolutions (48->12 at 32x32, 128->32 at 56x56) by our kernel on every CPU level against the per-tap OpenBLAS path, alternated in one run.")
    var compareThin = false

    @Flag(help: "Instead of the cases: time batch norm + ReLU on the Swift references and on every CPU level of the C kernels, alternated in one run.")
    var compareLevels = false

    @Flag(help: "Instead of the cases: time BN+ReLU then 1x1 conv (forward, weight gradient) unfused against fused (normalised as the product reads it), alternated in one run.")
    var compareFused = false

    @Flag(help: "Instead of the cases: time the plain 1x1 forward by our product against OpenBLAS at the models' shapes, alternated in one run.")
    var comparePointwise = false

    /// The benchmarked kernels: convolutions (GFLOP/s), the layout comparison, and memory-bound
    /// kernels (GB/s, next to the plain copy's rate).
    static var cases: [BenchCase] {
        let dense32 = [ConvBenchmark(cin: 216, cout: 48, n: 64, h: 32, w: 32, p: ConvParameters(kernel: 1), checkBatch: 2),
                       ConvBenchmark(cin: 48, cout: 12, n: 64, h: 32, w: 32, p: ConvParameters(kernel: 3, padding: 1), checkBatch: 2)]
        let dense56 = [ConvBenchmark(cin: 512, cout: 128, n: 8, h: 56, w: 56, p: ConvParameters(kernel: 1), checkBatch: 1),
                       ConvBenchmark(cin: 128, cout: 32, n: 8, h: 56, w: 56, p: ConvParameters(kernel: 3, padding: 1), checkBatch: 1)]
        // DenseNet-121's later blocks (52 of its 58 dense layers): a wide 1x1 and the same 3x3 at 28x28, 14x14, 7x7.
        let denseLater = [(480, 28), (992, 14), (992, 7)].flatMap { (cin, side) in
            [ConvBenchmark(cin: cin, cout: 128, n: 8, h: side, w: side, p: ConvParameters(kernel: 1), checkBatch: 1),
             ConvBenchmark(cin: 128, cout: 32, n: 8, h: side, w: side, p: ConvParameters(kernel: 3, padding: 1), checkBatch: 1)]
        }
        return (dense32 + dense56 + denseLater).flatMap(\.cases) + MemoryBoundCases.layout + MemoryBoundCases.batchNorm
            + MemoryBoundCases.pooling
    }

    mutating func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
        do { _ = try TrainingStepBenchmark.kernelLevel(named: kernelLevel) } catch {
            throw ValidationError("--kernel-level: \(error)")
        }
    }

    func run() throws {
        threadsOptions.apply()
        // Before the minutes of measuring, not after (issue 11, class 9).
        if let json { try OutputLocation.checkFile(json, option: "--json") }
        KernelLevel.active = try TrainingStepBenchmark.kernelLevel(named: kernelLevel)
        print("bench-kernels: \(threads) threads, median of \(repeats); kernels \(KernelLevel.active); \(Gemm.blasConfig)")
        if compareThin { return try ThinComparison(threads: threads, repeats: repeats, json: json).run() }
        if compareLevels { return LevelComparison(repeats: repeats).run() }
        if compareFused { return FusedComparison(repeats: repeats).run() }
        if comparePointwise { return PointwiseComparison(threads: threads, repeats: repeats).run() }
        var records: [Record] = []
        var failures = 0

        // The square product is timed again beside every case (interleaved), so each ratio
        // compares runs that saw the same load from other processes.
        let square = GemmShape(m: 2048, n: 2048, k: 2048)
        let squareRun = plainSgemm(square, threads: threads)
        var squareRates: [Double] = []
        records.append(copyBandwidth())
        print(row(records[0]))

        for c in Self.cases where filter.map({ "\(c.kernel) \(c.shape)".contains($0) }) ?? true {
            let prepared = c.setup()
            var check: CheckResult? = nil
            if !noCheck, let verify = prepared.check {
                check = verify()
                if check?.passed == false { failures += 1 }
            }
            Gemm.useOneBLASThread()
            let sgemmRuns = c.sgemm.map { plainSgemm($0, threads: threads) }
            let sgemmSquare = interleavedMedians(repeats: repeats, [prepared.run, squareRun] + sgemmRuns)
            let (kernelSeconds, squareSeconds) = (sgemmSquare[0], sgemmSquare[1])
            let squareGFLOPs = square.flops / squareSeconds * 1e-9
            squareRates.append(squareGFLOPs)
            var record = Record(kernel: c.kernel, shape: c.shape, milliseconds: kernelSeconds * 1e3, threads: threads,
                                check: check?.detail, note: c.note)
            switch c.work {
            case .flops(let flops):
                let gflops = flops / kernelSeconds * 1e-9
                record.gflops = gflops
                record.sgemm_square_gflops = squareGFLOPs
                record.ratio = gflops / squareGFLOPs
                if !c.sgemm.isEmpty {
                    let same = c.sgemm.map(\.flops).reduce(0, +) / sgemmSquare[2...].reduce(0, +) * 1e-9
                    record.sgemm_gflops = same
                    record.ratio_to_same_shape_sgemm = gflops / same
                }
            case .bytes(let bytes):
                record.gbytes_per_s = bytes / kernelSeconds * 1e-9
            }
            records.append(record)
            print(row(record))
        }
        if squareRates.isEmpty {
            squareRates = interleavedMedians(repeats: repeats, [squareRun]).map { square.flops / $0 * 1e-9 }
        }
        let squareGFLOPs = median(squareRates)
        records.insert(Record(kernel: "sgemm_square", shape: square.description,
                              milliseconds: square.flops / squareGFLOPs * 1e-6, gflops: squareGFLOPs,
                              sgemm_gflops: squareGFLOPs, sgemm_square_gflops: squareGFLOPs, ratio: 1, threads: threads,
                              note: "median over the runs beside each case"), at: 0)

        print()
        print(table(records))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(records).write(to: URL(fileURLWithPath: json))
            print("wrote \(records.count) records to \(json)")
        }
        if failures > 0 { throw ExitCode(1) }
    }

    /// Memory bandwidth: a 256 MiB copy split across the threads, counting bytes read + written.
    func copyBandwidth() -> Record {
        let count = 64 << 20   // floats
        let source = Tensor.filled([count], 1, category: .scratch), target = Tensor.zeros([count], category: .scratch)
        let s = source.pointer, t = target.pointer
        let seconds = interleavedMedians(repeats: repeats, [{
            Parallel.forEach(threads) { part in
                let r = Parallel.chunk(part, of: threads, count: count)
                (t + r.lowerBound).update(from: s + r.lowerBound, count: r.count)
            }
        }])[0]
        let bytes = 2.0 * Double(count * MemoryLayout<Float>.stride)
        return Record(kernel: "copy", shape: "256 MiB, read + write", milliseconds: seconds * 1e3,
                      gbytes_per_s: bytes / seconds * 1e-9, threads: threads)
    }

    func row(_ r: Record) -> String {
        func f(_ v: Double?, _ format: String = "%.1f") -> String { v.map { String(format: format, $0) } ?? "-" }
        let rate = r.gflops.map { String(format: "%.1f GFLOP/s", $0) } ?? r.gbytes_per_s.map { String(format: "%.1f GB/s", $0) } ?? "-"
        return [r.kernel.padding(toLength: 16, withPad: " ", startingAt: 0),
                r.shape.padding(toLength: 30, withPad: " ", startingAt: 0),
                String(format: "%9.2f ms", r.milliseconds),
                rate.padding(toLength: 16, withPad: " ", startingAt: 0),
                "sgemm " + f(r.sgemm_gflops).padding(toLength: 6, withPad: " ", startingAt: 0),
                "ratio " + f(r.ratio, "%.2f"),
                "vs same " + f(r.ratio_to_same_shape_sgemm, "%.2f"),
                r.check ?? "", r.note ?? ""].joined(separator: "  ")
    }

    func table(_ records: [Record]) -> String {
        var lines = ["| kernel | shape | ms | rate | sgemm same shape | ratio to square | ratio to same shape | check |",
                     "|---|---|---|---|---|---|---|---|"]
        for r in records {
            let rate = r.gflops.map { String(format: "%.1f GFLOP/s", $0) } ?? r.gbytes_per_s.map { String(format: "%.1f GB/s", $0) } ?? "-"
            let cells = [r.kernel + (r.note.map { " (\($0))" } ?? ""), r.shape, String(format: "%.2f", r.milliseconds), rate,
                         r.sgemm_gflops.map { String(format: "%.1f", $0) } ?? "-",
                         r.ratio.map { String(format: "%.2f", $0) } ?? "-",
                         r.ratio_to_same_shape_sgemm.map { String(format: "%.2f", $0) } ?? "-",
                         r.check ?? "-"]
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }
}
