import Foundation
import Kernels
import Runtime

/// Memory-bound kernels at DenseNet shapes, reported in GB/s: bytes = every tensor the kernel
/// must read plus every tensor it writes, each counted once (the traffic a perfect kernel moves;
/// an accumulating output counts as read and written). Compare with the plain copy's rate.
enum MemoryBoundCases {
    static func relativeCheck(_ pairs: [(String, [Float], [Float])]) -> CheckResult {
        let worst = pairs.map { GradientCheck.relativeError($0.1, $0.2) }.max() ?? 0
        return CheckResult(passed: worst < 1e-4, detail: String(format: "%@ (same shape, rel err %.1e)",
                                                                worst < 1e-4 ? "ok" : "FAILED", worst))
    }

    static func bytes(_ shapes: [Int]...) -> Double {
        Double(shapes.map { $0.reduce(1, *) }.reduce(0, +) * MemoryLayout<Float>.stride)
    }

    /// BN + ReLU over 216 channels at batch 64, 32x32 (the widest layer input of DenseNet-BC-100's first block).
    static var batchNorm: [BenchCase] {
        let shape = [216, 64, 32, 32], c = [216]
        let text = "[216,64,32,32]"
        let forward = BenchCase(kernel: "bn_relu_forward_training", shape: text, work: .bytes(bytes(shape, shape))) {
            let x = Tensor.randomNormal(shape, seed: 1), y = Tensor(shape: shape)
            let gamma = Tensor.randomUniform(c, low: 0.5, high: 1.5, seed: 2), beta = Tensor.randomUniform(c, seed: 3)
            let mean = Tensor(shape: c), invStd = Tensor(shape: c)
            return Prepared(check: {
                let yRef = Tensor(shape: shape), meanRef = Tensor(shape: c), invRef = Tensor(shape: c)
                BatchNorm.forwardTraining(x, gamma: gamma, beta: beta, eps: 1e-5, relu: true, into: y, mean: mean, invStd: invStd)
                BatchNorm.forwardTrainingReference(x, gamma: gamma, beta: beta, eps: 1e-5, relu: true,
                                                   into: yRef, mean: meanRef, invStd: invRef)
                return relativeCheck([("y", y.array, yRef.array), ("invStd", invStd.array, invRef.array)])
            }, run: {
                BatchNorm.forwardTraining(x, gamma: gamma, beta: beta, eps: 1e-5, relu: true, into: y, mean: mean, invStd: invStd)
            })
        }
        let backward = BenchCase(kernel: "bn_relu_backward", shape: text, work: .bytes(bytes(shape, shape, shape, shape))) {
            let x = Tensor.randomNormal(shape, seed: 1), dy = Tensor.randomNormal(shape, seed: 4)
            let gamma = Tensor.randomUniform(c, low: 0.5, high: 1.5, seed: 2), beta = Tensor.randomUniform(c, seed: 3)
            let mean = Tensor(shape: c), invStd = Tensor(shape: c), scratch = Tensor(shape: shape)
            BatchNorm.forwardTraining(x, gamma: gamma, beta: beta, eps: 1e-5, relu: true, into: scratch, mean: mean, invStd: invStd)
            let dx = Tensor.zeros(shape), dg = Tensor.zeros(c), db = Tensor.zeros(c)
            // Checked without the ReLU: over 14 M elements a few y lie within float rounding of 0,
            // where the float kernel and the double reference may disagree on the mask (one flipped
            // element moves dx by O(1)); the fused ReLU is checked on small shapes in KernelTests.
            return Prepared(check: {
                let a = Tensor.zeros(shape), b = Tensor.zeros(shape), ga = Tensor.zeros(c), gb = Tensor.zeros(c)
                BatchNorm.backward(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: false,
                                   dx: a, dGamma: ga, dBeta: nil)
                BatchNorm.backwardReference(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: false,
                                            dx: b, dGamma: gb, dBeta: nil)
                return relativeCheck([("dx", a.array, b.array), ("dGamma", ga.array, gb.array)])
            }, run: {
                BatchNorm.backward(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: true,
                                   dx: dx, dGamma: dg, dBeta: db)
            })
        }
        return [forward, backward]
    }

