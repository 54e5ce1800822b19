import Datasets
import Foundation
import Runtime
import XCTest

/// Rank slices of the global batches (Sources/Datasets/RankSlice.swift): the slices of all
/// ranks, put back together, are the batches of one process, pixel for pixel.
final class RankSliceTests: XCTestCase {
    /// `n` images whose pixels depend on (image, channel, y, x); label = index mod 10.
    private func dataset(_ n: Int, channels: Int = 3, height: Int = 6, width: Int = 5) -> ImageDataset {
        var pixels = [UInt8]()
        for i in 0..<n { for c in 0..<channels { for y in 0..<height { for x in 0..<width {
            pixels.append(UInt8((i * 53 + c * 29 + y * 7 + x * 13) % 256))
        } } } }
        return try! ImageDataset(pixels: pixels, labels: (0..<n).map { Int32($0 % 10) }, channels: channels,
                                 height: height, width: width, classCount: 10)
    }

    func testRangesAreConsecutiveAndAsEvenAsPossible() {
        XCTAssertEqual((0..<3).map { RankSlice(rank: $0, rankCount: 3).range(inBatchOf: 7) }, [0..<3, 3..<5, 5..<7])
        XCTAssertEqual((0..<2).map { RankSlice(rank: $0, rankCount: 2).range(inBatchOf: 64) }, [0..<32, 32..<64])
        XCTAssertEqual((0..<3).map { RankSlice(rank: $0, rankCount: 3).range(inBatchOf: 2) }, [0..<1, 1..<2, 2..<2])
        XCTAssertEqual(RankSlice.whole.range(inBatchOf: 5), 0..<5)
    }

    func testLossScaleWeightsUnequalSlices() {
        // 7 over 3 ranks: slices of 3, 2, 2; scale = 3 · size / 7.
        XCTAssertEqual((0..<3).map { RankSlice(rank: $0, rankCount: 3).lossScale(batchCount: 7) }, [9.0 / 7, 6.0 / 7, 6.0 / 7])
        XCTAssertEqual(RankSlice(rank: 1, rankCount: 2).lossScale(batchCount: 64), 1)
        XCTAssertEqual(RankSlice(rank: 2, rankCount: 3).lossScale(batchCount: 2), 0)
    }

    func testSlicesPutTogetherAreTheGlobalBatches() throws {
        let data = dataset(23)
        // Batches of 8, 8, 7 over 3 ranks, shuffled, augmented, resized and normalised.
        let options = DataLoaderOptions(batchSize: 8, resize: ImageSize(9),
                                        normalization: Normalization(mean: [0.5, 0.4, 0.3], std: [0.2, 0.3, 0.4]),
                                        augmentation: .randomCropFlip(padding: 2, flip: true), seed: 5)
        let whole = DataLoader(data, options: options)
        let ranks = (0..<3).map { DataLoader(data, options: options, slice: RankSlice(rank: $0, rankCount: 3)) }
        for epoch in 0..<2 {
            var batches = 0
            while let global = try whole.next() {
                let parts = try ranks.map { try $0.next()! }
                batches += 1
                XCTAssertEqual(parts.map(\.labels.count), global.labels.count == 8 ? [3, 3, 2] : [3, 2, 2])
                XCTAssertEqual(parts.flatMap(\.exampleIndices), global.exampleIndices, "epoch \(epoch)")
                XCTAssertEqual(parts.flatMap(\.labels), global.labels)
                XCTAssertEqual(parts.map(\.globalCount), Array(repeating: global.labels.count, count: 3))
                XCTAssertEqual(global.globalCount, global.labels.count)
                XCTAssertTrue(parts.allSatisfy { $0.epoch == global.epoch && $0.index == global.index })
                // (C, N, H, W): channel c of the global batch is channel c of every slice in turn.
                var joined = [Float]()
                for c in 0..<3 { for part in parts { joined += part.images.narrow(0, c..<(c + 1)).array } }
                XCTAssertEqual(joined.map(\.bitPattern), global.images.array.map(\.bitPattern), "epoch \(epoch)")
            }
            XCTAssertEqual(batches, 3)
            XCTAssertTrue(try ranks.allSatisfy { try $0.next() == nil })
        }
    }

    func testStateIsGlobalSoAnotherRankCountResumes() throws {
        let data = dataset(20)
        let options = DataLoaderOptions(batchSize: 6, augmentation: .cifar, prefetch: false, seed: 9)
        let rank1 = DataLoader(data, options: options, slice: RankSlice(rank: 1, rankCount: 2))
        _ = try rank1.next()
        _ = try rank1.next()
        XCTAssertEqual(rank1.state.position, 12)
        let resumed = DataLoader(data, options: options)
        try resumed.restore(rank1.state)
        let reference = DataLoader(data, options: options)
        XCTAssertEqual(try resumed.next()!.exampleIndices, try reference.batch(epoch: 0, index: 2).exampleIndices)
    }

    func testMoreRanksThanExamplesGivesEmptySlices() throws {
        let data = dataset(5)
        let loader = DataLoader(data, options: .init(batchSize: 4, shuffle: false, prefetch: false),
                                slice: RankSlice(rank: 3, rankCount: 4))
        XCTAssertEqual(try loader.next()!.exampleIndices, [3])
        let last = try loader.next()!
        XCTAssertEqual(last.exampleIndices, [])
        XCTAssertEqual(last.images.shape, [3, 0, 6, 5])
        XCTAssertEqual(last.globalCount, 1)
        XCTAssertNil(try loader.next())
    }
}
