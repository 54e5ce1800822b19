import Runtime

/// Central finite differences, for checking every backward against its forward.
public enum GradientCheck {
    /// ∂loss/∂input[i] for every element of `input` (which `loss` reads), by central differences.
    /// `loss` is evaluated in Double so that float32 rounding of the sum does not swamp the step.
    public static func numericalGradient(of input: Tensor, epsilon: Float = 1e-2,
                                         _ loss: () -> Double) -> [Float] {
        var indices = [Int]()
        input.forEachIndex { indices.append($0) }
        let base = input.storage.base
        var gradient = [Float](repeating: 0, count: indices.count)
        for (i, at) in indices.enumerated() {
            let saved = base[at]
            base[at] = saved + epsilon
            let plus = loss()
            base[at] = saved - epsilon
            let minus = loss()
            base[at] = saved
            gradient[i] = Float((plus - minus) / (2 * Double(epsilon)))
        }
        return gradient
    }

    /// max |a−b| / max(1, max|b|): relative to the scale of the expected values, so that
    /// tiny entries do not dominate. Infinite where one side is NaN and the other not (NaN at the
    /// same place on both sides counts as equal): `max` would drop a NaN difference.
    public static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "relativeError: \(a.count) vs \(b.count) elements")
        var maxDiff: Float = 0, scale: Float = 1
        for (x, y) in zip(a, b) {
            if x.isNaN && y.isNaN { continue }
            if x.isNaN || y.isNaN { return .infinity }
            maxDiff = max(maxDiff, abs(x - y))
            scale = max(scale, abs(y))
        }
        return maxDiff / scale
    }

    /// Σ weights[i]·values[i] in Double: a loss whose gradient with respect to `values` is `weights`.
    public static func weightedSum(_ values: Tensor, _ weights: [Float]) -> Double {
        precondition(values.count == weights.count, "weightedSum: \(values.count) values, \(weights.count) weights")
        var sum = 0.0
        var i = 0
        values.forEachIndex { at in
            sum += Double(values.storage.base[at]) * Double(weights[i])
            i += 1
        }
        return sum
    }
}
