import Foundation

// Fills and copies of whole buffers, split across threads when large (issue 13). Autograd
// zeroes every gradient buffer before the first `+=` (Sources/Autograd/Graph.swift,
// `gradientBuffer`), and `Tensor.assign` copies whole activations; done on the model's thread
// these were the largest serial part of a training step (perf: `__memset` under
// `Variable.backward`, with the page faults of fresh blocks). Every element is written once
// by exactly one thread, so the result is the serial one bit for bit.
extension Parallel {
    /// Elements per thread below which a fill or copy stays on one thread: a dispatch costs a
    /// few microseconds, about what 32 K streamed floats take (`Elementwise.minChunk`).
    public static let memoryMinChunk = 1 << 15

    /// p[0..<count] = value.
    public static func fill(_ p: UnsafeMutablePointer<Float>, count: Int, with value: Float) {
        forRanges(count, minChunk: memoryMinChunk) { r in
            if value == 0 {   // -0 too, as before: memset writes +0
                memset(p + r.lowerBound, 0, r.count * MemoryLayout<Float>.stride)
            } else {
                (p + r.lowerBound).update(repeating: value, count: r.count)
            }
        }
    }

    /// target[0..<count] = source[0..<count]; the ranges must not overlap unless equal.
    public static func copy(from source: UnsafePointer<Float>, to target: UnsafeMutablePointer<Float>, count: Int) {
        if source == UnsafePointer(target) { return }
        forRanges(count, minChunk: memoryMinChunk) { r in
            (target + r.lowerBound).update(from: source + r.lowerBound, count: r.count)
        }
    }
}
