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
