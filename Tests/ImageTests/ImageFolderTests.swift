import Datasets
import Foundation
import Runtime
import XCTest

/// A folder tree under the temporary directory, removed by `remove()`.
struct TemporaryFolder {
    let path: String
    init(_ label: String = "image-folder") {
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent("\(label)-\(getpid())-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let p = file(name)
        try! FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: p, contents: Data(bytes)))
        return p
    }
    func makeFolder(_ name: String) { try! FileManager.default.createDirectory(atPath: file(name), withIntermediateDirectories: true) }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// A grey image of one value (`side` × `side`), PNG-encoded.
func greyPNG(_ value: UInt8, side: Int = 6) -> [UInt8] {
    try! PNGEncoder.encode(DecodedImage(width: side, height: side, channels: 1, pixels: [UInt8](repeating: value, count: side * side)))
}

/// Collects `ImageFolder.log` lines while `body` runs.
final class LogLines: @unchecked Sendable { var lines: [String] = []; let lock = NSLock() }

func capturingLog<R>(_ body: () throws -> R) rethrows -> (R, [String]) {
    let lines = LogLines()
    let saved = ImageFolder.log
    ImageFolder.log = { line in lines.lock.lock(); lines.lines.append(line); lines.lock.unlock() }
    defer { ImageFolder.log = saved }
    let result = try body()
    return (result, lines.lines)
}

final class ImageFolderTests: XCTestCase {
    var dir: TemporaryFolder!
    override func setUp() { dir = TemporaryFolder() }
    override func tearDown() { dir.remove() }

    /// train/ and val/ with classes "b", "B", "a" (code-point order: B, a, b).
    func makeSplitTree(perClass: Int = 3) {
        for split in ["train", "val"] {
            for (k, name) in ["b", "B", "a"].enumerated() {
                for i in 0..<perClass { dir.write("\(split)/\(name)/img\(i).png", greyPNG(UInt8(10 * k + i))) }
            }
        }
    }

    func testTrainValLayoutClassesAndOrder() throws {
        makeSplitTree()
        dir.write("train/a/notes.txt", Array("not an image, other extension: ignored".utf8))
        dir.write("train/a/.hidden.png", [1, 2, 3])
        let (train, log) = try capturingLog { try ImageFolder.load(.train, directory: dir.path) }
        XCTAssertEqual(train.classNames, ["B", "a", "b"])
        XCTAssertEqual(train.count, 9)
        XCTAssertEqual(train.channels, 1)
        XCTAssertTrue(train.pixels.isEmpty, "nothing is decoded when loading")
        // Class by class in turn: B0 a0 b0 B1 a1 b1 ...
        XCTAssertEqual(train.labels, [0, 1, 2, 0, 1, 2, 0, 1, 2])
        XCTAssertEqual(train.files!.paths.prefix(3).map { ($0 as NSString).lastPathComponent }, ["img0.png", "img0.png", "img0.png"])
        XCTAssertTrue(train.files!.paths[1].hasSuffix("train/a/img0.png"))
        XCTAssertTrue(log.contains { $0.contains("9 images in 3 classes") && $0.contains("not held in memory") }, "\(log)")
        let val = try ImageFolder.load(.test, directory: dir.path)
        XCTAssertEqual(val.classNames, train.classNames)
        XCTAssertTrue(val.files!.paths.allSatisfy { $0.contains("/val/") })
    }

    func testChannelsAreDetectedOrGiven() throws {
        makeSplitTree()
        XCTAssertEqual(try ImageFolder.load(.train, directory: dir.path).channels, 1)
        dir.write("train/b/colour.png", try Fixtures.bytes("rgb8.png"))
        dir.write("train/b/0-colour-first.png", try Fixtures.bytes("rgb8.png"))
        XCTAssertEqual(try ImageFolder.load(.train, directory: dir.path).channels, 3)
        XCTAssertEqual(try ImageFolder.load(.train, directory: dir.path, options: .init(channels: 1)).channels, 1)
    }

