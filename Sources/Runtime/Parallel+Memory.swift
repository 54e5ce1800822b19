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

extension Parallel {
    /// Treats `counts.count` buffers as one array laid end to end, splits its elements into at
    /// most `threadCount` near-equal contiguous ranges of at least `minChunk` elements, and
    /// calls `body(buffer, range)` for each piece of a buffer in a range (`range` indexes into
    /// that buffer). Pieces of one part run in buffer order on one thread; parts run
    /// concurrently. Each element is visited exactly once. For elementwise updates over many
    /// small tensors (the optimizer's parameters), which one by one would each stay serial.
    public static func forSegments(_ counts: [Int], minChunk: Int = memoryMinChunk, _ body: (Int, Range<Int>) -> Void) {
        var starts = [Int]()
        starts.reserveCapacity(counts.count + 1)
        var total = 0
        for c in counts {
            precondition(c >= 0, "Parallel.forSegments: negative count \(c)")
            starts.append(total)
            total += c
        }
        forRanges(total, minChunk: minChunk) { r in
            // The last buffer starting at or before r.lowerBound (empty buffers are skipped).
            var low = 0, high = counts.count
            while low < high {
                let mid = (low + high) / 2
                if starts[mid] <= r.lowerBound { low = mid + 1 } else { high = mid }
            }
            var i = max(0, low - 1)
            while i < counts.count && starts[i] < r.upperBound {
                let lo = max(r.lowerBound, starts[i]), hi = min(r.upperBound, starts[i] + counts[i])
                if lo < hi { body(i, (lo - starts[i])..<(hi - starts[i])) }
                i += 1
            }
        }
    }

    /// c[i, j] += Σ_p partials[p][i, j] for i < rows, j < columns: per-thread partial sums
    /// (`count` matrices of rows × columns, contiguous, one after another) added into c (row
    /// stride ldc), split across threads by elements (by rows where c's rows are apart). Every
    /// element adds the partials in order on one thread, so the sums do not depend on the split.
    /// The weight gradients' partials grow with the threads (15 matrices at 16 threads): added on
    /// the model's thread alone they were serial time that more cores could not shorten.
    public static func addPartials(_ partials: UnsafePointer<Float>, count: Int, rows: Int, columns: Int,
                                   into c: UnsafeMutablePointer<Float>, ldc: Int) {
        precondition(count >= 0 && rows >= 0 && columns >= 0 && ldc >= columns,
                     "Parallel.addPartials: \(count) partials of \(rows) × \(columns), ldc \(ldc)")
        let size = rows * columns
        if count == 0 || size == 0 { return }
        if ldc == columns {
            forRanges(size, minChunk: memoryMinChunk / max(count, 1)) { r in
                for p in 0..<count {
                    let src = partials + p * size
                    for i in r { c[i] += src[i] }
                }
            }
        } else {
            forRanges(rows, minChunk: max(1, memoryMinChunk / max(count * columns, 1))) { rs in
                for p in 0..<count {
                    let src = partials + p * size
                    for i in rs {
                        let row = c + i * ldc, from = src + i * columns
                        for j in 0..<columns { row[j] += from[j] }
                    }
                }
            }
        }
    }
}
