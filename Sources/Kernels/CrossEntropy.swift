import Foundation
import Runtime

/// Softmax cross-entropy over channel-major logits (classes, N): column n holds sample n's
/// logits. Stable: each column is shifted by its maximum before exponentiating, and the
/// log-sum-exp is taken in Double.
public enum CrossEntropy {
    static func check(_ name: String, _ logits: Tensor, _ labels: [Int32]) -> (classes: Int, batch: Int) {
        precondition(logits.rank == 2 && logits.isContiguous, "CrossEntropy.\(name): logits \(logits.shape) must be a contiguous (classes, N) matrix")
        let (classes, batch) = (logits.shape[0], logits.shape[1])
        precondition(labels.count == batch, "CrossEntropy.\(name): \(labels.count) labels for logits \(logits.shape)")
        precondition(classes > 0 && batch > 0, "CrossEntropy.\(name): logits \(logits.shape) is empty")
        for (n, label) in labels.enumerated() {
            precondition(label >= 0 && Int(label) < classes, "CrossEntropy.\(name): label \(label) of sample \(n) outside 0..<\(classes) (logits \(logits.shape))")
        }
        return (classes, batch)
    }

    /// Column n's maximum and log Σ exp(l − max), in Double.
    @inline(__always)
    static func logSumExp(_ p: UnsafePointer<Float>, column n: Int, classes: Int, batch: Int) -> (max: Double, log: Double) {
        var m = -Float.infinity
        for k in 0..<classes { m = max(m, p[k * batch + n]) }
        var sum = 0.0
        for k in 0..<classes { sum += exp(Double(p[k * batch + n] - m)) }
        return (Double(m), log(sum))
    }

    /// Mean over the batch of −log softmax(logits[:, n])[label[n]]; logits (classes, N).
    public static func forward(_ logits: Tensor, labels: [Int32]) -> Float {
        let span = Profile.begin(.loss); defer { Profile.end(span) }
        let (classes, batch) = check("forward", logits, labels)
        if DryRun.isActive { return 0 }
        let p = logits.pointer
        var total = 0.0
        for n in 0..<batch {
            let lse = logSumExp(p, column: n, classes: classes, batch: batch)
            total += lse.max + lse.log - Double(p[Int(labels[n]) * batch + n])
        }
        return Float(total / Double(batch))
    }

    /// dLogits += scale·(softmax − onehot)/N.
    public static func backward(_ logits: Tensor, labels: [Int32], scale: Float, dLogits: Tensor) {
        let span = Profile.begin(.loss); defer { Profile.end(span) }
        let (classes, batch) = check("backward", logits, labels)
        precondition(dLogits.shape == logits.shape && dLogits.isContiguous, "CrossEntropy.backward: dLogits \(dLogits.shape) vs logits \(logits.shape)")
        if DryRun.isActive { return }
        let p = logits.pointer, d = dLogits.pointer
        let factor = Double(scale) / Double(batch)
        for n in 0..<batch {
            let lse = logSumExp(p, column: n, classes: classes, batch: batch)
            for k in 0..<classes {
                let softmax = exp(Double(p[k * batch + n]) - lse.max - lse.log)
                let target = k == Int(labels[n]) ? 1.0 : 0.0
                d[k * batch + n] += Float(factor * (softmax - target))
            }
        }
    }

    /// Index of the largest logit per column (the first on ties).
    public static func predictions(_ logits: Tensor) -> [Int32] {
        precondition(logits.rank == 2 && logits.isContiguous, "CrossEntropy.predictions: logits \(logits.shape) must be a contiguous (classes, N) matrix")
        let (classes, batch) = (logits.shape[0], logits.shape[1])
        if DryRun.isActive { return [Int32](repeating: 0, count: batch) }
        let p = logits.pointer
        return (0..<batch).map { n in
            var best = 0
            for k in 1..<max(classes, 1) where p[k * batch + n] > p[best * batch + n] { best = k }
            return Int32(best)
        }
    }
}
