import Runtime

/// Plain element-by-element versions of `Elementwise`, for tests.
extension Elementwise {
    public static func addReference(_ a: Tensor, _ b: Tensor, into y: Tensor) {
        precondition(a.shape == b.shape && a.shape == y.shape, "Elementwise.add: a \(a.shape) vs b \(b.shape) vs y \(y.shape)")
        let va = a.array, vb = b.array
        y.assign(Tensor(shape: y.shape, values: zip(va, vb).map { $0 + $1 }, category: .scratch))
    }

    public static func accumulateReference(_ x: Tensor, into y: Tensor, scale: Float = 1) {
        precondition(x.shape == y.shape, "Elementwise.accumulate: x \(x.shape) vs y \(y.shape)")
        let vx = x.array, vy = y.array
        y.assign(Tensor(shape: y.shape, values: zip(vy, vx).map { $0 + scale * $1 }, category: .scratch))
    }

    public static func scaleReference(_ x: Tensor, by s: Float) {
        x.assign(Tensor(shape: x.shape, values: x.array.map { $0 * s }, category: .scratch))
    }

    public static func sumReference(_ x: Tensor) -> Double {
        x.array.reduce(0.0) { $0 + Double($1) }
    }

    public static func copyReference(_ x: Tensor, into y: Tensor) {
        precondition(x.shape == y.shape, "Elementwise.copy: x \(x.shape) vs y \(y.shape)")
        y.assign(x)
    }
}
