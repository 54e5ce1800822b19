import Foundation
import XCTest
@testable import NeuralLayers
@testable import Runtime

/// The optimizers update all parameters' elements split across threads as one array
/// (Parallel.forSegments, Optimizers.swift): the result must equal the update formulas applied
/// element by element in a plain loop (written out below), bit for bit, at 1 to 3 threads, for
/// parameter sets around the split threshold; and `zeroGradients` must clear every gradient.
final class OptimizerParallelTests: XCTestCase {
    let chunk = Parallel.memoryMinChunk

    /// Parameter sizes whose total sits below, at and above two and three chunks, with empty
    /// and one-element tensors among them.
    var sizeSets: [[Int]] {
        [[1, 5, 0, 3], [chunk - 1, chunk], [2 * chunk - 7, 0, 3, 4], [1, 2 * chunk + 1], [chunk / 3, chunk, 1, chunk + 11, 17]]
    }

    func value(_ k: Int, _ salt: Int) -> Float { Float((k * 37 + salt * 11) % 201) * 0.01 - 1 }

    func makeParameters(_ sizes: [Int]) -> [Parameter] {
        sizes.enumerated().map { (t, n) in
            let p = Parameter(Tensor(shape: [max(n, 0)], values: (0..<n).map { value($0, t) }, category: .parameters))
            p.grad.assign(Tensor(shape: [n], values: (0..<n).map { value($0, t + 5) }, category: .scratch))
            return p
        }
    }

    func regroundGradients(_ ps: [Parameter], step: Int) {
        for (t, p) in ps.enumerated() {
            p.grad.assign(Tensor(shape: p.shape, values: (0..<p.count).map { value($0 &* (step + 2), t + 9) }, category: .scratch))
        }
    }

    func atThreadCounts(_ body: (Int) -> Void) {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        for threads in 1...3 { Parallel.threadCount = threads; body(threads) }
    }

    func testSGDMatchesAPlainLoop() {
        for (mu, nesterov, wd) in [(Float(0), false, Float(0.01)), (0.9, false, 1e-4), (0.9, true, 5e-4)] {
            atThreadCounts { threads in
                for sizes in sizeSets {
                    let ps = makeParameters(sizes)
                    var p = ps.map(\.value.array), b = ps.map { [Float](repeating: 0, count: $0.count) }
                    let sgd = SGD(parameters: ps, learningRate: 0.1, momentum: mu, nesterov: nesterov, weightDecay: wd)
                    for step in 0..<3 {
                        regroundGradients(ps, step: step)
                        let g = ps.map(\.grad.array)
                        Profile.start()
                        sgd.step()
                        let regions = Profile.stop().parallelRegions
                        for t in ps.indices {
                            for j in 0..<sizes[t] {
                                let grad = g[t][j] + wd * p[t][j]
                                if mu == 0 { p[t][j] -= 0.1 * grad; continue }
                                b[t][j] = step == 0 ? grad : mu * b[t][j] + grad
                                p[t][j] -= 0.1 * (nesterov ? grad + mu * b[t][j] : b[t][j])
                            }
                        }
                        XCTAssertEqual(ps.map { $0.value.array.map(\.bitPattern) }, p.map { $0.map(\.bitPattern) },
                                       "SGD μ \(mu) nesterov \(nesterov) sizes \(sizes) threads \(threads) step \(step)")
                        let total = sizes.reduce(0, +)
                        XCTAssertEqual(regions, min(threads, total / chunk) > 1 ? 1 : 0, "sizes \(sizes) threads \(threads)")
                    }
                }
            }
        }
    }

    func testAdamMatchesAPlainLoop() {
        let (beta1, beta2, eps, wd, lr): (Float, Float, Float, Float, Float) = (0.9, 0.999, 1e-8, 1e-4, 1e-3)
        atThreadCounts { threads in
            for sizes in sizeSets {
                let ps = makeParameters(sizes)
                var p = ps.map(\.value.array)
                var m = ps.map { [Float](repeating: 0, count: $0.count) }, v = m
                let adam = Adam(parameters: ps, learningRate: lr, beta1: beta1, beta2: beta2, eps: eps, weightDecay: wd)
                for step in 1...3 {
                    regroundGradients(ps, step: step)
                    let g = ps.map(\.grad.array)
                    adam.step()
                    let c1 = 1 - powf(beta1, Float(step)), c2 = 1 - powf(beta2, Float(step))
                    let stepSize = lr / c1
                    for t in ps.indices {
                        for j in 0..<sizes[t] {
                            let grad = g[t][j] + wd * p[t][j]
                            m[t][j] = beta1 * m[t][j] + (1 - beta1) * grad
                            v[t][j] = beta2 * v[t][j] + (1 - beta2) * grad * grad
                            p[t][j] -= stepSize * m[t][j] / ((v[t][j] / c2).squareRoot() + eps)
                        }
                    }
                    XCTAssertEqual(ps.map { $0.value.array.map(\.bitPattern) }, p.map { $0.map(\.bitPattern) },
                                   "Adam sizes \(sizes) threads \(threads) step \(step)")
                }
            }
        }
    }

    func testZeroGradientsClearsEveryElement() {
        atThreadCounts { threads in
            for sizes in sizeSets {
                let ps = makeParameters(sizes)
                SGD(parameters: ps, learningRate: 0.1).zeroGradients()
                for (t, p) in ps.enumerated() {
                    XCTAssertEqual(p.grad.array, [Float](repeating: 0, count: sizes[t]), "sizes \(sizes) threads \(threads)")
                }
            }
        }
    }

    /// Every element of the concatenated buffers is visited once, in ranges inside its buffer.
    func testForSegmentsVisitsEachElementOnce() {
        atThreadCounts { threads in
            for sizes in sizeSets + [[], [0, 0]] {
                var visits = sizes.map { [Int](repeating: 0, count: $0) }
                let lock = NSLock()
                Parallel.forSegments(sizes) { i, r in
                    lock.lock(); for j in r { visits[i][j] += 1 }; lock.unlock()
                }
                XCTAssertEqual(visits, sizes.map { [Int](repeating: 1, count: $0) }, "sizes \(sizes) threads \(threads)")
            }
        }
    }
}
