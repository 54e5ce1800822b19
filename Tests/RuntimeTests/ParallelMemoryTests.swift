import XCTest
@testable import Runtime

/// Parallel fills and copies (Parallel+Memory.swift, used by `Tensor.fill`/`zero`/`assign`):
/// every element equals a plain loop's, nothing outside the range is written, and buffers of at
/// least two chunks really are split (a parallel region is recorded), for sizes around the
/// split thresholds and 1 to 3 threads.
final class ParallelMemoryTests: XCTestCase {
    let chunk = Parallel.memoryMinChunk
    var sizes: [Int] { [0, 1, 7, chunk - 1, chunk, 2 * chunk - 1, 2 * chunk, 2 * chunk + 1, 3 * chunk + 5, 6 * chunk + 3] }
    let guardCount = 37

    /// Runs `body` at 1, 2 and 3 threads, restoring the thread count.
    func atThreadCounts(_ body: (Int) -> Void) {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        for threads in 1...3 { Parallel.threadCount = threads; body(threads) }
    }

    /// The parallel regions `body` opened (Profile counts them on this thread).
    func regions(_ body: () -> Void) -> Int {
        Profile.start()
        body()
        return Profile.stop().parallelRegions
    }

    func expectedParts(_ count: Int, _ threads: Int) -> Int { max(1, min(threads, count / chunk)) }

    func testFillMatchesALoop() {
        atThreadCounts { threads in
            for count in sizes {
                for value: Float in [0, -0.0, 1.5, -3] {
                    var buffer = [Float](repeating: .nan, count: count + 2 * guardCount)
                    let opened = buffer.withUnsafeMutableBufferPointer { b in
                        regions { Parallel.fill(b.baseAddress! + guardCount, count: count, with: value) }
                    }
                    var expected = [Float](repeating: .nan, count: count + 2 * guardCount)
                    for i in 0..<count { expected[guardCount + i] = value == 0 ? 0 : value }
                    XCTAssertEqual(buffer.map(\.bitPattern), expected.map(\.bitPattern), "count \(count) value \(value) threads \(threads)")
                    XCTAssertEqual(opened, expectedParts(count, threads) > 1 ? 1 : 0, "count \(count) threads \(threads)")
                }
            }
        }
    }

    func testCopyMatchesALoop() {
        atThreadCounts { threads in
            for count in sizes {
                let source = (0..<count).map { Float($0 % 1009) * 0.25 - 7 }
                var buffer = [Float](repeating: .nan, count: count + 2 * guardCount)
                let opened = buffer.withUnsafeMutableBufferPointer { b in
                    source.withUnsafeBufferPointer { s in
                        regions { Parallel.copy(from: s.baseAddress ?? UnsafePointer(b.baseAddress!), to: b.baseAddress! + guardCount, count: count) }
                    }
                }
                var expected = [Float](repeating: .nan, count: count + 2 * guardCount)
                for i in 0..<count { expected[guardCount + i] = source[i] }
                XCTAssertEqual(buffer.map(\.bitPattern), expected.map(\.bitPattern), "count \(count) threads \(threads)")
                XCTAssertEqual(opened, expectedParts(count, threads) > 1 ? 1 : 0, "count \(count) threads \(threads)")
            }
        }
    }

    func testTensorZeroFillAndAssign() {
        atThreadCounts { threads in
            for count in [5, 2 * chunk + 3] {
                let t = Tensor(shape: [count], values: (0..<count).map { Float($0) }, category: .scratch)
                t.zero()
                XCTAssertEqual(t.array, [Float](repeating: 0, count: count), "zero, threads \(threads)")
                t.fill(2.5)
                XCTAssertEqual(t.array, [Float](repeating: 2.5, count: count), "fill, threads \(threads)")
                let values = (0..<count).map { Float($0 % 97) - 40 }
                t.assign(Tensor(shape: [count], values: values, category: .scratch))
                XCTAssertEqual(t.array, values, "assign, threads \(threads)")
            }
            // A strided source still goes element by element.
            let m = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6], category: .scratch)
            let out = Tensor(shape: [2, 2], category: .scratch)
            out.assign(m.narrow(1, 1..<3))
            XCTAssertEqual(out.array, [2, 3, 5, 6])
        }
    }

    /// Partial sums added into c equal a plain loop's bit for bit (each element adds the partials
    /// in order), whatever the thread count; nothing past a row's columns (ldc > columns) or
    /// outside c is written; large sums really are split.
    func testAddPartialsMatchesALoopBitForBit() {
        atThreadCounts { threads in
            for (count, rows, columns, ldc) in [(0, 3, 4, 4), (1, 1, 1, 1), (3, 5, 7, 7), (15, 128, 300, 300),
                                                (2, 9, 6, 11), (4, 2 * chunk / 40 + 3, 40, 43)] {
                let size = rows * columns
                let partials = (0..<(count * size)).map { Float(($0 * 7919) % 2003) * 0.001 - 1 }
                let start = (0..<(rows * ldc + 2 * guardCount)).map { Float($0 % 13) * 0.5 }
                var expected = start
                for p in 0..<count {
                    for i in 0..<rows {
                        for j in 0..<columns { expected[guardCount + i * ldc + j] += partials[p * size + i * columns + j] }
                    }
                }
                var c = start
                let opened = c.withUnsafeMutableBufferPointer { b in
                    partials.withUnsafeBufferPointer { p in
                        regions {
                            Parallel.addPartials(p.baseAddress ?? UnsafePointer(b.baseAddress!), count: count, rows: rows,
                                                 columns: columns, into: b.baseAddress! + guardCount, ldc: ldc)
                        }
                    }
                }
                let label = "\(count) partials of \(rows)x\(columns), ldc \(ldc), \(threads) threads"
                XCTAssertEqual(c.map(\.bitPattern), expected.map(\.bitPattern), label)
                if threads > 1 && count * size >= 4 * chunk { XCTAssertEqual(opened, 1, "\(label): split") }
            }
        }
    }
}
