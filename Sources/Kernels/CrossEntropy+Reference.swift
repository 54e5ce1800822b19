import Foundation
import Runtime

/// Cross-entropy from the definition, per sample in Double with a max shift, for tests.
extension CrossEntropy {
    /// Column n's softmax in Double.
    static func softmaxReference(_ logits: Tensor, _ n: Int) -> [Double] {
        let column = (0..<logits.shape[0]).map { Double(logits[$0, n]) }
        let m = column.max() ?? 0
        let e = column.map { exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    public static func forwardReference(_ logits: Tensor, labels: [Int32]) -> Float {
        let (_, batch) = check("forward", logits, labels)
        var total = 0.0
        for n in 0..<batch {
            let column = (0..<logits.shape[0]).map { Double(logits[$0, n]) }
            let m = column.max() ?? 0
            total -= column[Int(labels[n])] - m - log(column.reduce(0) { $0 + exp($1 - m) })
        }
        return Float(total / Double(batch))
    }

    public static func backwardReference(_ logits: Tensor, labels: [Int32], scale: Float, dLogits: Tensor) {
        let (classes, batch) = check("backward", logits, labels)
        for n in 0..<batch {
            let s = softmaxReference(logits, n)
            for k in 0..<classes {
                dLogits[k, n] += Float(Double(scale) * (s[k] - (k == Int(labels[n]) ? 1 : 0)) / Double(batch))
            }
        }
    }

    public static func predictionsReference(_ logits: Tensor) -> [Int32] {
        (0..<logits.shape[1]).map { n in
            var best = 0
            for k in 0..<logits.shape[0] where logits[k, n] > logits[best, n] { best = k }
            return Int32(best)
        }
    }
}
