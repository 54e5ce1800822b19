import Datasets
import Foundation
import XCTest

/// Every bad-file case of an image folder: an error naming the file and what is wrong, or with
/// skip-bad-images a line in the log and the file left out.
final class BadImageTests: XCTestCase {
    var dir: TemporaryFolder!
    override func setUp() { dir = TemporaryFolder("bad-images") }
    override func tearDown() { dir.remove() }

    let skip = ImageFolderOptions(skipBadImages: true)

    /// train/ and val/ with classes a and b, three good grey PNGs each.
    func makeTree() {
        for split in ["train", "val"] {
            for name in ["a", "b"] { for i in 0..<3 { dir.write("\(split)/\(name)/\(i).png", greyPNG(UInt8(40 * i))) } }
        }
    }

    func badImage(_ error: Error?, file: StaticString = #filePath, line: UInt = #line) -> (path: String, reason: String)? {
        guard let error else { XCTFail("no error", file: file, line: line); return nil }
        switch error as? DatasetError {
        case .badImage(let p, let r)?, .badImageFolder(let p, let r)?: return (p, r)
        default: XCTFail("not a bad-image error: \(error)", file: file, line: line); return nil
        }
    }

    func loadError(_ split: DatasetSplit = .train, _ options: ImageFolderOptions = ImageFolderOptions()) -> Error? {
        do { _ = try ImageFolder.load(split, directory: dir.path, options: options); return nil } catch { return error }
    }

    /// All batches of one epoch, or the error.
    func epoch(_ data: ImageDataset) -> Result<[Batch], Error> {
        let loader = DataLoader(data, options: .init(batchSize: 4, shuffle: false, resize: ImageSize(4)))
        return Result { var out = [Batch](); while let b = try loader.next() { out.append(b) }; return out }
    }

    func testTruncatedJPEG() throws {
        makeTree()
        let jpeg = try Fixtures.bytes("gray.jpg")
        let path = dir.write("train/b/truncated.jpg", Array(jpeg.prefix(jpeg.count / 2)))
        let train = try ImageFolder.load(.train, directory: dir.path)   // the signature is fine
        guard case .failure(let error) = epoch(train), let bad = badImage(error) else { return XCTFail("no failure") }
        XCTAssertEqual(bad.path, path)
        XCTAssertTrue(bad.reason.contains("truncated"), bad.reason)
        XCTAssertTrue("\(error)".hasPrefix(path), "\(error)")

        let skipping = try ImageFolder.load(.train, directory: dir.path, options: skip)
        let (result, log) = capturingLog { (epoch(skipping), epoch(skipping)) }
        for r in [result.0, result.1] {
            let batches = try r.get()
            XCTAssertEqual(batches.map(\.labels.count), [4, 2], "7 files, one left out")
            XCTAssertFalse(batches.flatMap(\.exampleIndices).contains(skipping.files!.paths.firstIndex(of: path)!))
            XCTAssertEqual(batches[1].images.shape, [1, 2, 4, 4])
        }
        XCTAssertEqual(log.filter { $0.contains("left out \(path)") }.count, 1, "logged once: \(log)")
        XCTAssertTrue(log.contains { $0.contains("(1 left out while training so far)") }, "\(log)")
        XCTAssertEqual(Array(skipping.files!.badFiles.keys), [path])
    }

    func testNonImageWithImageExtension() throws {
        makeTree()
        let path = dir.write("train/a/notes.jpg", Array("these are my notes, saved with the wrong name\n".utf8))
        let bad = badImage(loadError())
        XCTAssertEqual(bad?.path, path)
        XCTAssertTrue(bad?.reason.contains("not a PNG or JPEG file (starts with 74 68 65 73") ?? false, "\(String(describing: bad))")

        let (train, log) = try capturingLog { try ImageFolder.load(.train, directory: dir.path, options: skip) }
        XCTAssertEqual(train.count, 6)
        XCTAssertFalse(train.files!.paths.contains(path))
        XCTAssertTrue(log.contains { $0.contains("left out \(path)") }, "\(log)")
        XCTAssertTrue(log.contains { $0.contains("6 images in 2 classes") && $0.contains("1 left out as bad") }, "\(log)")
    }

    func testZeroByteFile() throws {
        makeTree()
        let path = dir.write("val/b/empty.png", [])
        XCTAssertNil(loadError(.train), "the training split has no bad file")
        let bad = badImage(loadError(.test))
        XCTAssertEqual(bad?.path, path)
        XCTAssertTrue(bad?.reason.contains("empty file (0 bytes)") ?? false)
        let (val, log) = try capturingLog { try ImageFolder.load(.test, directory: dir.path, options: skip) }
        XCTAssertEqual(val.count, 6)
        XCTAssertTrue(log.contains { $0.contains("1 left out as bad") })
    }

    func testFileVanishingDuringTheRun() throws {
        makeTree()
        let train = try ImageFolder.load(.train, directory: dir.path)
        let gone = train.files!.paths[3]
        try FileManager.default.removeItem(atPath: gone)
        guard case .failure(let error) = epoch(train), let bad = badImage(error) else { return XCTFail("no failure") }
        XCTAssertEqual(bad.path, gone)
        XCTAssertTrue(bad.reason.contains("the file is gone"), bad.reason)

        let skipping = try ImageFolder.load(.train, directory: dir.path, options: skip)
        let vanishing = skipping.files!.paths[0]
        try FileManager.default.removeItem(atPath: vanishing)
        let (result, log) = capturingLog { epoch(skipping) }
        XCTAssertEqual(try result.get().map(\.labels.count), [3, 1])
        XCTAssertTrue(log.contains { $0.contains("left out \(vanishing): the file is gone") }, "\(log)")
    }