    /// Pooling: DenseNet-121's stem max pool (64 channels, batch 8, 112x112, 3/2 pad 1) and
    /// DenseNet-BC-100's first transition average pool (108 channels, batch 64, 32x32, 2/2).
    static var pooling: [BenchCase] {
        var cases = [BenchCase]()
        for (name, input, p) in [("maxpool3s2p1", [64, 8, 112, 112], PoolParameters(kernel: 3, stride: 2, padding: 1)),
                                 ("avgpool2s2", [108, 64, 32, 32], PoolParameters(kernel: 2, stride: 2))] {
            let output = Pooling.outputShape(input: input, p)
            let text = "\(input) k\(p.kernel) s\(p.stride) p\(p.padding)"
            let isMax = name.hasPrefix("max")
            cases.append(BenchCase(kernel: "\(name)_forward", shape: text, work: .bytes(bytes(input, output))) {
                let x = Tensor.randomNormal(input, seed: 5), y = Tensor(shape: output)
                return Prepared(check: {
                    let yRef = Tensor(shape: output)
                    if isMax { Pooling.maxForward(x, p, into: y); Pooling.maxForwardReference(x, p, into: yRef) }
                    else { Pooling.avgForward(x, p, into: y); Pooling.avgForwardReference(x, p, into: yRef) }
                    return relativeCheck([("y", y.array, yRef.array)])
                }, run: { isMax ? Pooling.maxForward(x, p, into: y) : Pooling.avgForward(x, p, into: y) })
            })
            // Backward reads dy (and x for max) and accumulates into dx (read + write).
            let backwardBytes = isMax ? bytes(output, input, input, input) : bytes(output, input, input)
            cases.append(BenchCase(kernel: "\(name)_backward", shape: text, work: .bytes(backwardBytes)) {
                let x = Tensor.randomNormal(input, seed: 5), dy = Tensor.randomNormal(output, seed: 6), dx = Tensor.zeros(input)
                return Prepared(check: {
                    let a = Tensor.zeros(input), b = Tensor.zeros(input)
                    if isMax { Pooling.maxBackward(dy, x: x, p, dx: a); Pooling.maxBackwardReference(dy, x: x, p, dx: b) }
                    else { Pooling.avgBackward(dy, p, dx: a); Pooling.avgBackwardReference(dy, p, dx: b) }
                    return relativeCheck([("dx", a.array, b.array)])
                }, run: { isMax ? Pooling.maxBackward(dy, x: x, p, dx: dx) : Pooling.avgBackward(dy, p, dx: dx) })
            })
        }
        return cases
    }

    /// The activation layout, measured: a 1x1 convolution 216→48 over a channel prefix of a
    /// DenseNet-BC block buffer at batch 64, 32x32. Channel-major (C, N, H, W), the layout used
    /// here, makes the prefix one contiguous 216 × 65536 matrix and the convolution one product;
    /// in PyTorch's (N, C, H, W) the prefix is 64 separate 216 × 1024 slabs (one per image, 1 MiB
    /// apart in a 256-channel buffer), so it takes 64 products of 48 × 216 × 1024.
    static var layout: [BenchCase] {
        let (cin, cout, n, hw, buffer) = (216, 48, 64, 1024, 256)
        let flops = 2.0 * Double(cout * cin * n * hw)
        let channelMajor = BenchCase(kernel: "layout_cnhw_conv1x1_prefix", shape: "216->48 N=64 32x32 (one product)",
                                     work: .flops(flops), sgemm: [GemmShape(m: cout, n: n * hw, k: cin)]) {
            let x = Tensor.randomUniform([buffer, n, 32, 32], seed: 1).channels(0..<cin)
            let w = Tensor.randomNormal([cout, cin, 1, 1], std: 0.1, seed: 2), y = Tensor(shape: [cout, n, 32, 32])
            return Prepared(check: nil, run: { Conv2d.forward(x, weight: w, bias: nil, ConvParameters(kernel: 1), into: y) })
        }
        let batchMajor = BenchCase(kernel: "layout_nchw_conv1x1_prefix", shape: "216->48 N=64 32x32 (64 products)",
                                   work: .flops(flops), sgemm: [GemmShape(m: cout, n: n * hw, k: cin)],
                                   note: "per image, both threads") {
            let x = Tensor.randomUniform([n, buffer, 32, 32], seed: 1)
            let w = Tensor.randomNormal([cout, cin], std: 0.1, seed: 2), y = Tensor(shape: [n, cout, 32, 32])
            return Prepared(check: nil, run: {
                Gemm.useOneBLASThread()
                let threads = Parallel.threadCount
                Parallel.forEach(threads) { t in
                    for image in Parallel.chunk(t, of: threads, count: n) {
                        Gemm.sgemm(m: cout, n: hw, k: cin, a: w.pointer, lda: cin, b: x.pointer + image * buffer * hw, ldb: hw,
                                   beta: 0, c: y.pointer + image * cout * hw, ldc: hw)
                    }
                }
            })
        }
        return [channelMajor, batchMajor]
    }
}
