import XCTest
import Runtime
import Kernels

/// Helpers shared by the tests of the non-convolution kernels.
enum OpsCheck {
    static func uniform(_ shape: [Int], seed: UInt64, low: Float = -1, high: Float = 1) -> Tensor {
        Tensor.randomUniform(shape, low: low, high: high, seed: seed)
    }

    static func assertClose(_ a: [Float], _ b: [Float], _ tolerance: Float, _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "\(what): element counts", file: file, line: line)
        guard a.count == b.count else { return }
        let error = GradientCheck.relativeError(a, b)
        XCTAssertLessThanOrEqual(error, tolerance, "\(what): relative error \(error)", file: file, line: line)
    }

    static func assertClose(_ a: Tensor, _ b: Tensor, _ tolerance: Float, _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, "\(what): shapes", file: file, line: line)
        assertClose(a.array, b.array, tolerance, what, file: file, line: line)
    }

    /// Fixed weights for a loss Σ w·y whose gradient dy is w.
    static func weights(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in rng.nextUniform() * 2 - 1 }
    }
}

/// Runs `body` with `Parallel.threadCount` at `threads`, restoring it after.
func withThreadCount(_ threads: Int, _ body: () -> Void) {
    let saved = Parallel.threadCount
    Parallel.threadCount = threads
    defer { Parallel.threadCount = saved }
    body()
}