    func testUnreadableFolder() throws {
        makeTree()
        let path: String
        if geteuid() == 0 {
            // Root reads any folder: a class folder that is a symbolic link to itself cannot be read either.
            path = dir.file("train/c")
            try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: path)
        } else {
            path = dir.file("train/b")
            XCTAssertEqual(chmod(path, 0), 0)
        }
        defer { chmod(path, 0o755) }
        let bad = badImage(loadError())
        XCTAssertEqual(bad?.path, path)
        XCTAssertTrue(bad?.reason.contains("cannot") ?? false, "\(String(describing: bad))")
        // A nested folder inside a class, likewise.
        try FileManager.default.removeItem(atPath: path)
        if geteuid() != 0 { makeTree() }
        let nested = dir.file("train/a/more")
        if geteuid() == 0 {
            try FileManager.default.createSymbolicLink(atPath: nested, withDestinationPath: nested)
        } else {
            dir.makeFolder("train/a/more")
            XCTAssertEqual(chmod(nested, 0), 0)
        }
        defer { chmod(nested, 0o755) }
        XCTAssertEqual(badImage(loadError())?.path, nested)
        let (train, log) = try capturingLog { try ImageFolder.load(.train, directory: dir.path, options: skip) }
        XCTAssertEqual(train.count, 6)
        XCTAssertTrue(log.contains { $0.contains("left out \(nested)") }, "\(log)")
    }

    func testEmptyClassFolder() throws {
        makeTree()
        dir.makeFolder("train/c")
        dir.makeFolder("val/c")
        dir.write("train/c/readme.txt", Array("no images here".utf8))
        let bad = badImage(loadError())
        XCTAssertEqual(bad?.path, dir.file("train/c"))
        XCTAssertTrue(bad?.reason.contains("class 'c' has no PNG or JPEG files") ?? false)
        let (train, log) = try capturingLog { try ImageFolder.load(.train, directory: dir.path, options: skip) }
        XCTAssertEqual(train.classNames, ["a", "b", "c"], "the class keeps its label")
        XCTAssertEqual(train.classHistogram, [3, 3, 0])
        XCTAssertTrue(log.contains { $0.contains("left out \(dir.file("train/c"))") }, "\(log)")
    }

    func testClassMissingFromValidationOrTraining() throws {
        makeTree()
        for i in 0..<2 { dir.write("train/zebra/\(i).png", greyPNG(9)) }
        for split in [DatasetSplit.train, .test] {
            let bad = badImage(loadError(split, skip))   // never skipped: labels would not match
            XCTAssertEqual(bad?.path, dir.file("val/zebra"))
            XCTAssertTrue(bad?.reason.contains("class 'zebra' of train/ has no folder in val/") ?? false, "\(String(describing: bad))")
        }
        try FileManager.default.moveItem(atPath: dir.file("train/zebra"), toPath: dir.file("val/zebra"))
        let bad = badImage(loadError())
        XCTAssertEqual(bad?.path, dir.file("val/zebra"))
        XCTAssertTrue(bad?.reason.contains("is not in train/") ?? false)
    }

    func testMissingSplitFoldersAndMissingRoot() throws {
        for i in 0..<2 { dir.write("a/\(i).png", greyPNG(9)) }
        let bad = badImage(loadError())
        XCTAssertEqual(bad?.path, dir.path)
        XCTAssertTrue(bad?.reason.contains("val-fraction") ?? false)
        XCTAssertEqual(badImage({ () -> Error? in
            do { _ = try ImageFolder.load(.train, directory: dir.file("nowhere")); return nil } catch { return error }
        }())?.reason, "no such folder")
    }

    func testABatchOfOnlyBadFilesIsPassedOver() throws {
        dir.write("train/a/0.png", greyPNG(1))
        dir.write("val/a/0.png", greyPNG(1))
        for i in 1...4 { dir.write("train/a/\(i).jpg", Array(try Fixtures.bytes("gray.jpg").prefix(200))) }
        let train = try ImageFolder.load(.train, directory: dir.path, options: skip)
        XCTAssertEqual(train.count, 5)
        let loader = DataLoader(train, options: .init(batchSize: 2, shuffle: false, prefetch: false))
        let (batches, _) = try capturingLog { () throws -> [Batch] in var out = [Batch](); while let b = try loader.next() { out.append(b) }; return out }
        // Order: 0.png 1.jpg | 2.jpg 3.jpg | 4.jpg: the second and third batches are all bad.
        XCTAssertEqual(batches.map(\.index), [0])
        XCTAssertEqual(batches.map(\.labels.count), [1])
        XCTAssertEqual(loader.state.epoch, 1, "the epoch ended")
    }

    func testErrorsReadWell() {
        let e = DatasetError.badImage(path: "/data/train/cat/1.jpg", reason: ImageDecodingError.empty.description)
        XCTAssertEqual("\(e)", "/data/train/cat/1.jpg: empty file (0 bytes); remove it or copy it again (with skip-bad-images such files are left out)")
    }
}
