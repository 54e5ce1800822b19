import Datasets
import Foundation
import Runtime
import XCTest

/// `n` images of c×h×w whose every pixel is a deterministic function of (image, channel, y, x);
/// label = image index mod classes.
private func syntheticDataset(_ n: Int, channels: Int = 1, height: Int = 5, width: Int = 4, classes: Int = 10) -> ImageDataset {
    var pixels = [UInt8]()
    for i in 0..<n {
        for c in 0..<channels { for y in 0..<height { for x in 0..<width { pixels.append(UInt8((i * 37 + c * 101 + y * 11 + x * 3) % 256)) } } }
    }
    return try! ImageDataset(pixels: pixels, labels: (0..<n).map { Int32($0 % classes) }, channels: channels,
                             height: height, width: width, classCount: classes)
}

/// All batches of one epoch (and the end-of-epoch nil).
private func epochBatches(_ loader: DataLoader) -> [Batch] {
    var out = [Batch]()
    while let b = try! loader.next() { out.append(b) }  // in-memory datasets never throw
    return out
}

private func assertSameBatches(_ a: [Batch], _ b: [Batch], file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) {
        XCTAssertEqual(x.labels, y.labels, file: file, line: line)
        XCTAssertEqual(x.exampleIndices, y.exampleIndices, file: file, line: line)
        XCTAssertEqual(x.images.shape, y.images.shape, file: file, line: line)
        XCTAssertEqual(x.images.array.map(\.bitPattern), y.images.array.map(\.bitPattern), file: file, line: line)
    }
}

final class DataLoaderTests: XCTestCase {
    func testLayoutIsChannelMajorAndScaled() throws {
        let data = syntheticDataset(3, channels: 2, height: 2, width: 3)
        let loader = DataLoader(data, options: .init(batchSize: 3, shuffle: false, prefetch: false))
        let batch = try loader.next()!
        XCTAssertEqual(batch.images.shape, [2, 3, 2, 3]) // (C, N, H, W)
        XCTAssertEqual(batch.images.storage.category, .activations)
        XCTAssertEqual(batch.labels, [0, 1, 2])
        for n in 0..<3 { for c in 0..<2 { for y in 0..<2 { for x in 0..<3 {
            let byte = data.pixels[((n * 2 + c) * 2 + y) * 3 + x]
            XCTAssertEqual(batch.images[c, n, y, x], Float(byte) / 255, accuracy: 1e-7)
        } } } }
    }

    func testBatchingKeepsOrDropsTheLastPartialBatch() throws {
        let data = syntheticDataset(10)
        let keep = DataLoader(data, options: .init(batchSize: 4, shuffle: false, prefetch: false))
        XCTAssertEqual(keep.batchesPerEpoch, 3)
        XCTAssertEqual(epochBatches(keep).map(\.labels.count), [4, 4, 2])
        let drop = DataLoader(data, options: .init(batchSize: 4, shuffle: false, dropLast: true, prefetch: false))
        XCTAssertEqual(epochBatches(drop).map(\.labels.count), [4, 4])
        let limited = DataLoader(data, options: .init(batchSize: 4, shuffle: true, limit: 6, prefetch: false))
        let indices = epochBatches(limited).flatMap(\.exampleIndices)
        XCTAssertEqual(indices.sorted(), Array(0..<6))
        XCTAssertEqual(data.prefix(6).count, 6)
    }

    func testShuffleIsAPermutationThatChangesPerEpochAndIsSeeded() throws {
        let data = syntheticDataset(100)
        let loader = DataLoader(data, options: .init(batchSize: 32, seed: 7))
        let first = epochBatches(loader)
        let second = epochBatches(loader)
        let order1 = first.flatMap(\.exampleIndices), order2 = second.flatMap(\.exampleIndices)
        XCTAssertEqual(order1.sorted(), Array(0..<100))
        XCTAssertEqual(order2.sorted(), Array(0..<100))
        XCTAssertNotEqual(order1, Array(0..<100))
        XCTAssertNotEqual(order1, order2)
        XCTAssertEqual(first.flatMap(\.labels), order1.map { Int32($0 % 10) })
        XCTAssertEqual(first.map(\.epoch), [0, 0, 0, 0])
        XCTAssertEqual(second.map(\.epoch), [1, 1, 1, 1])
        // Same seed, same batches; another seed, another order.
        let again = DataLoader(data, options: .init(batchSize: 32, seed: 7))
        assertSameBatches(epochBatches(again), first)
        let other = DataLoader(data, options: .init(batchSize: 32, seed: 8))
        XCTAssertNotEqual(epochBatches(other).flatMap(\.exampleIndices), order1)
    }

