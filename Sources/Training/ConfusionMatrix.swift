import Foundation
import Runtime

/// Counts of (true class, predicted class) pairs: `counts[t][p]`.
public struct ConfusionMatrix: Codable, Equatable, Sendable {
    public let classCount: Int
    public internal(set) var counts: [[Int]]

    public init(classCount: Int) {
        precondition(classCount >= 1, "ConfusionMatrix: \(classCount) classes")
        self.classCount = classCount
        counts = Array(repeating: Array(repeating: 0, count: classCount), count: classCount)
    }

    public mutating func add(label: Int, prediction: Int) {
        precondition(label >= 0 && label < classCount && prediction >= 0 && prediction < classCount,
                     "ConfusionMatrix.add: label \(label) or prediction \(prediction) outside 0..<\(classCount)")
        counts[label][prediction] += 1
    }

    public var total: Int { counts.reduce(0) { $0 + $1.reduce(0, +) } }
    public var correct: Int { (0..<classCount).reduce(0) { $0 + counts[$1][$1] } }
    public var accuracy: Double { total == 0 ? 0 : Double(correct) / Double(total) }

    /// Per true class: correct / examples of that class (recall); nil for an absent class.
    public var recall: [Double?] {
        (0..<classCount).map { t in
            let n = counts[t].reduce(0, +)
            return n == 0 ? nil : Double(counts[t][t]) / Double(n)
        }
    }

    /// A text table: one row per true class, one column per predicted class, and the recall.
    public func table(classNames: [String] = []) -> String {
        let labels = (0..<classCount).map { classNames.count == classCount ? "\($0) \(classNames[$0])" : "\($0)" }
        let header = "true \\ predicted"
        let labelWidth = max(header.count, labels.map(\.count).max() ?? 0) + 1
        let cellWidth = max(6, String(counts.flatMap { $0 }.max() ?? 0).count + 1)
        func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
            let fill = String(repeating: " ", count: max(0, w - s.count))
            return left ? s + fill : fill + s
        }
        var lines = [pad(header, labelWidth, left: true)
                     + (0..<classCount).map { pad("\($0)", cellWidth) }.joined() + pad("recall", 9)]
        let recall = self.recall
        for t in 0..<classCount {
            let r = recall[t].map { String(format: "%.1f%%", 100 * $0) } ?? "-"
            lines.append(pad(labels[t], labelWidth, left: true)
                         + counts[t].map { pad("\($0)", cellWidth) }.joined() + pad(r, 9))
        }
        return lines.joined(separator: "\n")
    }
}

/// Loss and accuracy over a dataset (or a part of it).
public struct EvaluationResult: Codable, Equatable, Sendable {
    /// Mean cross-entropy per example.
    public var loss: Double
    public var accuracy: Double
    public var examples: Int
    public var confusion: ConfusionMatrix
}

/// The column-wise predictions of logits `(classes, N)`.
public enum Predictions {
    /// argmax of each column (the lowest class index among equal maxima, as torch.argmax).
    public static func argmax(_ logits: Tensor) -> [Int] {
        precondition(logits.rank == 2 && logits.isContiguous, "Predictions.argmax: logits \(logits.shape) must be (classes, N)")
        let (classes, n) = (logits.shape[0], logits.shape[1])
        let p = logits.pointer
        return (0..<n).map { j in
            var best = 0
            var value = p[j]
            for k in 1..<max(classes, 1) where p[k * n + j] > value { best = k; value = p[k * n + j] }
            return best
        }
    }
}
