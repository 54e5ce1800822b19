import Datasets
import Foundation
import Runtime
import XCTest

/// Issue 11, class 8: gzip is inflated within a limit derived from the format's header (IDX) or
/// the reader's bound (CIFAR, CSV), so a small file that inflates to gigabytes is refused after
/// about as many bytes as the file may hold, not after inflating all of it.
final class HostileDecompressionTests: XCTestCase {
    var dir: TemporaryDirectory!
    override func setUp() { dir = TemporaryDirectory("hostile-gzip") }
    override func tearDown() { dir.remove() }

    /// `head` then `members` gzip members of 1 MiB of zeros each (concatenated members are one
    /// gzip file, as `gunzip` reads them): ~1 KB of file per MiB inflated.
    func bomb(_ name: String, head: [UInt8], members: Int) -> String {
        let mebibyte = FileBytes.gzip([UInt8](repeating: 0, count: 1 << 20), level: 9)
        var bytes = FileBytes.gzip(head + [UInt8](repeating: 0, count: 1 << 20), level: 9)
        bytes.reserveCapacity(bytes.count + members * mebibyte.count)
        for _ in 1..<members { bytes += mebibyte }
        return dir.write(name, bytes)
    }

    /// The case: 1.3 MB of gzip inflating to 1.25 GiB behind an IDX header that announces
    /// 1000 Fashion-MNIST images (784,016 bytes).
    func testIDXBombIsRefusedAtTheSizeItsHeaderAnnounces() throws {
        let path = bomb("train-images-idx3-ubyte.gz", head: bigEndian([Int(IDX.imagesMagic), 1000, 28, 28]), members: 1280)
        let fileSize = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        XCTAssertLessThan(fileSize, 1_500_000)
        _ = ProcessProbe.resetPeakResident()
        let before = ProcessProbe.residentBytes
        let started = Date()
        let error = refuses("1.3 MB IDX gzip inflating to 1.25 GiB", mentioning: [path, "784016 bytes", "header announces"]) {
            try IDX.readImages(path)
        }
        XCTAssertEqual(error as? DatasetError, .tooLarge(path: path, bytes: 784_017, limit: 784_016,
                                                         reason: "the size its header announces"))
        XCTAssertLessThan(Date().timeIntervalSince(started), 2, "refused early, not after inflating 1.25 GiB")
        XCTAssertLessThan(ProcessProbe.peakResidentBytes - before, 256 << 20, "peak RSS grew by less than 256 MiB")
    }

    func testOtherGzipBombsAndAbsurdHeaders() throws {
        let labels = bomb("labels.gz", head: bigEndian([Int(IDX.labelsMagic), 10]), members: 64)
        refuses("IDX labels bomb", mentioning: [labels, "18 bytes", "header announces"]) { try IDX.readLabels(labels) }
        // A header announcing 3.3 TB: refused from its 16 bytes.
        let absurd = bomb("absurd.gz", head: bigEndian([Int(IDX.imagesMagic), 0xFFFF_FFFF, 28, 28]), members: 4)
        refuses("IDX header announcing 3.3 TB", mentioning: [absurd, "absurd data size"]) { try IDX.readImages(absurd) }
        // A wrong magic is seen in the first inflated bytes.
        let wrong = bomb("wrong.gz", head: bigEndian([0x0000_0802, 5, 5, 5]), members: 64)
        refuses("IDX bomb with a wrong magic", mentioning: [wrong, "magic"]) { try IDX.readImages(wrong) }
        // Readers without a header stop at their bound (CIFAR's and CSV's are 1 GiB; smaller here).
        let records = bomb("data_batch_1.bin.gz", head: [], members: 8)
        refuses("CIFAR-like bomb over the reader's limit", mentioning: [records, "1048576 bytes", "reader's limit"]) {
            try FileBytes.read(records, limit: .atMost(1 << 20))
        }
        let csv = bomb("table.csv.gz", head: Array("a,b\n".utf8), members: 8)
        refuses("CSV bomb over the reader's limit", mentioning: [csv, "reader's limit"]) {
            try NumericTable.read(csv, limit: .atMost(1 << 20))
        }
        // A plain file over the limit is refused before it is read.
        let plain = dir.write("big.bin", [UInt8](repeating: 7, count: 4096))
        refuses("plain file over the limit", mentioning: [plain, "the file itself"]) {
            try FileBytes.read(plain, limit: .atMost(4095))
        }
        XCTAssertEqual(CIFAR.maxFileBytes, 1 << 30)
    }

    /// What must still work: a real IDX file, gzip'd in one member or several.
    func testHonestGzipFilesStillRead() throws {
        let pixels = (0..<(3 * 4 * 5)).map { UInt8($0) }
        let bytes = IDX.encodeImages(pixels, count: 3, rows: 4, columns: 5)
        let one = dir.write("one.gz", FileBytes.gzip(bytes))
        let two = dir.write("two.gz", FileBytes.gzip(Array(bytes[0..<10])) + FileBytes.gzip(Array(bytes[10...])))
        for path in [one, two] {
            let images = try IDX.readImages(path)
            XCTAssertEqual([images.count, images.rows, images.columns], [3, 4, 5])
            XCTAssertEqual(images.pixels, pixels)
        }
        let longer = dir.write("longer.gz", FileBytes.gzip(bytes + [1]))
        refuses("one byte more than announced", mentioning: [longer, "header announces"]) { try IDX.readImages(longer) }
    }
}
