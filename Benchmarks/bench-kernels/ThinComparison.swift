import ArgumentParser
import Foundation
import Kernels
import Runtime

/// `bench-kernels --compare-thin`: the thin 3x3 convolutions (forward, backward with dx and dW,
/// weight gradient alone) by our kernels (Conv2d+Microkernel.swift) on every instruction-set
/// level the CPU has, and by the per-tap OpenBLAS path, timed in
/// alternation with the square sgemm in one run (interleavedMedians), so the ratios compare runs
/// that saw the same load from other processes on a shared machine.
struct ThinComparison {
    var threads: Int
    var repeats: Int
    var json: String?

    struct Row: Codable {
        var case_: String
        var variant: String
        var milliseconds: Double
        var gflops: Double
        var ratio_to_square: Double
        var speedup_vs_per_tap: Double
        var threads: Int
    }

    func run() throws {
        let shapes = [ConvBenchmark(cin: 48, cout: 12, n: 64, h: 32, w: 32, p: ConvParameters(kernel: 3, padding: 1), checkBatch: 2),
                      ConvBenchmark(cin: 128, cout: 32, n: 8, h: 56, w: 56, p: ConvParameters(kernel: 3, padding: 1), checkBatch: 1)]
            + [16, 8].map {
                ConvBenchmark(cin: 48, cout: 12, n: 64, h: $0, w: $0, p: ConvParameters(kernel: 3, padding: 1), checkBatch: 2)
            }
            + [28, 14, 7].map {
                ConvBenchmark(cin: 128, cout: 32, n: 8, h: $0, w: $0, p: ConvParameters(kernel: 3, padding: 1), checkBatch: 1)
            }
        let square = GemmShape(m: 2048, n: 2048, k: 2048)
        let squareRun = plainSgemm(square, threads: threads)
        let levels = KernelLevel.supported.filter { $0 != .swiftReference }
        var rows = [Row]()
        var failures = 0
        for b in shapes {
            let out = Conv2d.outputShape(input: b.input, weight: b.weight, b.p)
            let x = Tensor.randomUniform(b.input, seed: 1), wt = Tensor.randomNormal(b.weight, std: 0.1, seed: 2)
            let y = Tensor(shape: out), dy = Tensor.randomUniform(out, seed: 3)
            let dx = Tensor.zeros(b.input), dw = Tensor.zeros(b.weight)
            let flops = Conv2d.forwardFLOPs(input: b.input, weight: b.weight, b.p)
            // The weight gradient alone splits the positions into column ranges (no dx to
            // scatter); with dx, the threads own whole images and both kernels run.
            for (pass, work, body) in [("forward", flops, { Conv2d.forward(x, weight: wt, bias: nil, b.p, into: y) }),
                                       ("backward (dx + dW)", 2 * flops,
                                        { Conv2d.backward(dy, x: x, weight: wt, b.p, dx: dx, dWeight: dw, dBias: nil) }),
                                       ("weight gradient (dW)", flops,
                                        { Conv2d.backward(dy, x: x, weight: wt, b.p, dx: nil, dWeight: dw, dBias: nil) })] {
                // Variants: the per-tap path first, then the kernel at each level.
                let variants: [(String, () -> Void)] = [("per-tap OpenBLAS", {
                    Conv2d.thinKernels = .off
                    body()
                    Conv2d.thinKernels = .measured
                })] + levels.map { level in ("kernel \(level)", {
                    Conv2d.thinKernels = .always
                    KernelLevel.with(level) { body() }
                    Conv2d.thinKernels = .measured
                }) } + (pass.hasPrefix("backward") ? levels.filter { $0.rawValue >= KernelLevel.avx2.rawValue } : []).map { level in
                    // The dx kernel alone (what `.measured` does where the dW kernel is not used).
                    ("kernel \(level), dW per tap", {
                        let saved = Conv2d.thinWeightGradientMeasuredOutputs
                        Conv2d.thinWeightGradientMeasuredOutputs = .max
                        KernelLevel.with(level) { body() }
                        Conv2d.thinWeightGradientMeasuredOutputs = saved
                    })
                }
                for (name, _) in variants.dropFirst() {
                    // Check each level against the reference once, on the small batch.
                    guard let level = levels.first(where: { "kernel \($0)" == name }) else { continue }
                    Conv2d.thinKernels = .always
                    let check = KernelLevel.with(level) {
                        pass == "forward" ? b.checkForward() : b.checkBackward(inputGradient: pass.hasPrefix("backward"))
                    }
                    Conv2d.thinKernels = .measured
                    if !check.passed { failures += 1 }
                    print("\(name) \(b.shape) \(pass): \(check.detail)")
                }
                let seconds = interleavedMedians(repeats: repeats, variants.map(\.1) + [squareRun])
                let squareRate = square.flops / seconds.last! * 1e-9
                for (i, (name, _)) in variants.enumerated() {
                    let rate = work / seconds[i] * 1e-9
                    rows.append(Row(case_: "\(b.shape) \(pass)", variant: name, milliseconds: seconds[i] * 1e3, gflops: rate,
                                    ratio_to_square: rate / squareRate, speedup_vs_per_tap: seconds[0] / seconds[i],
                                    threads: threads))
                    print(String(format: "%@ %@  %-18@ %8.2f ms  %7.1f GFLOP/s  ratio to square %.2f  ×%.2f vs per-tap",
                                 b.shape, pass, name, seconds[i] * 1e3, rate, rate / squareRate, seconds[0] / seconds[i]))
                }
                print(String(format: "  (square sgemm beside them: %.1f GFLOP/s)", squareRate))
            }
        }
        print("\n| case | variant | ms | GFLOP/s | ratio to square sgemm | speedup vs per-tap |\n|---|---|---|---|---|---|")
        for r in rows {
            print(String(format: "| %@ | %@ | %.2f | %.1f | %.2f | %.2f |", r.case_, r.variant, r.milliseconds, r.gflops,
                         r.ratio_to_square, r.speedup_vs_per_tap))
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: json))
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

/// `bench-kernels --compare-levels`: batch norm + ReLU (forward in training mode, backward) at
/// [216, 64, 32, 32] on the Swift references and on every C level the CPU has (KernelLevel),
/// timed in alternation in one run, in GB/s (bytes as MemoryBoundCases counts them).
struct LevelComparison {
    var repeats: Int

