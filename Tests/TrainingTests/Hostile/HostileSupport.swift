import Datasets
import Foundation
import XCTest

/// The hostile-input suite (issue 11): every case feeds one bad input to the real code and
/// expects a typed error whose message names what is wrong (the file, field or option), never a
/// crash or a hang. `refuses` is the one assertion all cases use, so counting its calls counts
/// the cases.
@discardableResult
func refuses<R>(_ label: String, mentioning words: [String], file: StaticString = #filePath, line: UInt = #line,
                _ body: () throws -> R) -> Error? {
    do {
        _ = try body()
        XCTFail("\(label): accepted, expected a clear error", file: file, line: line)
        return nil
    } catch {
        let message = "\(error)"
        for word in words where !message.contains(word) {
            XCTFail("\(label): the error does not mention '\(word)': \(message)", file: file, line: line)
        }
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
