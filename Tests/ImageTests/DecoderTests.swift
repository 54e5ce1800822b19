import Datasets
import Foundation
import Runtime
import XCTest

/// The fixtures of Scripts/make_image_fixtures.py, with the pixels Pillow decoded from them.
enum Fixtures {
    static let directory = ((#filePath as NSString).deletingLastPathComponent as NSString).appendingPathComponent("Fixtures")

    static func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    static func bytes(_ name: String) throws -> [UInt8] { try FileBytes.readRaw(path(name)) }

    struct Expected: Decodable {
        let channels: Int?
        let width: Int?
        let height: Int?
        let pixels: [UInt8]?
        let pillow_pixels: [UInt8]?
        let refused: String?
    }

    static let expected: [String: Expected] = {
        struct File: Decodable { let images: [String: Expected] }
        let data = try! Data(contentsOf: URL(fileURLWithPath: path("expected.json")))
        return try! JSONDecoder().decode(File.self, from: data).images
    }()
}

final class DecoderTests: XCTestCase {
    func testPNGPixelsEqualPillows() throws {
        let names = Fixtures.expected.keys.filter { $0.hasSuffix(".png") }.sorted()
        XCTAssertEqual(names.count, 10)
        for name in names {
            let e = Fixtures.expected[name]!
            let image = try ImageDecoding.decode(Fixtures.bytes(name))
            XCTAssertEqual(image.channels, e.channels, name)
            XCTAssertEqual(image.width, e.width, name)
            XCTAssertEqual(image.height, e.height, name)
            XCTAssertEqual(image.pixels, e.pixels, name)
            if let pillow = e.pillow_pixels, name != "gray16.png" {
                // 16-bit colour: Pillow keeps the high byte, libpng rounds; never more than 1 apart.
                XCTAssertLessThanOrEqual(maxDifference(image.pixels, pillow), 1, name)
            }
        }
    }

    func testJPEGPixelsWithinOneLevelOfPillows() throws {
        let names = Fixtures.expected.keys.filter { $0.hasSuffix(".jpg") && Fixtures.expected[$0]!.refused == nil }.sorted()
        XCTAssertEqual(names, ["exif-rotated.jpg", "gray.jpg", "progressive.jpg", "rgb420.jpg", "rgb444.jpg"])
        for name in names {
            let e = Fixtures.expected[name]!
            let image = try ImageDecoding.decode(Fixtures.bytes(name))
            XCTAssertEqual(image.channels, e.channels, name)
            XCTAssertEqual(image.width, e.width, name)
            XCTAssertEqual(image.height, e.height, name)
            let difference = maxDifference(image.pixels, e.pixels!)
            print("\(name): largest difference from Pillow \(difference) levels")
            XCTAssertLessThanOrEqual(difference, 1, name)
        }
        // EXIF orientation 6 (rotate 90°) is ignored: same size and pixels as without it.
        let rotated = try ImageDecoding.decode(Fixtures.bytes("exif-rotated.jpg"))
        let plain = try ImageDecoding.decode(Fixtures.bytes("rgb420.jpg"))
        XCTAssertEqual(rotated, plain)
    }

    func testCMYKJPEGIsRefused() throws {
        XCTAssertEqual(Fixtures.expected["cmyk.jpg"]?.refused, "CMYK")
        XCTAssertThrowsError(try ImageDecoding.decode(Fixtures.bytes("cmyk.jpg"))) { error in
            guard case ImageDecodingError.unsupported(let format, let reason)? = error as? ImageDecodingError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(format, "JPEG")
            XCTAssertTrue(reason.contains("CMYK"), reason)
        }
    }

    func testTruncatedAndCorruptDataAreErrors() throws {
        for name in ["rgb420.jpg", "progressive.jpg", "gray.jpg", "rgb8.png", "palette.png"] {
            let bytes = try Fixtures.bytes(name)
            // A PNG's last 12 bytes are its IEND chunk, which holds no pixels: cut into the data's CRC.
            let end = name.hasSuffix(".png") ? bytes.count - 13 : bytes.count - 3
            for cut in [bytes.count / 2, end, 20, 4] {
                XCTAssertThrowsError(try ImageDecoding.decode(Array(bytes.prefix(cut))), "\(name) cut at \(cut)") { error in
                    XCTAssertTrue(error is ImageDecodingError, "\(error)")
                }
            }
        }
        // Scrambled entropy-coded data in the middle of a JPEG: an error or an image, never a crash.
        var jpeg = try Fixtures.bytes("rgb444.jpg")
        for i in stride(from: jpeg.count / 2, to: jpeg.count - 2, by: 7) { jpeg[i] = 0xFF }
        _ = try? ImageDecoding.decode(jpeg)
        // A PNG whose data CRC is wrong.
        var png = try Fixtures.bytes("rgb8.png")
        png[png.count - 20] ^= 0x55
        XCTAssertThrowsError(try ImageDecoding.decode(png))
    }

    /// Seeded random damage to every fixture (bytes overwritten, cut short, chunks repeated):
    /// each decode returns an image or a typed error, never a crash, a hang or an exit.
    func testDamagedFilesNeverCrash() throws {
        var rng = SeededGenerator(seed: 2026)
        var errors = 0, images = 0
        for name in Fixtures.expected.keys.sorted() {
            let original = try Fixtures.bytes(name)
            for trial in 0..<150 {
                var bytes = original
                let r = Int(rng.next() % 1000)
                switch trial % 3 {
                case 0:
                    for _ in 0..<(1 + r % 8) { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
                case 1:
                    bytes = Array(bytes.prefix(1 + r % bytes.count))
                    bytes[Int(rng.next() % UInt64(bytes.count))] ^= 0x5A
                default:
                    let start = r % bytes.count, length = min(1 + Int(rng.next() % 64), bytes.count - start)
                    bytes.insert(contentsOf: bytes[start..<(start + length)], at: Int(rng.next() % UInt64(bytes.count)))
                }
                do {
                    let image = try ImageDecoding.decode(bytes, maximumPixels: 1 << 22)
                    XCTAssertEqual(image.pixels.count, image.width * image.height * image.channels)
                    images += 1
                } catch is ImageDecodingError {
                    errors += 1
                }
            }
        }
        XCTAssertGreaterThan(errors, 500, "most damage is detected")
        print("damaged fixtures: \(errors) errors, \(images) images decoded anyway")
    }

    func testEmptyAndNonImageBytes() {
        XCTAssertEqual(catchDecoding([]), .empty)
        let text = Array("hello, this is not an image\n".utf8)
        guard case .unknownFormat(let head)? = catchDecoding(text) else { return XCTFail() }
        XCTAssertEqual(head, "68 65 6c 6c 6f 2c 20 74")
    }

    func testAbsurdSizesAreRefusedBeforeAllocating() throws {
        // PNG: IHDR says 60000 x 60000 (3.6 G pixels); libpng accepts the header (its default
        // limit is 1,000,000 per side), the size check refuses it.
        var png = try Fixtures.bytes("rgb8.png")
        setBigEndian(&png, at: 16, 60_000)
        setBigEndian(&png, at: 20, 60_000)
        fixCRC(&png, chunkAt: 8)
        guard case .badSize(let w, let h, _)? = catchDecoding(png) else { return XCTFail("\(String(describing: catchDecoding(png)))") }
        XCTAssertEqual([w, h], [60_000, 60_000])
        // JPEG: SOF0 says 65000 x 65000.
        var jpeg = try Fixtures.bytes("rgb444.jpg")
        let sof = try XCTUnwrap((0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        jpeg[sof + 5] = 0xFD; jpeg[sof + 6] = 0xE8  // height
        jpeg[sof + 7] = 0xFD; jpeg[sof + 8] = 0xE8  // width
        guard case .badSize(let jw, let jh, _)? = catchDecoding(jpeg) else { return XCTFail("\(String(describing: catchDecoding(jpeg)))") }
        XCTAssertEqual([jw, jh], [65_000, 65_000])
        // A smaller limit applies to ordinary images too.
        XCTAssertThrowsError(try ImageDecoding.decode(Fixtures.bytes("rgb8.png"), maximumPixels: 23))
        XCTAssertNoThrow(try ImageDecoding.decode(Fixtures.bytes("rgb8.png"), maximumPixels: 24))
    }

    func testChannelConversionsArePillows() {
        let rgb = DecodedImage(width: 2, height: 1, channels: 3, pixels: [255, 0, 0, 10, 200, 30])
        // L = (19595 R + 38470 G + 7471 B + 32768) >> 16, by hand.
        XCTAssertEqual(rgb.converted(to: 1).pixels, [76, 124])
        let grey = DecodedImage(width: 2, height: 1, channels: 1, pixels: [7, 250])
        XCTAssertEqual(grey.converted(to: 3).pixels, [7, 7, 7, 250, 250, 250])
    }
}

func maxDifference(_ a: [UInt8], _ b: [UInt8]) -> Int {
    guard a.count == b.count else { return Int.max }
    return zip(a, b).map { abs(Int($0) - Int($1)) }.max() ?? 0
}

private func catchDecoding(_ bytes: [UInt8]) -> ImageDecodingError? {
    do { _ = try ImageDecoding.decode(bytes); return nil } catch { return error as? ImageDecodingError }
}

private func setBigEndian(_ bytes: inout [UInt8], at offset: Int, _ value: UInt32) {
    for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (24 - 8 * i)) }
}

/// Recomputes the CRC of the PNG chunk starting at `offset` (length, type, data, CRC).
private func fixCRC(_ bytes: inout [UInt8], chunkAt offset: Int) {
    let length = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes[(offset + 4)..<(offset + 8 + length)] {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
    }
    setBigEndian(&bytes, at: offset + 8 + length, ~crc)
}