    func run() {
        let shape = [216, 64, 32, 32], c = [216]
        let x = Tensor.randomNormal(shape, seed: 1), y = Tensor(shape: shape), dy = Tensor.randomNormal(shape, seed: 4)
        let gamma = Tensor.randomUniform(c, low: 0.5, high: 1.5, seed: 2), beta = Tensor.randomUniform(c, seed: 3)
        let mean = Tensor(shape: c), invStd = Tensor(shape: c)
        let dx = Tensor.zeros(shape), dg = Tensor.zeros(c), db = Tensor.zeros(c)
        BatchNorm.forwardTraining(x, gamma: gamma, beta: beta, eps: 1e-5, relu: true, into: y, mean: mean, invStd: invStd)
        let levels = KernelLevel.supported
        let forward = { BatchNorm.forwardTraining(x, gamma: gamma, beta: beta, eps: 1e-5, relu: true, into: y, mean: mean, invStd: invStd) }
        let backward = { BatchNorm.backward(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: true,
                                            dx: dx, dGamma: dg, dBeta: db) }
        let tensorBytes = MemoryBoundCases.bytes(shape)
        print("| pass | " + levels.map { "\($0)" }.joined(separator: " | ") + " |")
        print("|---|" + levels.map { _ in "---" }.joined(separator: "|") + "|")
        for (name, body, bytes) in [("bn_relu_forward_training", forward, 2 * tensorBytes),
                                    ("bn_relu_backward", backward, 4 * tensorBytes)] {
            let seconds = interleavedMedians(repeats: repeats, levels.map { level in { KernelLevel.with(level) { body() } } })
            let cells = zip(levels, seconds).map { String(format: "%.2f ms, %.1f GB/s (×%.2f vs swift)", $1 * 1e3, bytes / $1 * 1e-9,
                                                          seconds[0] / $1) }
            print("| \(name) | " + cells.joined(separator: " | ") + " |")
        }
    }
}