    func testValFractionSplitIsSeededDisjointAndPerClass() throws {
        for name in ["cat", "dog"] { for i in 0..<10 { dir.write("\(name)/\(i).png", greyPNG(UInt8(i))) } }
        let options = ImageFolderOptions(valFraction: 0.3, splitSeed: 5)
        let train = try ImageFolder.load(.train, directory: dir.path, options: options)
        let val = try ImageFolder.load(.test, directory: dir.path, options: options)
        XCTAssertEqual(train.classHistogram, [7, 7])
        XCTAssertEqual(val.classHistogram, [3, 3])
        XCTAssertEqual(Set(train.files!.paths).intersection(val.files!.paths), [])
        XCTAssertEqual(Set(train.files!.paths).union(val.files!.paths).count, 20)
        XCTAssertEqual(try ImageFolder.load(.test, directory: dir.path, options: options).files!.paths, val.files!.paths)
        let other = try ImageFolder.load(.test, directory: dir.path, options: ImageFolderOptions(valFraction: 0.3, splitSeed: 6))
        XCTAssertNotEqual(Set(other.files!.paths), Set(val.files!.paths))
    }

    func testOptionsParse() throws {
        let o = try ImageFolderOptions.parse(["val-fraction=0.25", "skip-bad-images", "channels=3", "resize=32",
                                              "mean=0.5/0.5/0.5", "std=0.25/0.25/0.25"])
        XCTAssertEqual(o.valFraction, 0.25)
        XCTAssertTrue(o.skipBadImages)
        XCTAssertEqual(o.normalization(channels: 3), Normalization(mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]))
        XCTAssertEqual(ImageFolderOptions().normalization(channels: 3), ImageFolderOptions.imageNet)
        for bad in [["val-fraction=1.5"], ["channels=2"], ["colour=yes"], ["mean=0.5"], ["crop=32"], ["resize"], ["std=0/1/1", "mean=0/0/0"]] {
            XCTAssertThrowsError(try ImageFolderOptions.parse(bad), "\(bad)")
        }
    }

    // MARK: Transforms through the loader

    func testEvaluationTransformIsResizeThenCentreCrop() throws {
        makeSplitTree(perClass: 1)
        // A 12 x 8 gradient image: Resize(6) makes it 9 x 6 (shorter side 6, longer truncated),
        // CenterCrop(6) keeps rows round((9 - 6) / 2) = 2 (Python round: 1.5 -> 2) ... 7.
        let pixels = (0..<(12 * 8)).map { UInt8(($0 * 7) % 256) }
        let image = DecodedImage(width: 8, height: 12, channels: 1, pixels: pixels)
        dir.write("val/a/img0.png", try PNGEncoder.encode(image))
        let val = try ImageFolder.load(.test, directory: dir.path, options: .init(crop: 6, resize: 6))
        let loader = DataLoader(val, options: .init(batchSize: 3, shuffle: false, prefetch: false))
        let batch = try XCTUnwrap(try loader.next())
        XCTAssertEqual(batch.images.shape, [1, 3, 6, 6])
        XCTAssertEqual(batch.labels, [0, 1, 2])
        let rows = Resampling(input: 12, from: 0, to: 12, outputs: 9, window: 2, count: 6)
        let columns = Resampling(input: 8, from: 0, to: 8, outputs: 6)
        let expected = Resampling.resampleReference(image, rows: rows, columns: columns, flip: false)
        let got = Array(UnsafeBufferPointer(start: batch.images.pointer + 36, count: 36))  // image 1 is class a
        for (g, e) in zip(got, expected) { XCTAssertEqual(g, e, accuracy: 1e-5) }
        // By hand: shrinking 8 columns to 6 (scale 4/3, support 4/3), output 0 centres on 2/3.
        XCTAssertEqual(columns.first[0], 0)
        let w0: Double = 1 - abs(0.5 - 2.0 / 3) * 0.75, w1: Double = 1 - abs(1.5 - 2.0 / 3) * 0.75
        XCTAssertEqual(columns.weights[0].count, 2)
        XCTAssertEqual(Double(columns.weights[0][0]), w0 / (w0 + w1), accuracy: 1e-6)
        XCTAssertEqual(Double(columns.weights[0][1]), w1 / (w0 + w1), accuracy: 1e-6)
    }

    func testConstantImageStaysConstantAndNormalises() throws {
        makeSplitTree(perClass: 2)
        let train = try ImageFolder.load(.train, directory: dir.path)
        let norm = Normalization(mean: [0.5], std: [0.25])
        let loader = DataLoader(train, options: .init(batchSize: 6, shuffle: false, resize: ImageSize(5), normalization: norm,
                                                      augmentation: .randomResizedCrop(minScale: 0.08, flip: true), prefetch: false))
        let batch = try XCTUnwrap(try loader.next())
        XCTAssertEqual(batch.images.shape, [1, 6, 5, 5])
        for j in 0..<6 {
            let name = train.classNames[Int(batch.labels[j])]
            let k = ["b", "B", "a"].firstIndex(of: name)!
            let i = train.files!.paths[j].hasSuffix("img1.png") ? 1 : 0
            let value = Float(10 * k + i) / 255
            for p in 0..<25 { XCTAssertEqual(batch.images.pointer[j * 25 + p], (value - 0.5) / 0.25, accuracy: 1e-5) }
        }
    }

    func testRandomResizedCropIsSeededAndMatchesReference() throws {
        makeSplitTree(perClass: 1)
        let pixels: [UInt8] = (0..<1800).map { (i: Int) -> UInt8 in UInt8((i * 13 + i / 90) % 256) }
        let image = DecodedImage(width: 30, height: 20, channels: 3, pixels: pixels)
        for name in ["B", "a", "b"] { dir.write("train/\(name)/img0.png", try PNGEncoder.encode(image)) }
        let train = try ImageFolder.load(.train, directory: dir.path, options: .init(crop: 8))
        XCTAssertEqual(train.channels, 3)
        let options = DataLoaderOptions(batchSize: 3, shuffle: false, augmentation: .randomResizedCrop(minScale: 0.08, flip: true),
                                        prefetch: false, seed: 3)
        let a = try XCTUnwrap(try DataLoader(train, options: options).next())
        let b = try XCTUnwrap(try DataLoader(train, options: options).next())
        XCTAssertEqual(a.images.shape, [3, 3, 8, 8])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: a.images.pointer, count: 192)),
                       Array(UnsafeBufferPointer(start: b.images.pointer, count: 192)))
        // Same image three times, three different draws.
        let planes = (0..<3).map { j in Array(UnsafeBufferPointer(start: a.images.pointer + j * 64, count: 64)) }
        XCTAssertNotEqual(planes[0], planes[1])
        // Each equals the reference resampling of its own draw.
        let loader = DataLoader(train, options: options)
        for j in 0..<3 {
            var rng = SeededGenerator(seed: DataLoaderTestAccess.seed(3, epoch: 0, position: j))
            let box = FolderTransform.randomBox(height: 20, width: 30, scale: 0.08...1, ratio: (3.0 / 4)...(4.0 / 3), using: &rng)
            let flip = (rng.next() >> 63) == 1
            let rows = Resampling(input: 20, from: Double(box.top), to: Double(box.top + box.height), outputs: 8)
            let columns = Resampling(input: 30, from: Double(box.left), to: Double(box.left + box.width), outputs: 8)
            let expected = Resampling.resampleReference(image, rows: rows, columns: columns, flip: flip)
            let batch = try loader.batch(epoch: 0, index: 0)
            for ch in 0..<3 {
                for p in 0..<64 {
                    XCTAssertEqual(batch.images.pointer[(ch * 3 + j) * 64 + p], expected[ch * 64 + p], accuracy: 1e-5)
                }
            }
        }
    }

    func testRandomBoxFollowsTorchvisionsRules() {
        var rng = SeededGenerator(seed: 1)
        var fallbacks = 0
        for _ in 0..<500 {
            let box = FolderTransform.randomBox(height: 40, width: 60, scale: 0.08...1, ratio: (3.0 / 4)...(4.0 / 3), using: &rng)
            XCTAssertTrue(box.top >= 0 && box.left >= 0 && box.top + box.height <= 40 && box.left + box.width <= 60)
            let area = Double(box.height * box.width) / 2400
            if area > 1 - 1e-9 || box.height == 40 { fallbacks += 1; continue }
            XCTAssertGreaterThan(area, 0.06)
            let ratio = Double(box.width) / Double(box.height)
            XCTAssertTrue(ratio > 0.6 && ratio < 1.6, "\(box)")
        }
        XCTAssertLessThan(fallbacks, 250)
        // A very wide image falls back to the central crop of ratio 4/3 after ten misses.
        var g = SeededGenerator(seed: 2)
        let wide = FolderTransform.randomBox(height: 3, width: 300, scale: 0.99...1, ratio: (3.0 / 4)...(4.0 / 3), using: &g)
        XCTAssertEqual(wide.height, 3)
        XCTAssertEqual(wide.width, 4)
        XCTAssertEqual(wide.left, 148)
    }
}

/// The loader's per-example seed (DataLoader.streamSeed), computed here from its definition
/// (SplitMix64's finaliser chained over seed, epoch, position + 1).
enum DataLoaderTestAccess {
    static func seed(_ seed: UInt64, epoch: UInt64, position: Int) -> UInt64 {
        func mix(_ x: UInt64) -> UInt64 {
            var z = x &+ 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        return mix(mix(mix(seed) ^ epoch) ^ UInt64(position + 1))
    }
}
