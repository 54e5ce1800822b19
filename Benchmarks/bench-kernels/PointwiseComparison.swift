import Foundation
import Kernels
import Runtime

/// `bench-kernels --compare-pointwise`: the plain 1x1 forward by our unpacked product
/// (`gemm_small_m`, `Conv2d.ownsPointwiseForward`) against OpenBLAS at the models' shapes, from
/// many positions to few, alternated in one run: where our product stops paying
/// (`Conv2d.pointwiseForwardMinimumColumnsForWide`).
struct PointwiseComparison {
    var threads: Int
    var repeats: Int

    func run() {
        // DenseNet-BC-100 b64's blocks (32x32, 16x16, 8x8) and DenseNet-121 b8's (56 … 7).
        let shapes = [(216, 48, 64, 32), (300, 48, 64, 16), (456, 48, 64, 8), (228, 48, 16, 8), (456, 48, 8, 8),
                      (512, 128, 8, 56), (256, 128, 8, 28), (480, 128, 8, 28), (256, 128, 8, 14), (736, 128, 8, 14),
                      (992, 128, 8, 14), (512, 128, 8, 7), (992, 128, 8, 7), (992, 128, 4, 7), (992, 128, 2, 7)]
        print("| shape | positions | ours ms | OpenBLAS ms | ours × faster |\n|---|---|---|---|---|")
        for (cin, cout, n, side) in shapes {
            let x = Tensor.randomUniform([cin, n, side, side], seed: 1)
            let w = Tensor.randomNormal([cout, cin, 1, 1], std: 0.1, seed: 2)
            let y = Tensor(shape: [cout, n, side, side])
            let p = ConvParameters(kernel: 1)
            let saved = Conv2d.smallProductKernel
            let seconds = interleavedMedians(repeats: repeats, [
                { Conv2d.smallProductKernel = .measured; Conv2d.forward(x, weight: w, bias: nil, p, into: y); Conv2d.smallProductKernel = saved },
                { Conv2d.smallProductKernel = .off; Conv2d.forward(x, weight: w, bias: nil, p, into: y); Conv2d.smallProductKernel = saved },
            ])
            print(String(format: "| %d->%d N=%d %dx%d | %d | %.3f | %.3f | %.2f |", cin, cout, n, side, side, n * side * side,
                         seconds[0] * 1e3, seconds[1] * 1e3, seconds[1] / seconds[0]))
        }
    }
}
