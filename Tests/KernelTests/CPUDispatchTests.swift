import Foundation
import XCTest
import Runtime
import Kernels

/// The run-time kernel levels (KernelLevel, Sources/CKernels): the level chosen matches what
/// /proc/cpuinfo says the CPU has, and every level the CPU supports agrees with the Swift
/// reference row kernels through the public batch-norm entry points.
final class CPUDispatchTests: XCTestCase {
    /// Row lengths with every tail: under one vector, odd, over one 512-element reduction block.
    static let columnCounts = [1, 7, 8, 17, 33, 1037, 4099]

    func testBestLevelMatchesCPUInfo() throws {
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        guard let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else {
            throw XCTSkip("no flags line in /proc/cpuinfo (not x86?)")
        }
        let flags = Set(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init))
        let expected: KernelLevel
        if flags.isSuperset(of: ["avx512f", "avx512dq", "avx512bw", "avx512vl", "avx2", "fma"]) { expected = .avx512 }
        else if flags.isSuperset(of: ["avx2", "fma"]) { expected = .avx2 }
        else { expected = .baseline }
        XCTAssertEqual(KernelLevel.best, expected, "flags: avx2 \(flags.contains("avx2")) avx512f \(flags.contains("avx512f"))")
        XCTAssertEqual(KernelLevel.active, KernelLevel.best, "the best level is the default")
        XCTAssertTrue(KernelLevel.supported.contains(.baseline))
        XCTAssertTrue(KernelLevel.supported.contains(.swiftReference))
        for level in KernelLevel.allCases where level.rawValue > expected.rawValue {
            XCTAssertFalse(level.isSupported, "\(level) reported supported on a CPU without it")
        }
    }

    /// Statistics given: the normalised rows are elementwise and uncontracted, so every level
    /// gives the Swift reference's bits exactly.
    func testApplyStatisticsIsBitIdenticalOnEveryLevel() {
        for columns in Self.columnCounts {
            let x = Tensor.randomNormal([3, columns], std: 2, seed: 7)
            let gamma = Tensor.randomUniform([3], low: 0.5, high: 1.5, seed: 8), beta = Tensor.randomUniform([3], seed: 9)
            let mean = Tensor.randomUniform([3], seed: 10), invStd = Tensor.randomUniform([3], low: 0.5, high: 2, seed: 11)
            for relu in [false, true] {
                let reference = normalized(.swiftReference, x, gamma, beta, mean, invStd, relu)
                for level in KernelLevel.supported where level != .swiftReference {
                    let y = normalized(level, x, gamma, beta, mean, invStd, relu)
                    XCTAssertEqual(y, reference, "\(level), \(columns) columns, relu \(relu)")
                }
            }
        }
    }

    func normalized(_ level: KernelLevel, _ x: Tensor, _ gamma: Tensor, _ beta: Tensor, _ mean: Tensor,
                    _ invStd: Tensor, _ relu: Bool) -> [Float] {
        let y = Tensor.zeros(x.shape)
        KernelLevel.with(level) {
            BatchNorm.forwardWithStatistics(x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: relu, into: y)
        }
        return y.array
    }

    /// Training forward (the blocked sums) and backward (sums and input gradient, through the
    /// ReLU) on every level against the Swift references, on rows with a large mean.
    func testTrainingForwardAndBackwardAgreeOnEveryLevel() {
        for columns in Self.columnCounts where columns > 1 {
            let channels = 4
            let x = Tensor.randomNormal([channels, columns], std: 1, seed: 21)
            x.pointer.update(from: x.array.map { $0 + 3 }, count: x.count)   // mean 3: cancellation matters
            let dy = Tensor.randomNormal([channels, columns], seed: 22)
            let gamma = Tensor.randomUniform([channels], low: 0.5, high: 1.5, seed: 23)
            let beta = Tensor.randomUniform([channels], seed: 24)
            for relu in [false, true] {
                let reference = run(.swiftReference, x, dy, gamma, beta, relu)
                for level in KernelLevel.supported where level != .swiftReference {
                    let result = run(level, x, dy, gamma, beta, relu)
                    for (name, a, b) in zip3(["y", "mean", "invStd", "dx", "dGamma", "dBeta"], result, reference) {
                        let error = GradientCheck.relativeError(a, b)
                        XCTAssertLessThanOrEqual(error, 1e-5, "\(level) \(name), \(columns) columns, relu \(relu)")
                    }
                }
            }
        }
    }

    func run(_ level: KernelLevel, _ x: Tensor, _ dy: Tensor, _ gamma: Tensor, _ beta: Tensor, _ relu: Bool) -> [[Float]] {
        let c = [x.shape[0]]
        let y = Tensor.zeros(x.shape), mean = Tensor.zeros(c), invStd = Tensor.zeros(c)
        let dx = Tensor.filled(x.shape, 0.25), dGamma = Tensor.zeros(c), dBeta = Tensor.zeros(c)
        KernelLevel.with(level) {
            BatchNorm.forwardTraining(x, gamma: gamma, beta: beta, eps: 1e-5, relu: relu, into: y, mean: mean, invStd: invStd)
        }
        // The backward of every level reads the reference's statistics, so its ReLU masks are
        // the same elements and only the sums' rounding differs.
        let refMean = Tensor.zeros(c), refInvStd = Tensor.zeros(c), scratch = Tensor.zeros(x.shape)
        KernelLevel.with(.swiftReference) {
            BatchNorm.forwardTraining(x, gamma: gamma, beta: beta, eps: 1e-5, relu: relu, into: scratch,
                                      mean: refMean, invStd: refInvStd)
        }
        KernelLevel.with(level) {
            BatchNorm.backward(dy, x: x, gamma: gamma, beta: beta, mean: refMean, invStd: refInvStd, relu: relu,
                               dx: dx, dGamma: dGamma, dBeta: dBeta)
        }
        return [y.array, mean.array, invStd.array, dx.array, dGamma.array, dBeta.array]
    }

    func zip3<A, B, C>(_ a: [A], _ b: [B], _ c: [C]) -> [(A, B, C)] {
        (0..<min(a.count, b.count, c.count)).map { (a[$0], b[$0], c[$0]) }
    }
}
