import Checkpoints
import Datasets
import Foundation
import Runtime
import Training
import XCTest

/// Issue 11, class 5: a named pipe, a device or a directory where a data or checkpoint file is
/// expected is refused at once with an error naming what it is, never waited on.
final class HostileFileTests: XCTestCase {
    var dir: TemporaryDirectory!
    override func setUp() { dir = TemporaryDirectory("hostile-files") }
    override func tearDown() { dir.remove() }

    func fifo(_ name: String) -> String {
        let path = dir.file(name)
        XCTAssertEqual(mkfifo(path, 0o644), 0, "mkfifo \(path)")
        return path
    }

    /// Every reader, given a named pipe with no writer: refused within seconds.
    func testNamedPipesAreRefusedWithoutBlocking() {
        let pipe = fifo("pipe")
        let gzPipe = fifo("train-images-idx3-ubyte.gz")
        _ = fifo("train-labels-idx1-ubyte.gz")
        let stPipe = fifo("model.safetensors")
        let link = dir.file("link-to-pipe.safetensors")
        XCTAssertEqual(symlink(stPipe, link), 0)
        let cases: [(String, String, () throws -> Any)] = [
            ("FileBytes.read of a FIFO", pipe, { try FileBytes.read(pipe) }),
            ("IDX images FIFO (.gz name)", gzPipe, { try IDX.readImages(gzPipe) }),
            ("IDX labels FIFO", pipe, { try IDX.readLabels(pipe) }),
            ("Fashion-MNIST folder of FIFOs", gzPipe, { try FashionMNIST.load(.train, directory: self.dir.path) }),
            ("CIFAR record FIFO", pipe, { try CIFAR.read([pipe], variant: .cifar10) }),
            ("CSV table FIFO", pipe, { try NumericTable.read(pipe) }),
            ("regression table FIFO", pipe, { try RegressionTable.read(pipe) }),
            ("safetensors FIFO", stPipe, { try Safetensors.read(stPipe) }),
            ("safetensors header of a FIFO", stPipe, { try Safetensors.readHeader(stPipe) }),
            ("checkpoint metadata of a FIFO", stPipe, { try TrainingCheckpoint.modelConfiguration(inFile: stPipe) as Any }),
            ("symbolic link to a FIFO", link, { try Safetensors.read(link) }),
        ]
        for (label, path, body) in cases {
            withoutHanging(label, fifos: [pipe, gzPipe, stPipe]) {
                refuses(label, mentioning: [path, "named pipe", "not a regular file"]) { try body() }
            }
        }
    }

    func testDevicesAndDirectoriesAreRefused() {
        for device in ["/dev/zero", "/dev/null"] where FileManager.default.fileExists(atPath: device) {
            withoutHanging(device) {
                refuses("\(device) as data", mentioning: [device, "character device"]) { try FileBytes.read(device) }
                refuses("\(device) as checkpoint", mentioning: [device, "character device"]) { try Safetensors.read(device) }
            }
        }
        let folder = dir.file("folder.safetensors")
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        refuses("directory as data", mentioning: [folder, "a directory"]) { try FileBytes.read(folder) }
        refuses("directory as checkpoint", mentioning: [folder, "a directory"]) { try Safetensors.read(folder) }
        // A named pipe or a file where a dataset folder is expected.
        let pipeFolder = fifo("cifar-10-batches-bin")
        withoutHanging("FIFO as a CIFAR folder", fifos: [pipeFolder]) {
            refuses("FIFO as a CIFAR folder", mentioning: [pipeFolder, "named pipe", "not a folder"]) {
                try CIFAR.load(.cifar10, .train, directory: pipeFolder)
            }
        }
        let fileFolder = dir.write("fashion", [1])
        refuses("file as the Fashion-MNIST folder", mentioning: [fileFolder, "regular file", "not a folder"]) {
            try FashionMNIST.load(.test, directory: fileFolder)
        }
        // What is not refused: a symbolic link to a regular file.
        let real = dir.write("real.bin", [1, 2, 3])
        let link = dir.file("real-link.bin")
        XCTAssertEqual(symlink(real, link), 0)
        XCTAssertEqual(try FileBytes.read(link), [1, 2, 3])
    }
}
