import Datasets
import DenseNetModels
import Foundation
import Training
import XCTest

/// The hostile-input suite (issue 11): every case feeds one bad input to the real code and
/// expects a typed error whose message names what is wrong (the file, field or option), never a
/// crash or a hang. `refuses` is the one assertion all cases use, so counting its calls counts
/// the cases.
@discardableResult
func refuses<R>(_ label: String, mentioning words: [String], file: StaticString = #filePath, line: UInt = #line,
                _ body: () throws -> R) -> Error? {
    let verbose = ProcessInfo.processInfo.environment["HOSTILE_VERBOSE"] != nil
    do {
        _ = try body()
        XCTFail("\(label): accepted, expected a clear error", file: file, line: line)
        if verbose { print("hostile case: \(label): ACCEPTED") }
        return nil
    } catch {
        let message = "\(error)"
        let missing = words.filter { !message.contains($0) }
        for word in missing {
            XCTFail("\(label): the error does not mention '\(word)': \(message)", file: file, line: line)
        }
        // HOSTILE_VERBOSE=1 swift test --filter Hostile lists every case and its message.
        if verbose { print("hostile case: \(label): \(missing.isEmpty ? "clear error" : "UNCLEAR") \(type(of: error)): \(message)") }
        return error
    }
}

/// `n` images of `channels`×`side`×`side` with labels cycling through `classes`.
func hostileDataset(_ n: Int, channels: Int = 1, side: Int = 4, classes: Int = 10) -> ImageDataset {
    let size = channels * side * side
    let pixels = (0..<(n * size)).map { UInt8(truncatingIfNeeded: $0 &* 37) }
    return try! ImageDataset(pixels: pixels, labels: (0..<n).map { Int32($0 % classes) }, channels: channels,
                             height: side, width: side, classCount: classes)
}

/// Runs `body` on another thread and fails (instead of hanging the suite) when it has not
/// returned within `seconds`; a stuck `open` of a named pipe among `fifos` is then released by
/// opening the pipe's other end.
func withoutHanging(_ label: String, seconds: Double = 5, fifos: [String] = [], file: StaticString = #filePath,
                    line: UInt = #line, _ body: @escaping @Sendable () -> Void) {
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        body()
        done.signal()
    }
    if done.wait(timeout: .now() + seconds) == .timedOut {
        XCTFail("\(label): still blocked after \(seconds) s (a hang)", file: file, line: line)
        for fifo in fifos {
            let fd = open(fifo, O_RDWR | O_NONBLOCK)
            if fd >= 0 { close(fd) }
        }
        _ = done.wait(timeout: .now() + seconds)
    }
}

/// A CIFAR-10 binary distribution in miniature under `directory` (5 training files of
/// `perFile` records and a test file), pixels and labels from a fixed pattern: real files for
/// `TrainingRun`, with no dataset installed.
func writeMiniatureCIFAR10(in directory: String, perFile: Int = 4) {
    func records(_ seed: Int) -> [UInt8] {
        let pixels = (0..<(perFile * CIFAR.imageBytes)).map { UInt8(truncatingIfNeeded: ($0 &* 31) ^ (seed &* 97)) }
        let labels = (0..<perFile).map { UInt8(($0 + seed) % 10) }
        return CIFAR.encodeRecords(pixels: pixels, labels: [labels])
    }
    try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    for (i, name) in (CIFAR.fileNames(.cifar10, .train) + CIFAR.fileNames(.cifar10, .test)).enumerated() {
        _ = FileManager.default.createFile(atPath: (directory as NSString).appendingPathComponent(name),
                                          contents: Data(records(i)))
    }
}

/// A DenseNet of a few hundred parameters at 3x8x8 (the loader resizes CIFAR's 32x32), trained
/// on the miniature CIFAR-10: milliseconds per epoch, one checkpoint per epoch.
/// With `side` 2 its second block's batch norms see a 1x1 map: one value per channel
/// per example.
func hostileConfiguration(data: String, epochs: Int, batch: Int = 10, side: Int = 8) -> TrainingConfiguration {
    let model = DenseNetConfiguration(name: "hostile-tiny", growthRate: 2, blockConfig: [1, 1], initialFeatures: 4,
                                      bottleneckFactor: 2, compression: 0.5, classCount: 10,
                                      inputShape: FeatureShape(channels: 3, height: side, width: side), stem: .cifar)
    return TrainingConfiguration(model: .denseNet(model), strategy: .shared, data: .cifar10(directory: data),
                                 epochs: epochs, batchSize: batch,
                                 optimizer: OptimizerSettings(kind: .sgd, learningRate: 0.05, momentum: 0.9),
                                 schedule: .cosine, seed: 3, testLimit: 4, augment: false)
}

/// A training observer that keeps the run's messages (fallbacks, clean-ups, dropped batches).
final class RecordedMessages: TrainingObserver {
    var lines: [String] = []
    func message(_ text: String) { lines.append(text) }
    func step(_ progress: StepProgress) {}
    func evaluating(batch: Int, of batches: Int) {}
    func epochFinished(_ report: EpochReport) {}
}
