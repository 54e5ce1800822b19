import Runtime

/// Triple-loop linear layer in Double, for tests.
extension Linear {
    public static func forwardReference(_ x: Tensor, weight: Tensor, bias: Tensor?, into y: Tensor) {
        let (outputs, inputs, batch) = check("forward", x, weight)
        for o in 0..<outputs { for n in 0..<batch {
            var sum = Double(bias?[o] ?? 0)
            for i in 0..<inputs { sum += Double(weight[o, i]) * Double(x[i, n]) }
            y[o, n] = Float(sum)
        } }
    }

    public static func backwardReference(_ dy: Tensor, x: Tensor, weight: Tensor, dx: Tensor?, dWeight: Tensor?, dBias: Tensor?) {
        let (outputs, inputs, batch) = check("backward", x, weight)
        if let dx {
            for i in 0..<inputs { for n in 0..<batch {
                var sum = 0.0
                for o in 0..<outputs { sum += Double(weight[o, i]) * Double(dy[o, n]) }
                dx[i, n] += Float(sum)
            } }
        }
        if let dWeight {
            for o in 0..<outputs { for i in 0..<inputs {
                var sum = 0.0
                for n in 0..<batch { sum += Double(dy[o, n]) * Double(x[i, n]) }
                dWeight[o, i] += Float(sum)
            } }
        }
        if let dBias {
            for o in 0..<outputs {
                var sum = 0.0
                for n in 0..<batch { sum += Double(dy[o, n]) }
                dBias[o] += Float(sum)
            }
        }
    }
}
