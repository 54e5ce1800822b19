import Runtime

/// Pooling written straight from the definitions (every window position visited, padding
/// tested explicitly), for tests.
extension Pooling {
    public static func maxForwardReference(_ x: Tensor, _ p: PoolParameters, into y: Tensor) {
        let shape = outputShape(input: x.shape, p)
        precondition(y.shape == shape, "Pooling.maxForward: y \(y.shape) vs expected \(shape)")
        for c in 0..<shape[0] { for n in 0..<shape[1] { for oh in 0..<shape[2] { for ow in 0..<shape[3] {
            var best = -Float.infinity
            for i in 0..<p.kernel { for j in 0..<p.kernel {
                let h = oh * p.stride - p.padding + i, w = ow * p.stride - p.padding + j
                let v = h >= 0 && h < x.shape[2] && w >= 0 && w < x.shape[3] ? x[c, n, h, w] : -Float.infinity
                if v > best { best = v }
            } }
            y[c, n, oh, ow] = best
        } } } }
    }

    public static func maxBackwardReference(_ dy: Tensor, x: Tensor, _ p: PoolParameters, dx: Tensor) {
        let shape = outputShape(input: x.shape, p)
        precondition(dy.shape == shape && dx.shape == x.shape, "Pooling.maxBackward: dy \(dy.shape), dx \(dx.shape), x \(x.shape)")
        for c in 0..<shape[0] { for n in 0..<shape[1] { for oh in 0..<shape[2] { for ow in 0..<shape[3] {
            var best = -Float.infinity, at = (-1, -1)
            for i in 0..<p.kernel { for j in 0..<p.kernel {
                let h = oh * p.stride - p.padding + i, w = ow * p.stride - p.padding + j
                if h >= 0 && h < x.shape[2] && w >= 0 && w < x.shape[3] && (at.0 < 0 || x[c, n, h, w] > best) {
                    best = x[c, n, h, w]
                    at = (h, w)
                }
            } }
            dx[c, n, at.0, at.1] += dy[c, n, oh, ow]
        } } } }
    }

    /// Window sum over real positions and the divisor, per PyTorch's AvgPool2d.
    static func averageWindow(_ x: Tensor?, _ c: Int, _ n: Int, _ oh: Int, _ ow: Int, height: Int, width: Int,
                              _ p: PoolParameters) -> (sum: Double, positions: [(Int, Int)], divisor: Double) {
        var sum = 0.0, positions = [(Int, Int)](), padded = 0
        for i in 0..<p.kernel { for j in 0..<p.kernel {
            let h = oh * p.stride - p.padding + i, w = ow * p.stride - p.padding + j
            if h >= 0 && h < height && w >= 0 && w < width {
                if let x { sum += Double(x[c, n, h, w]) }
                positions.append((h, w))
            } else if h < height + p.padding && w < width + p.padding {
                padded += 1 // inside the padding band (PyTorch counts it when countIncludePad)
            }
        } }
        return (sum, positions, Double(positions.count + (p.countIncludePad ? padded : 0)))
    }

    public static func avgForwardReference(_ x: Tensor, _ p: PoolParameters, into y: Tensor) {
        let shape = outputShape(input: x.shape, p)
        precondition(y.shape == shape, "Pooling.avgForward: y \(y.shape) vs expected \(shape)")
        for c in 0..<shape[0] { for n in 0..<shape[1] { for oh in 0..<shape[2] { for ow in 0..<shape[3] {
            let window = averageWindow(x, c, n, oh, ow, height: x.shape[2], width: x.shape[3], p)
            y[c, n, oh, ow] = Float(window.sum / window.divisor)
        } } } }
    }

    public static func avgBackwardReference(_ dy: Tensor, _ p: PoolParameters, dx: Tensor) {
        let shape = outputShape(input: dx.shape, p)
        precondition(dy.shape == shape, "Pooling.avgBackward: dy \(dy.shape) vs expected \(shape)")
        for c in 0..<shape[0] { for n in 0..<shape[1] { for oh in 0..<shape[2] { for ow in 0..<shape[3] {
            let window = averageWindow(nil, c, n, oh, ow, height: dx.shape[2], width: dx.shape[3], p)
            for (h, w) in window.positions {
                dx[c, n, h, w] += Float(Double(dy[c, n, oh, ow]) / window.divisor)
            }
        } } } }
    }

    public static func globalAverageForwardReference(_ x: Tensor, into y: Tensor) {
        for c in 0..<x.shape[0] { for n in 0..<x.shape[1] {
            var sum = 0.0
            for h in 0..<x.shape[2] { for w in 0..<x.shape[3] { sum += Double(x[c, n, h, w]) } }
            y[c, n] = Float(sum / Double(x.shape[2] * x.shape[3]))
        } }
    }

    public static func globalAverageBackwardReference(_ dy: Tensor, dx: Tensor) {
        for c in 0..<dx.shape[0] { for n in 0..<dx.shape[1] {
            for h in 0..<dx.shape[2] { for w in 0..<dx.shape[3] {
                dx[c, n, h, w] += dy[c, n] / Float(dx.shape[2] * dx.shape[3])
            } }
        } }
    }
}
