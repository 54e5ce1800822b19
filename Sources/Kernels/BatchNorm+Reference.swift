import Foundation
import Runtime

/// Textbook batch norm, one element at a time in Double, for tests. Same contracts as the
/// fast versions in BatchNorm.swift.
extension BatchNorm {
    /// x as (C, columns) in Double, and the per-channel values of `t` in Double.
    static func rows(_ x: Tensor) -> (channels: Int, columns: Int, values: [Double]) {
        let channels = x.shape[0]
        return (channels, channels == 0 ? 0 : x.count / channels, x.array.map(Double.init))
    }

    static func doubles(_ t: Tensor) -> [Double] { t.array.map(Double.init) }

    static func store(_ values: [Double], into t: Tensor) {
        t.assign(Tensor(shape: t.shape, values: values.map(Float.init), category: .scratch))
    }

    public static func forwardTrainingReference(_ x: Tensor, gamma: Tensor, beta: Tensor, eps: Float, relu: Bool,
                                                into y: Tensor, mean: Tensor, invStd: Tensor) {
        let (channels, columns, v) = rows(x)
        var means = [Double](repeating: 0, count: channels), invs = means
        for c in 0..<channels {
            var sum = 0.0
            for j in 0..<columns { sum += v[c * columns + j] }
            let mu = sum / Double(columns)
            var squares = 0.0
            for j in 0..<columns { squares += (v[c * columns + j] - mu) * (v[c * columns + j] - mu) }
            means[c] = mu
            invs[c] = 1 / (squares / Double(columns) + Double(eps)).squareRoot()
        }
        store(means, into: mean)
        store(invs, into: invStd)
        store(normalized(v, channels, columns, doubles(gamma), doubles(beta), means, invs, relu), into: y)
    }

    static func normalized(_ v: [Double], _ channels: Int, _ columns: Int, _ gamma: [Double], _ beta: [Double],
                           _ mean: [Double], _ invStd: [Double], _ relu: Bool) -> [Double] {
        var out = v
        for c in 0..<channels {
            for j in 0..<columns {
                let y = gamma[c] * (v[c * columns + j] - mean[c]) * invStd[c] + beta[c]
                out[c * columns + j] = relu ? max(y, 0) : y
            }
        }
        return out
    }

    public static func forwardWithStatisticsReference(_ x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor,
                                                      invStd: Tensor, relu: Bool, into y: Tensor) {
        let (channels, columns, v) = rows(x)
        store(normalized(v, channels, columns, doubles(gamma), doubles(beta), doubles(mean), doubles(invStd), relu), into: y)
    }

    public static func forwardInferenceReference(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor,
                                                 runningVar: Tensor, eps: Float, relu: Bool, into y: Tensor) {
        let (channels, columns, v) = rows(x)
        let invs = doubles(runningVar).map { 1 / ($0 + Double(eps)).squareRoot() }
        store(normalized(v, channels, columns, doubles(gamma), doubles(beta), doubles(runningMean), invs, relu), into: y)
    }

    public static func updateRunningStatisticsReference(runningMean: Tensor, runningVar: Tensor, mean: Tensor,
                                                        invStd: Tensor, eps: Float, momentum: Float, count: Int) {
        let m = Double(momentum), n = Double(count)
        let batchVar = doubles(invStd).map { 1 / ($0 * $0) - Double(eps) }
        store(zip(doubles(runningMean), doubles(mean)).map { (1 - m) * $0 + m * $1 }, into: runningMean)
        store(zip(doubles(runningVar), batchVar).map { (1 - m) * $0 + m * $1 * n / (n - 1) }, into: runningVar)
    }

    public static func backwardReference(_ dy: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor,
                                         invStd: Tensor, relu: Bool, dx: Tensor?, dGamma: Tensor?, dBeta: Tensor?) {
        backwardReference(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: relu,
                          dx: dx, dGamma: dGamma, dBeta: dBeta, fixed: false)
    }

    public static func backwardWithFixedStatisticsReference(_ dy: Tensor, x: Tensor, gamma: Tensor, beta: Tensor,
                                                            mean: Tensor, invStd: Tensor, relu: Bool, dx: Tensor?,
                                                            dGamma: Tensor?, dBeta: Tensor?) {
        backwardReference(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: relu,
                          dx: dx, dGamma: dGamma, dBeta: dBeta, fixed: true)
    }

    /// dL/dx of y = gamma·xhat + beta with xhat = (x − μ)/σ: through μ and σ (training) it is
    /// gamma/σ·(g − mean(g) − xhat·mean(g·xhat)); with μ, σ fixed it is gamma/σ·g.
    static func backwardReference(_ dy: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor,
                                  invStd: Tensor, relu: Bool, dx: Tensor?, dGamma: Tensor?, dBeta: Tensor?, fixed: Bool) {
        let (channels, columns, v) = rows(x)
        let d = doubles(dy), g0 = doubles(gamma), b0 = doubles(beta), mu = doubles(mean), inv = doubles(invStd)
        var gx = dx.map(doubles) ?? [], gg = dGamma.map(doubles) ?? [], gb = dBeta.map(doubles) ?? []
        for c in 0..<channels {
            var g = [Double](repeating: 0, count: columns), xhat = g
            var sumG = 0.0, sumGXhat = 0.0
            for j in 0..<columns {
                xhat[j] = (v[c * columns + j] - mu[c]) * inv[c]
                let y = g0[c] * xhat[j] + b0[c]
                g[j] = relu && y <= 0 ? 0 : d[c * columns + j]
                sumG += g[j]
                sumGXhat += g[j] * xhat[j]
            }
            if !gg.isEmpty { gg[c] += sumGXhat }
            if !gb.isEmpty { gb[c] += sumG }
            if !gx.isEmpty {
                let n = Double(columns)
                for j in 0..<columns {
                    let through = fixed ? g[j] : g[j] - sumG / n - xhat[j] * sumGXhat / n
                    gx[c * columns + j] += g0[c] * inv[c] * through
                }
            }
        }
        if let dx { store(gx, into: dx) }
        if let dGamma { store(gg, into: dGamma) }
        if let dBeta { store(gb, into: dBeta) }
    }
}
