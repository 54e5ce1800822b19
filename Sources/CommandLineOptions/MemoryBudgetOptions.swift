import ArgumentParser
import Foundation
import Runtime
import Training

/// `--max-memory SIZE`: a budget for the predicted tensor peak of a training step (the bytes
/// `Memory.peak` counts, as `densenet summary` predicts them), checked before anything is
/// allocated. `densenet train` refuses to start over it; `bench-memory` skips the
/// configurations over it. The process RSS is larger (allocator, libraries, code).
public struct MemoryBudgetOptions: ParsableArguments {
    @Option(name: .customLong("max-memory"),
            help: ArgumentHelp("Budget for the predicted peak of tensor memory (bytes; K, M, G, T suffixes, powers of 1024).",
                               valueName: "size"),
            transform: { try ByteCount.parse($0) })
    public var maxMemory: Int?

    public init() {}

    /// Whether a step predicted to peak at `predictedBytes` fits (always, without a budget).
    public func admits(_ predictedBytes: Int) -> Bool {
        maxMemory.map { predictedBytes <= $0 } ?? true
    }

    /// Throws `TrainingError.exceedsMemoryLimit` when `predictedBytes` is over the budget.
    public func check(_ predictedBytes: Int) throws {
        if let limit = maxMemory, predictedBytes > limit {
            throw TrainingError.exceedsMemoryLimit(predictedBytes: predictedBytes, limitBytes: limit)
        }
    }
}

/// A size in bytes as the command lines write it: `1000000`, `512K`, `6G`, `1.5GiB`, `2gb`
/// (K, M, G, T are powers of 1024; a trailing `B` or `iB` is optional).
public enum ByteCount {
    static let units: [Character: Double] = ["K": 1024, "M": 1_048_576, "G": 1_073_741_824, "T": 1_099_511_627_776]

    public static func parse(_ text: String) throws -> Int {
        var t = Substring(text.trimmingCharacters(in: .whitespaces).uppercased())
        if t.hasSuffix("IB") { t = t.dropLast(2) } else if t.hasSuffix("B") { t = t.dropLast() }
        var scale = 1.0
        if let last = t.last, let unit = units[last] { scale = unit; t = t.dropLast() }
        guard let number = Double(t), number.isFinite else {
            throw ValidationError("'\(text)' is not a size such as 6G, 512M or 1000000 (bytes; K, M, G, T suffixes)")
        }
        // Through the one checked conversion (CheckedSize.integer): 1e30 or 1e20T is refused,
        // naming the option, where Int(_:) would trap.
        let bytes: Int
        do { bytes = try CheckedSize.integer(number * scale, what: "--max-memory \(text)") } catch {
            throw ValidationError("\(error) (a size in bytes below 2^63, such as 6G)")
        }
        guard bytes >= 1 else { throw ValidationError("--max-memory \(text): a budget must be at least 1 byte, such as 6G or 512M") }
        return bytes
    }
}