    func testPrefetchGivesTheSameBatches() throws {
        let data = syntheticDataset(50, channels: 3, height: 8, width: 8)
        let options = DataLoaderOptions(batchSize: 16, resize: ImageSize(12), normalization: Normalization(mean: [0.5, 0.4, 0.3], std: [0.2, 0.3, 0.4]),
                                        augmentation: .randomCropFlip(padding: 2, flip: true), prefetch: true, seed: 3)
        var plain = options
        plain.prefetch = false
        let a = DataLoader(data, options: options), b = DataLoader(data, options: plain)
        for _ in 0..<2 { assertSameBatches(epochBatches(a), epochBatches(b)) }
    }

    func testStateRoundTripResumesExactly() throws {
        let data = syntheticDataset(40, channels: 3, height: 6, width: 6)
        let options = DataLoaderOptions(batchSize: 6, augmentation: .cifar, seed: 11)
        let reference = DataLoader(data, options: options)
        var expected = epochBatches(reference)
        expected += epochBatches(reference)

        let first = DataLoader(data, options: options)
        var got = epochBatches(first)
        for _ in 0..<3 { got.append(try first.next()!) }
        let saved = try JSONEncoder().encode(first.state)
        XCTAssertEqual(first.state.epoch, 1)
        XCTAssertEqual(first.state.position, 18)

        let resumed = DataLoader(data, options: options)
        try resumed.restore(JSONDecoder().decode(DataLoaderState.self, from: saved))
        got += epochBatches(resumed)
        assertSameBatches(got, expected)
        XCTAssertEqual(resumed.state.epoch, 2)

        // Rewinding a loader whose prefetch has run ahead discards the prefetched batch.
        _ = try first.next()
        try first.restore(JSONDecoder().decode(DataLoaderState.self, from: saved))
        assertSameBatches(epochBatches(first), Array(expected[10...]))
        // The state after the last, partial batch of an epoch restores too.
        XCTAssertNoThrow(try DataLoader(data, options: options).restore(
            DataLoaderState(seed: 11, epoch: 0, position: 40, exampleCount: 40, batchSize: 6)))
        XCTAssertThrowsError(try DataLoader(data, options: options).restore(
            DataLoaderState(seed: 11, epoch: 0, position: 7, exampleCount: 40, batchSize: 6)))

        // A state from another configuration is refused with a reason.
        let other = DataLoader(data, options: .init(batchSize: 5, seed: 11))
        XCTAssertThrowsError(try other.restore(first.state)) { error in
            XCTAssertTrue("\(error)".contains("batch size 6"), "\(error)")
        }
        let otherSeed = DataLoader(data, options: .init(batchSize: 6, seed: 12))
        XCTAssertThrowsError(try otherSeed.restore(first.state))
    }

    // MARK: Resize

    func testResizeOfAConstantImageIsConstant() throws {
        let data = try! ImageDataset(pixels: [UInt8](repeating: 200, count: 2 * 28 * 28), labels: [0, 1], channels: 1,
                                     height: 28, width: 28, classCount: 2)
        let loader = DataLoader(data, options: .init(batchSize: 2, shuffle: false, resize: ImageSize(96), prefetch: false))
        let batch = try loader.next()!
        XCTAssertEqual(batch.images.shape, [1, 2, 96, 96])
        for v in batch.images.array { XCTAssertEqual(v, 200 / 255, accuracy: 1e-6) }
    }

    func testResizeMatchesHandComputedBilinearValues() throws {
        // 2×2 → 4×4, align_corners = false: sources −0.25→0 (clamped), 0.25, 0.75, 1.25→1
        // (upper neighbour clamped), so each axis interpolates with weights 0, ¼, ¾, 1; this is
        // F.interpolate([[0, 1], [2, 3]], size: 4, mode: "bilinear") scaled by 4.
        let data = try! ImageDataset(pixels: [0, 4, 8, 12], labels: [0], channels: 1, height: 2, width: 2, classCount: 1)
        let up = try DataLoader(data, options: .init(batchSize: 1, resize: ImageSize(4), prefetch: false)).next()!
        let expected: [Float] = [0, 1, 3, 4,
                                 2, 3, 5, 6,
                                 6, 7, 9, 10,
                                 8, 9, 11, 12]
        for (v, e) in zip(up.images.array, expected) { XCTAssertEqual(v * 255, e, accuracy: 1e-4) }

        // 1×4 → 1×3 (downsampling): sources 1/6, 3/2, 17/6 on the row [0, 30, 60, 90].
        let row = try! ImageDataset(pixels: [0, 30, 60, 90], labels: [0], channels: 1, height: 1, width: 4, classCount: 1)
        let down = try DataLoader(row, options: .init(batchSize: 1, resize: ImageSize(height: 1, width: 3), prefetch: false)).next()!
        for (v, e) in zip(down.images.array, [Float(5), 45, 85]) { XCTAssertEqual(v * 255, e, accuracy: 1e-4) }
    }

