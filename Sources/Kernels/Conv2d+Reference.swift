import Runtime

/// Plain loops straight from the definition, summing in Double: the yardstick the fast paths
/// are tested against (and themselves tested against finite differences). Slow; small shapes only.
extension Conv2d {
    /// y[co, n, oh, ow] = bias[co] + Σ_{ci, ki, kj} W[co, ci, ki, kj] · x[ci, n, oh·sh − ph + ki, ow·sw − pw + kj]
    /// (zero outside x). // x (Cin, N, H, W) → y (Cout, N, Ho, Wo)
    public static func forwardReference(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: ConvParameters, into y: Tensor) {
        let g = ConvGeometry(x: x, weight: weight, p, kernel: "forwardReference")
        g.check(output: y, name: "y", kernel: "forwardReference")
        g.check(bias: bias, name: "bias", kernel: "forwardReference")
        let xp = x.pointer, wp = weight.pointer, yp = y.pointer
        for co in 0..<g.cout {
            for n in 0..<g.n {
                for oh in 0..<g.ho {
                    for ow in 0..<g.wo {
                        var sum = Double(bias?.pointer[co] ?? 0)
                        for ci in 0..<g.cin {
                            for ki in 0..<g.kh {
                                for kj in 0..<g.kw {
                                    let ih = oh * g.sh - g.ph + ki, iw = ow * g.sw - g.pw + kj
                                    guard ih >= 0 && ih < g.h && iw >= 0 && iw < g.w else { continue }
                                    sum += Double(wp[((co * g.cin + ci) * g.kh + ki) * g.kw + kj])
                                        * Double(xp[((ci * g.n + n) * g.h + ih) * g.w + iw])
                                }
                            }
                        }
                        yp[((co * g.n + n) * g.ho + oh) * g.wo + ow] = Float(sum)
                    }
                }
            }
        }
    }

    /// For every output position and every tap of the kernel that reads x:
    ///   dx[ci, n, ih, iw] += W[co, ci, ki, kj] · dy[co, n, oh, ow]
    ///   dW[co, ci, ki, kj] += x[ci, n, ih, iw] · dy[co, n, oh, ow]
    ///   dBias[co] += dy[co, n, oh, ow]
    /// accumulated in Double, then added to the given gradients.
    public static func backwardReference(_ dy: Tensor, x: Tensor, weight: Tensor, _ p: ConvParameters,
                                         dx: Tensor?, dWeight: Tensor?, dBias: Tensor?) {
        let g = ConvGeometry(x: x, weight: weight, p, kernel: "backwardReference")
        g.check(output: dy, name: "dy", kernel: "backwardReference")
        g.check(bias: dBias, name: "dBias", kernel: "backwardReference")
        if let dx { precondition(dx.shape == x.shape && dx.isContiguous, "Conv2d.backwardReference: dx \(dx.shape) vs x \(x.shape)") }
        if let dWeight {
            precondition(dWeight.shape == weight.shape && dWeight.isContiguous,
                         "Conv2d.backwardReference: dWeight \(dWeight.shape) vs weight \(weight.shape)")
        }
        let xp = x.pointer, wp = weight.pointer, gp = dy.pointer
        // Test-only code: Swift arrays are fine here (not a hot path).
        var sumX = [Double](repeating: 0, count: x.count)
        var sumW = [Double](repeating: 0, count: weight.count)
        var sumB = [Double](repeating: 0, count: g.cout)
        for co in 0..<g.cout {
            for n in 0..<g.n {
                for oh in 0..<g.ho {
                    for ow in 0..<g.wo {
                        let grad = Double(gp[((co * g.n + n) * g.ho + oh) * g.wo + ow])
                        sumB[co] += grad
                        for ci in 0..<g.cin {
                            for ki in 0..<g.kh {
                                for kj in 0..<g.kw {
                                    let ih = oh * g.sh - g.ph + ki, iw = ow * g.sw - g.pw + kj
                                    guard ih >= 0 && ih < g.h && iw >= 0 && iw < g.w else { continue }
                                    let xi = ((ci * g.n + n) * g.h + ih) * g.w + iw
                                    let wi = ((co * g.cin + ci) * g.kh + ki) * g.kw + kj
                                    sumX[xi] += Double(wp[wi]) * grad
                                    sumW[wi] += Double(xp[xi]) * grad
                                }
                            }
                        }
                    }
                }
            }
        }
        if let dx { let d = dx.pointer; for i in 0..<sumX.count { d[i] += Float(sumX[i]) } }
        if let dWeight { let d = dWeight.pointer; for i in 0..<sumW.count { d[i] += Float(sumW[i]) } }
        if let dBias { let d = dBias.pointer; for i in 0..<g.cout { d[i] += Float(sumB[i]) } }
    }
}
