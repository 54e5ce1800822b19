import DataParallel
import Runtime
import XCTest

/// The bucket assignment (expected buckets worked out by hand from PyTorch DDP's rule, see
/// `GradientBuckets.partition`) and the one-rank behaviour. Reductions between real processes
/// are in MPIProcessTests.
final class GradientBucketsTests: XCTestCase {
    func testPartitionFillsFromTheLastGradientAndClosesAtTheCap() {
        // 16-float cap: 9 + 0 + 5 = 14 < 16, + 30 closes; 1 + 13 + 0 + 7 = 21 closes.
        XCTAssertEqual(GradientBuckets.partition(elementCounts: [7, 0, 13, 1, 30, 5, 0, 9], capBytes: 64),
                       [[7, 6, 5, 4], [3, 2, 1, 0]])
        XCTAssertEqual(GradientBuckets.partition(elementCounts: [7, 0, 13], capBytes: 1 << 20), [[2, 1, 0]])
    }

    func testGradientLargerThanTheCapIsABucketOfItsOwn() {
        XCTAssertEqual(GradientBuckets.partition(elementCounts: [2, 100, 3], capBytes: 16), [[2, 1], [0]])
        XCTAssertEqual(GradientBuckets.partition(elementCounts: [3, 0, 2], capBytes: 1), [[2], [1, 0]])
    }

    func testTrailingEmptyGradientsMakeABucketWithoutElements() {
        XCTAssertEqual(GradientBuckets.partition(elementCounts: [0, 0, 4], capBytes: 16), [[2], [1, 0]])
        XCTAssertEqual(GradientBuckets.partition(elementCounts: [], capBytes: 16), [])
    }

    func testDefaultCapIsDDPs25MiB() {
        let tenMiB = 10 << 18  // floats
        XCTAssertEqual(GradientBuckets.defaultCapBytes, 26_214_400)
        XCTAssertEqual(GradientBuckets.partition(elementCounts: Array(repeating: tenMiB, count: 4),
                                                 capBytes: GradientBuckets.defaultCapBytes), [[3, 2, 1], [0]])
    }

    func testNonPositiveCapIsATypedError() {
        XCTAssertThrowsError(try GradientBuckets(elementCounts: [1], capBytes: 0, communicator: .singleProcess())) {
            XCTAssertEqual($0 as? DataParallelError, .invalidBucketCap(bytes: 0))
            XCTAssertTrue("\($0)".contains("25 MiB"))
        }
    }

    func testOneRankLeavesGradientsAsTheyAre() throws {
        let buckets = try GradientBuckets(elementCounts: [3, 0, 2], capBytes: 8, communicator: .singleProcess())
        for _ in 0..<2 {
            let g0 = Tensor(shape: [3], values: [1, -2, 3.5]), g1 = Tensor(shape: [0], values: [])
            let g2 = Tensor(shape: [1, 2], values: [0.25, 7])
            try buckets.markReady(2, gradient: g2)
            try buckets.markReady(0, gradient: g0)
            try buckets.markReady(1, gradient: g1)
            try buckets.finish()
            XCTAssertEqual(g0.array, [1, -2, 3.5])
            XCTAssertEqual(g2.array, [0.25, 7])
            XCTAssertEqual(buckets.lastWaitSeconds, 0)
        }
    }

    func testMarkingTwiceAndNotMarkingAreTypedErrors() throws {
        let buckets = try GradientBuckets(elementCounts: [3, 2], capBytes: 8, communicator: .singleProcess())
        let g = Tensor.zeros([2])
        try buckets.markReady(1, gradient: g)
        XCTAssertThrowsError(try buckets.markReady(1, gradient: g)) {
            XCTAssertEqual($0 as? DataParallelError, .gradientMarkedTwice(index: 1))
        }
        XCTAssertThrowsError(try buckets.finish()) {
            XCTAssertEqual($0 as? DataParallelError, .gradientsNotReady(indices: [0]))
        }
        // finish() reset the step even though it threw.
        try buckets.markReady(1, gradient: g)
        try buckets.markReady(0, gradient: Tensor.zeros([3]))
        try buckets.finish()
    }
}