    func testFastResizeMatchesReference() throws {
        var rng = SeededGenerator(seed: 5)
        for (h, w, size) in [(28, 28, ImageSize(96)), (7, 5, ImageSize(height: 3, width: 11)), (32, 32, ImageSize(17))] {
            let src = (0..<(h * w)).map { _ in rng.nextUniform() }
            let expected = ImageTransforms.resizeReference(src, height: h, width: w, to: size)
            var out = [Float](repeating: -1, count: size.area)
            src.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { o in
                    ImageTransforms.resizePlane(s.baseAddress!, inWidth: w, rows: .init(from: h, to: size.height),
                                                columns: .init(from: w, to: size.width), dst: o.baseAddress!)
                }
            }
            for (a, b) in zip(out, expected) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        }
    }

    // MARK: Normalisation and augmentation

    func testNormalization() throws {
        let data = try! ImageDataset(pixels: [0, 51, 255, 102, 204, 153], labels: [0], channels: 2, height: 1, width: 3, classCount: 1)
        let norm = Normalization(mean: [0.5, 0.2], std: [0.25, 2])
        let batch = try DataLoader(data, options: .init(batchSize: 1, normalization: norm, prefetch: false)).next()!
        // channel 0: (0, 0.2, 1) → (x − 0.5)/0.25; channel 1: (0.4, 0.8, 0.6) → (x − 0.2)/2
        let expected: [Float] = [-2, -1.2, 2, 0.1, 0.3, 0.2]
        for (v, e) in zip(batch.images.array, expected) { XCTAssertEqual(v, e, accuracy: 1e-5) }
    }

    func testCropFlipMatchesReferenceAndHandCase() throws {
        let data = syntheticDataset(1, channels: 3, height: 6, width: 5)
        var rng = SeededGenerator(seed: 9)
        for _ in 0..<20 {
            let draw = CropFlip(.randomCropFlip(padding: 2, flip: true), using: &rng)
            XCTAssertTrue((0...4).contains(draw.dy) && (0...4).contains(draw.dx))
            var out = [Float](repeating: -1, count: 90)
            data.pixels.withUnsafeBufferPointer { p in
                out.withUnsafeMutableBufferPointer { o in
                    ImageTransforms.toFloat(p.baseAddress!, channels: 3, height: 6, width: 5, draw: draw, dst: o.baseAddress!, planeStride: 30)
                }
            }
            XCTAssertEqual(out, ImageTransforms.toFloatReference(data.pixels, channels: 3, height: 6, width: 5, draw: draw))
        }
        // Crop at (0, 0) of the image padded by 2, flipped: out(y, x) = src(y − 2, (W−1−x) − 2).
        let draw = CropFlip(dy: 0, dx: 0, flip: true, padding: 2)
        let out = ImageTransforms.toFloatReference([UInt8](1...20), channels: 1, height: 4, width: 5, draw: draw)
        XCTAssertEqual(out.map { $0 * 255 }.map { $0.rounded() },
                       [0, 0, 0, 0, 0,
                        0, 0, 0, 0, 0,
                        3, 2, 1, 0, 0,
                        8, 7, 6, 0, 0])
    }

    func testAugmentationKeepsShapeAndIsSeeded() throws {
        let data = syntheticDataset(20, channels: 3, height: 32, width: 32)
        let options = DataLoaderOptions(batchSize: 8, augmentation: .cifar, prefetch: false, seed: 1)
        let a = try DataLoader(data, options: options).next()!
        XCTAssertEqual(a.images.shape, [3, 8, 32, 32])
        let b = try DataLoader(data, options: options).next()!
        assertSameBatches([a], [b])
        var unaugmented = options
        unaugmented.augmentation = .none
        let c = try DataLoader(data, options: unaugmented).next()!
        XCTAssertEqual(a.exampleIndices, c.exampleIndices)
        XCTAssertNotEqual(a.images.array, c.images.array)
    }

    func testLoaderOnRealFashionMNIST() throws {
        guard let result = realFashionTrain else { throw XCTSkip("Fashion-MNIST is not installed") }
        let train = try result.get()
        let loader = DataLoader(train, options: .init(batchSize: 256, resize: ImageSize(96), limit: 1000, seed: 0))
        let batches = epochBatches(loader)
        XCTAssertEqual(batches.count, 4)
        XCTAssertEqual(batches[0].images.shape, [1, 256, 96, 96])
        XCTAssertEqual(batches.flatMap(\.exampleIndices).sorted(), Array(0..<1000))
    }
}
