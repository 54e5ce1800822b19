import Datasets
import Foundation
import Runtime

/// A regression data set from a numeric CSV: a header row, one row per example, the last
/// column the target and every other column a feature (as the exercise scripts export
/// scikit-learn's diabetes set). Values are used as they are: standardise them beforehand.
public struct RegressionTable: Sendable, Equatable {
    public var featureNames: [String]
    public var targetName: String
    /// Row-major, `rowCount × featureCount`.
    public var features: [Float]
    public var targets: [Float]

    public var rowCount: Int { targets.count }
    public var featureCount: Int { featureNames.count }

    /// Splits `table` into features (all columns but the last) and target (the last). `path`
    /// names the file in errors.
    public init(_ table: NumericTable, path: String = "<memory>") throws {
        guard table.columnCount >= 2 else {
            throw TrainingError.invalidOption("--data", reason: "\(path) has \(table.columnCount) column(s); a regression table needs"
                                              + " at least one feature column and the target as the last column")
        }
        guard table.rowCount >= 1 else {
            throw TrainingError.invalidOption("--data", reason: "\(path) has a header but no rows")
        }
        let f = table.columnCount - 1
        featureNames = Array(table.columnNames.prefix(f))
        targetName = table.columnNames[f]
        var features = [Float]()
        features.reserveCapacity(table.rowCount * f)
        var targets = [Float]()
        targets.reserveCapacity(table.rowCount)
        for r in 0..<table.rowCount {
            for c in 0..<f { features.append(Float(table[r, c])) }
            targets.append(Float(table[r, f]))
        }
        self.features = features
        self.targets = targets
    }

    /// Reads `path` (a header row, then numbers; see `NumericTable.read`).
    public static func read(_ path: String) throws -> RegressionTable {
        try RegressionTable(NumericTable.read(path), path: path)
    }

    /// The first `n` rows (all of them when `n >= rowCount`).
    public func prefix(_ n: Int) -> RegressionTable {
        precondition(n >= 1, "RegressionTable.prefix: \(n) rows")
        guard n < rowCount else { return self }
        var out = self
        out.features = Array(features.prefix(n * featureCount))
        out.targets = Array(targets.prefix(n))
        return out
    }

    /// Rows `rows` as a model input `(F, n)` (feature-major, as the MLPs take it) and their targets.
    public func batch<C: Collection<Int>>(_ rows: C) -> (features: Tensor, targets: [Float]) {
        let n = rows.count, f = featureCount
        precondition(n >= 1, "RegressionTable.batch: no rows")
        let x = Tensor(shape: [f, n], category: .activations)
        let dst = x.pointer
        var targets = [Float]()
        targets.reserveCapacity(n)
        // (N, F) rows → (F, N)
        features.withUnsafeBufferPointer { src in
            for (j, r) in rows.enumerated() {
                precondition(r >= 0 && r < rowCount, "RegressionTable.batch: row \(r) out of 0..<\(rowCount)")
                for c in 0..<f { dst[c * n + j] = src[r * f + c] }
                targets.append(self.targets[r])
            }
        }
        return (x, targets)
    }
}
