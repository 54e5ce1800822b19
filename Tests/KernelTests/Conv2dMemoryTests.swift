import XCTest
import Runtime
import Kernels

/// Scratch accounting of the convolution kernels: every workspace is counted, freed by the end
/// of the call, and bounded by `Conv2d.workspaceLimitBytes` plus the per-thread dW partials:
///   peak scratch ≤ max(limit, threads · byteCount(Cin·kh·kw))          (column tiles, ≥ 1 column each)
///                + byteCount(threads · Cout·Cin·kh·kw)                  (dW partials, backward only: up to one per thread)
final class Conv2dMemoryTests: XCTestCase {
    func bound(_ c: ConvCase, limit: Int, threads: Int, backward: Bool) -> Int {
        let rows = c.cin * c.p.kernelH * c.p.kernelW, weights = c.cout * rows
        let tiles = max(limit, threads * Memory.byteCount(elements: rows + c.p.kernelW * c.cout))
        let tapWeights = Memory.byteCount(elements: weights)
        guard backward else { return tiles + tapWeights }
        return tiles + tapWeights + Memory.byteCount(elements: threads * weights)
    }

    /// Runs forward and backward, checking scratch returns to its starting value and the peak.
    func checkScratch(_ c: ConvCase, limit: Int, threads: Int, file: StaticString = #filePath, line: UInt = #line) {
        withConvSettings(threads: threads, workspace: limit) {
            let x = Tensor.randomUniform(c.inputShape, seed: 41), w = Tensor.randomUniform(c.weightShape, seed: 42)
            let y = Tensor(shape: c.outputShape), dy = Tensor.randomUniform(c.outputShape, seed: 43)
            let dx = Tensor.zeros(c.inputShape), dw = Tensor.zeros(c.weightShape)
            let before = Memory.active(.scratch)

            Memory.resetPeak()
            Conv2d.forward(x, weight: w, bias: nil, c.p, into: y)
            XCTAssertEqual(Memory.active(.scratch), before, "forward left scratch behind \(c)", file: file, line: line)
            let forwardPeak = Memory.peak(.scratch) - before
            XCTAssertLessThanOrEqual(forwardPeak, bound(c, limit: limit, threads: threads, backward: false),
                                     "forward scratch \(c)", file: file, line: line)

            Memory.resetPeak()
            Conv2d.backward(dy, x: x, weight: w, c.p, dx: dx, dWeight: dw, dBias: nil)
            XCTAssertEqual(Memory.active(.scratch), before, "backward left scratch behind \(c)", file: file, line: line)
            let backwardPeak = Memory.peak(.scratch) - before
            XCTAssertLessThanOrEqual(backwardPeak, bound(c, limit: limit, threads: threads, backward: true),
                                     "backward scratch \(c)", file: file, line: line)

            // Never the full column matrix when the limit is below it.
            let full = Memory.byteCount(elements: c.cin * c.p.kernelH * c.p.kernelW * c.outputShape.dropFirst().reduce(1, *))
            if limit < full {
                XCTAssertLessThan(forwardPeak, full, "forward built a full column matrix \(c)", file: file, line: line)
            }
        }
    }

    func testScratchIsFreedAndBounded() {
        let cases = [
            ConvCase(cin: 4, cout: 6, n: 3, h: 17, w: 19, p: ConvParameters(kernel: 3, padding: 1), bias: false),
            ConvCase(cin: 12, cout: 5, n: 2, h: 16, w: 16, p: ConvParameters(kernel: 3, padding: 1), bias: false),
            ConvCase(cin: 3, cout: 8, n: 1, h: 30, w: 30, p: ConvParameters(kernel: 7, stride: 2, padding: 3), bias: false),
            ConvCase(cin: 16, cout: 8, n: 2, h: 64, w: 64, p: ConvParameters(kernel: 1), bias: false),
        ]
        for c in cases {
            for threads in [1, 2] {
                for limit in [1, 64 << 10, Conv2d.workspaceLimitBytes] {
                    checkScratch(c, limit: limit, threads: threads)
                }
            }
        }
    }
}
