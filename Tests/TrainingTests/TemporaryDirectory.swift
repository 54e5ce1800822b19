import Foundation
import XCTest

/// A fresh directory under the system's temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ label: String = "training-tests") {
        let base = (NSTemporaryDirectory() as NSString).appendingPathComponent("\(label)-\(getpid())-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        path = base
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Writes `bytes` to `name` and returns its path.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let p = file(name)
        _ = FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }

    func contents() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Asserts that `body` throws an error of type `E` and returns it (nil, with a failure, otherwise).
func assertThrows<E: Error, R>(_ errorType: E.Type, file: StaticString = #filePath, line: UInt = #line,
                               _ body: () throws -> R) -> E? {
    do {
        _ = try body()
        XCTFail("expected \(E.self), nothing was thrown", file: file, line: line)
    } catch let e as E {
        return e
    } catch {
        XCTFail("expected \(E.self), got \(type(of: error)): \(error)", file: file, line: line)
    }
    return nil
}
