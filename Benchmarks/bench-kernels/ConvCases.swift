import Foundation
import Kernels
import Runtime

/// A convolution to benchmark: forward and backward (dx + dW) cases.
struct ConvBenchmark {
    var cin: Int, cout: Int, n: Int, h: Int, w: Int
    var p: ConvParameters
    /// Batch for the reference check (the reference loops are slow on big shapes).
    var checkBatch: Int

    var name: String { "conv\(p.kernelH)x\(p.kernelW)" }
    var input: [Int] { [cin, n, h, w] }
    var weight: [Int] { [cout, cin, p.kernelH, p.kernelW] }
    var shape: String { "\(cin)->\(cout) N=\(n) \(h)x\(w) \(p)" }

    var cases: [BenchCase] {
        let out = Conv2d.outputShape(input: input, weight: weight, p)
        let columns = out[1] * out[2] * out[3], rows = weight[1] * weight[2] * weight[3]
        let flops = Conv2d.forwardFLOPs(input: input, weight: weight, p)
        let split = Conv2d.backwardSplit(input: input, weight: weight, p, inputGradient: true)
        let forward = BenchCase(kernel: "\(name)_forward", shape: shape, work: .flops(flops),
                                sgemm: [GemmShape(m: cout, n: columns, k: rows)]) {
            let x = Tensor.randomUniform(input, seed: 1), wt = Tensor.randomNormal(weight, std: 0.1, seed: 2)
            let y = Tensor(shape: out)
            return Prepared(check: { checkForward() }, run: { Conv2d.forward(x, weight: wt, bias: nil, p, into: y) })
        }
        let backward = BenchCase(kernel: "\(name)_backward", shape: shape, work: .flops(2 * flops),
                                 sgemm: [GemmShape(m: rows, n: columns, k: cout, transA: true),
                                         GemmShape(m: cout, n: rows, k: columns, transB: true)],
                                 note: p.isPointwise ? "one product each" : "split \(split.rawValue)") {
            let x = Tensor.randomUniform(input, seed: 1), wt = Tensor.randomNormal(weight, std: 0.1, seed: 2)
            let dy = Tensor.randomUniform(out, seed: 3)
            let dx = Tensor.zeros(input), dw = Tensor.zeros(weight)
            // dx written, not added to, as in a training step (a fresh gradient buffer, Autograd.recordWriting).
            return Prepared(check: { checkBackward() },
                            run: { Conv2d.backward(dy, x: x, weight: wt, p, dx: dx, dWeight: dw, dBias: nil, overwriteDx: true) })
        }
        return [forward, backward]
    }

    var checkShape: ConvBenchmark { var c = self; c.n = checkBatch; return c }

    /// Fast forward (with bias) against the reference at batch `checkBatch`.
    func checkForward() -> CheckResult {
        let c = checkShape
        let out = Conv2d.outputShape(input: c.input, weight: c.weight, p)
        let x = Tensor.randomUniform(c.input, seed: 11), wt = Tensor.randomUniform(c.weight, seed: 12)
        let b = Tensor.randomUniform([cout], seed: 13)
        let y = Tensor(shape: out), yRef = Tensor(shape: out)
        Conv2d.forward(x, weight: wt, bias: b, p, into: y)
        Conv2d.forwardReference(x, weight: wt, bias: b, p, into: yRef)
        return verdict([("y", GradientCheck.relativeError(y.array, yRef.array))], batch: c.n)
    }

    /// Fast backward (dx unless `inputGradient` is false, dW, dB) against the reference at batch `checkBatch`.
    func checkBackward(inputGradient: Bool = true) -> CheckResult {
        let c = checkShape
        let out = Conv2d.outputShape(input: c.input, weight: c.weight, p)
        let x = Tensor.randomUniform(c.input, seed: 21), wt = Tensor.randomUniform(c.weight, seed: 22)
        let dy = Tensor.randomUniform(out, seed: 23)
        let dx = Tensor.zeros(c.input), dw = Tensor.zeros(c.weight), db = Tensor.zeros([cout])
        let dxRef = Tensor.zeros(c.input), dwRef = Tensor.zeros(c.weight), dbRef = Tensor.zeros([cout])
        Conv2d.backward(dy, x: x, weight: wt, p, dx: inputGradient ? dx : nil, dWeight: dw, dBias: db, overwriteDx: true)
        Conv2d.backwardReference(dy, x: x, weight: wt, p, dx: inputGradient ? dxRef : nil, dWeight: dwRef, dBias: dbRef)
        return verdict([("dx", GradientCheck.relativeError(dx.array, dxRef.array)),
                        ("dW", GradientCheck.relativeError(dw.array, dwRef.array)),
                        ("dB", GradientCheck.relativeError(db.array, dbRef.array))], batch: c.n)
    }

    func verdict(_ errors: [(String, Float)], batch: Int) -> CheckResult {
        let worst = errors.map(\.1).max() ?? 0
        let detail = String(format: "%@ (batch %d, rel err %.1e)", worst < 1e-4 ? "ok" : "FAILED", batch, worst)
        return CheckResult(passed: worst < 1e-4, detail: detail)
    }
}
