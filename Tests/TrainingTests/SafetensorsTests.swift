import Checkpoints
import Foundation
import Runtime
import XCTest

/// A safetensors file from its parts: 8-byte little-endian header length, header, data.
private func safetensorsBytes(header: String, data: [UInt8]) -> [UInt8] {
    let h = Array(header.utf8)
    return (0..<8).map { UInt8(truncatingIfNeeded: UInt64(h.count) >> (8 * $0)) } + h + data
}

/// Little-endian bytes of floats.
private func le(_ values: [Float]) -> [UInt8] {
    values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * $0)) } }
}

private struct InjectedFailure: Error {}

final class SafetensorsTests: XCTestCase {
    var dir: TemporaryDirectory!
    override func setUp() { dir = TemporaryDirectory("safetensors") }
    override func tearDown() { dir.remove() }

    func expectError(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> CheckpointError? {
        let path = dir.write("hostile-\(line).safetensors", bytes)
        guard let e = assertThrows(CheckpointError.self, file: file, line: line, { try Safetensors.read(path) }) else { return nil }
        XCTAssertEqual(e.path, path, file: file, line: line)
        XCTAssertTrue(e.description.contains(path), "message does not name the file: \(e)", file: file, line: line)
        return e
    }

    // MARK: Round trip and layout

    func testRoundTripKeepsEveryBit() throws {
        let specials: [Float] = [0, -0, .infinity, -.infinity, .nan, Float(bitPattern: 0x7FC0_1234), .leastNonzeroMagnitude,
                                 -.greatestFiniteMagnitude, 1, -1.5]
        let tensors: [String: Tensor] = [
            "features.conv0.weight": Tensor.randomNormal([4, 3, 3, 3], seed: 1, category: .parameters),
            "classifier.bias": Tensor(shape: [10], values: specials, category: .parameters),
            "scalar": Tensor(shape: [], values: [3.25]),
            "empty": Tensor(shape: [2, 0]),
            "bn.running_var": Tensor.filled([7], 1.0),
        ]
        let path = dir.file("model.safetensors")
        try Safetensors.write(tensors, metadata: ["format": "pt", "epoch": "3", "note": "quote \" and \\ and \n"], to: path)
        let read = try Safetensors.read(path)
        XCTAssertEqual(read.metadata, ["format": "pt", "epoch": "3", "note": "quote \" and \\ and \n"])
        XCTAssertEqual(Set(read.tensors.keys), Set(tensors.keys))
        for (name, t) in tensors {
            let r = read.tensors[name]!
            XCTAssertEqual(r.shape, t.shape, name)
            XCTAssertEqual(r.array.map(\.bitPattern), t.array.map(\.bitPattern), name)
            XCTAssertEqual(r.storage.category, .parameters)
        }
        XCTAssertEqual(try Safetensors.read(path, category: .scratch).tensors["scalar"]!.storage.category, .scratch)
        XCTAssertEqual(dir.contents(), ["model.safetensors"]) // no temporary file left behind
    }

    func testWrittenBytesFollowTheReferenceLayout() throws {
        let path = dir.file("small.safetensors")
        try Safetensors.write(["b": Tensor(shape: [2], values: [1, -2]), "a": Tensor(shape: [1, 1], values: [0.5])],
                              metadata: ["k": "v"], to: path)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let json = #"{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        let padded = json + String(repeating: " ", count: (8 - json.utf8.count % 8) % 8)
        XCTAssertEqual(bytes, safetensorsBytes(header: padded, data: le([0.5, 1, -2])))
        XCTAssertEqual((8 + padded.utf8.count) % 8, 0)
    }

    func testReadsAHandWrittenFile() throws {
        // Offsets out of name order, whitespace in the JSON, trailing space padding, metadata last,
        // a non-contiguous name order: everything the spec allows.
        let header = #"{ "w" : {"dtype":"F32", "shape":[2, 2], "data_offsets":[8, 24]}, "b":{"shape":[2],"dtype":"F32","data_offsets":[0,8]}, "__metadata__":{"format":"pt"} }   "#
        let path = dir.write("hand.safetensors", safetensorsBytes(header: header, data: le([0.25, -4, 1, 2, 3, 4])))
        let read = try Safetensors.read(path)
        XCTAssertEqual(read.tensors["b"]!.array, [0.25, -4])
        XCTAssertEqual(read.tensors["w"]!.shape, [2, 2])
        XCTAssertEqual(read.tensors["w"]![1, 0], 3)
        XCTAssertEqual(read.metadata, ["format": "pt"])
        let h = try Safetensors.readHeader(path)
        XCTAssertEqual(h.entries.map(\.name), ["b", "w"])
        XCTAssertEqual(h.dataStart, 8 + header.utf8.count)
    }

    func testNonContiguousTensorsAndProducersWriteTheirLogicalValues() throws {
        let base = Tensor(shape: [3, 4], values: (0..<12).map(Float.init))
        let view = base.narrow(1, 1..<3) // [[1, 2], [5, 6], [9, 10]], strided
        XCTAssertFalse(view.isContiguous)
        let path = dir.file("views.safetensors")
        try Safetensors.write([TensorSource(name: "view", tensor: view),
                               TensorSource(name: "made", shape: [3]) { buffer in for i in 0..<3 { buffer[i] = Float(i) * 10 } }],
                              to: path)
        let read = try Safetensors.read(path)
        XCTAssertEqual(read.tensors["view"]!.array, [1, 2, 5, 6, 9, 10])
        XCTAssertEqual(read.tensors["made"]!.array, [0, 10, 20])
    }

    // MARK: Atomic writing

    func testFailedWriteLeavesThePreviousFileIntact() throws {
        let path = dir.file("checkpoint.safetensors")
        try Safetensors.write(["w": Tensor(shape: [2], values: [1, 2])], metadata: ["epoch": "1"], to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        // The second tensor's source fails after the header and the first tensor were written.
        let big = Tensor.filled([100_000], 7)
        let e = assertThrows(CheckpointError.self) {
            try Safetensors.write([TensorSource(name: "a", tensor: big),
                                   TensorSource(name: "b", shape: [4]) { _ in throw InjectedFailure() }],
                                  metadata: ["epoch": "2"], to: path)
        }
        guard case .writeFailed(let p, _)? = e else { return XCTFail("expected writeFailed, got \(String(describing: e))") }
        XCTAssertEqual(p, path)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        XCTAssertEqual(try Safetensors.read(path).metadata, ["epoch": "1"])
        XCTAssertEqual(dir.contents(), ["checkpoint.safetensors"])
        // A directory that does not exist: nothing is created.
        let missing = dir.file("no-such-dir/c.safetensors")
        guard case .writeFailed? = assertThrows(CheckpointError.self, { try Safetensors.write([:], to: missing) }) else {
            return XCTFail("expected writeFailed")
        }
        // Names that cannot be written.
        guard case .invalidName? = assertThrows(CheckpointError.self, { try Safetensors.write(["__metadata__": big], to: path) }) else {
            return XCTFail("expected invalidName")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
    }

    // MARK: Strict loading

    func testStrictLoadNamesMissingExtraAndMisShapedTensors() throws {
        let path = dir.file("model.safetensors")
        try Safetensors.write(["conv.weight": Tensor.zeros([4, 3, 3, 3]), "fc.weight": Tensor.zeros([10, 4]),
                               "extra.bias": Tensor.zeros([2])], to: path)
        let e = assertThrows(CheckpointError.self) {
            try Safetensors.load(path, expecting: ["conv.weight": [4, 3, 3, 3], "fc.weight": [10, 8], "fc.bias": [10]])
        }
        XCTAssertEqual(e, .stateMismatch(path: path, missing: ["fc.bias"], unexpected: ["extra.bias"],
                                         mismatched: [.init(name: "fc.weight", expected: [10, 8], found: [10, 4])]))
        for name in ["fc.bias", "extra.bias", "fc.weight", "[10, 8]"] { XCTAssertTrue(e!.description.contains(name), name) }

        let ok = try Safetensors.load(path, expecting: ["conv.weight": [4, 3, 3, 3], "fc.weight": [10, 4], "extra.bias": [2]])
        XCTAssertEqual(ok.tensors.count, 3)
    }

    func testLoadIntoExistingTensors() throws {
        let path = dir.file("p.safetensors")
        try Safetensors.write(["w": Tensor(shape: [2, 2], values: [1, 2, 3, 4])], metadata: ["step": "9"], to: path)
        let target = Tensor.zeros([2, 2], category: .parameters)
        let storage = target.storage
        let metadata = try Safetensors.load(path, into: ["w": target])
        XCTAssertEqual(metadata["step"], "9")
        XCTAssertEqual(target.array, [1, 2, 3, 4])
        XCTAssertTrue(target.storage === storage)
        // Into a strided view.
        let wide = Tensor.zeros([2, 3])
        try Safetensors.load(path, into: ["w": wide.narrow(1, 1..<3)])
        XCTAssertEqual(wide.array, [0, 1, 2, 0, 3, 4])
        guard case .stateMismatch? = assertThrows(CheckpointError.self, { try Safetensors.load(path, into: ["w": Tensor.zeros([4])]) }) else {
            return XCTFail("expected stateMismatch")
        }
    }

    // MARK: Hostile files

    func testHostileHeaders() {
        let t = #""t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
        let data = le([1, 2])
        XCTAssertEqual(expectError([1, 2, 3]).map { if case .fileTooShort = $0 { return true }; return false }, true)
        // Header length larger than the file, and absurd.
        var long = safetensorsBytes(header: "{\(t)}", data: data)
        long[0] = 0xFF
        guard case .headerTooLarge? = expectError(long) else { return XCTFail("expected headerTooLarge") }
        guard case .headerTooLarge? = expectError([UInt8](repeating: 0xFF, count: 8) + Array("{}".utf8)) else {
            return XCTFail("expected headerTooLarge")
        }
        for bad in ["{\(t)", "[\(t)]", "\"x\"", "{\(t)} x", "{\(t),\(t)}", "{\"a\":" + String(repeating: "[", count: 1000), "", "{\"t\":nul}"] {
            guard case .invalidHeader? = expectError(safetensorsBytes(header: bad, data: data)) else {
                return XCTFail("expected invalidHeader for \(bad.prefix(40))")
            }
        }
        guard case .invalidMetadata? = expectError(safetensorsBytes(header: #"{"__metadata__":{"a":1},\#(t)}"#, data: data)) else {
            return XCTFail("expected invalidMetadata")
        }
    }

    func testHostileFields() {
        func entry(_ fields: String) -> [UInt8] { safetensorsBytes(header: #"{"t":{\#(fields)}}"#, data: le([1, 2])) }
        for (fields, missing) in [(#""shape":[2],"data_offsets":[0,8]"#, "dtype"),
                                  (#""dtype":"F32","data_offsets":[0,8]"#, "shape"),
                                  (#""dtype":"F32","shape":[2]"#, "data_offsets")] {
            XCTAssertEqual(expectError(entry(fields)).map(\.description)?.contains("'\(missing)'"), true, missing)
            guard case .missingField(_, "t", missing)? = expectError(entry(fields)) else { return XCTFail("expected missing \(missing)") }
        }
        let f16 = expectError(entry(#""dtype":"F16","shape":[4],"data_offsets":[0,8]"#))
        XCTAssertEqual(f16, .unsupportedDtype(path: f16?.path ?? "", tensor: "t", dtype: "F16"))
        XCTAssertTrue(f16?.description.contains("F16") ?? false)
        guard case .unsupportedDtype(_, "t", let weird)? = expectError(entry(#""dtype":"Q7","shape":[2],"data_offsets":[0,8]"#)),
              weird.contains("Q7") else { return XCTFail("expected unsupportedDtype Q7") }
        for (fields, field) in [(#""dtype":"F32","shape":[2.0],"data_offsets":[0,8]"#, "shape"),
                                (#""dtype":"F32","shape":[true],"data_offsets":[0,8]"#, "shape"),
                                (#""dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]"#, "shape"),
                                (#""dtype":"F32","shape":2,"data_offsets":[0,8]"#, "shape"),
                                (#""dtype":1,"shape":[2],"data_offsets":[0,8]"#, "dtype"),
                                (#""dtype":"F32","shape":[2],"data_offsets":[0,8,12]"#, "data_offsets"),
                                (#""dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1"#, "extra")] {
            guard case .invalidField(_, "t", field, _)? = expectError(entry(fields)) else { return XCTFail("expected invalid \(field): \(fields)") }
        }
        guard case .invalidShape(_, "t", [2, -1], _)? = expectError(entry(#""dtype":"F32","shape":[2,-1],"data_offsets":[0,8]"#)) else {
            return XCTFail("expected invalidShape (negative)")
        }
        guard case .invalidShape(_, "t", _, _)? = expectError(entry(#""dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]"#)) else {
            return XCTFail("expected invalidShape (absurd)")
        }
    }

    func testHostileOffsets() {
        let data = le([1, 2, 3, 4])
        func file(_ entries: String) -> [UInt8] { safetensorsBytes(header: "{\(entries)}", data: data) }
        func t(_ name: String, _ shape: Int, _ begin: Int, _ end: Int) -> String {
            #""\#(name)":{"dtype":"F32","shape":[\#(shape)],"data_offsets":[\#(begin),\#(end)]}"#
        }
        guard case .offsetsOutOfRange(_, "a", 8, 24, 16)? = expectError(file(t("a", 4, 8, 24))) else { return XCTFail("beyond the end") }
        guard case .offsetsOutOfRange(_, "a", 8, 0, 16)? = expectError(file(t("a", 2, 8, 0))) else { return XCTFail("begin > end") }
        guard case .offsetsOutOfRange(_, "a", -4, 4, 16)? = expectError(file(t("a", 2, -4, 4))) else { return XCTFail("negative") }
        guard case .sizeMismatch(_, "a", [3], 12, 16)? = expectError(file(t("a", 3, 0, 16))) else { return XCTFail("size mismatch") }
        guard case .overlappingTensors(_, let x, let y)? = expectError(file(t("a", 3, 0, 12) + "," + t("b", 2, 8, 16))),
              Set([x, y]) == ["a", "b"] else { return XCTFail("overlap") }
        guard case .unusedBytes(_, "b", 8, 4)? = expectError(file(t("a", 2, 0, 8) + "," + t("b", 1, 12, 16))) else { return XCTFail("gap") }
        guard case .unusedBytes(_, nil, 8, 8)? = expectError(file(t("a", 2, 0, 8))) else { return XCTFail("unused tail") }
        guard case .unusedBytes(_, "a", 0, 4)? = expectError(file(t("a", 3, 4, 16))) else { return XCTFail("gap at start") }
    }

    func testTruncatedDataIsAnErrorNotACrash() throws {
        let path = dir.file("cut.safetensors")
        try Safetensors.write(["w": Tensor.filled([64], 1)], to: path)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes.removeLast(10)
        guard case .offsetsOutOfRange(_, "w", 0, 256, 246)? = expectError(bytes) else { return XCTFail("expected offsetsOutOfRange") }
        guard case .missingFile? = assertThrows(CheckpointError.self, { try Safetensors.read(dir.file("absent")) }) else {
            return XCTFail("expected missingFile")
        }
    }
}

/// A torchvision `state_dict` saved with safetensors has an int64 `num_batches_tracked` scalar per
/// batch norm: it is checked, then skipped; any other int64 tensor is still refused.
final class SafetensorsBatchCounterTests: XCTestCase {
    func testTorchvisionBatchCountersAreSkipped() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-counter-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // "bn.weight": F32 [2] at [0, 8); "bn.num_batches_tracked": I64 [] at [8, 16) holding 7.
        let header = #"{"bn.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[8,16]},"bn.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian, Array.init) + Array(header.utf8)
        bytes += withUnsafeBytes(of: Float(1.5).bitPattern.littleEndian, Array.init)
        bytes += withUnsafeBytes(of: Float(-2).bitPattern.littleEndian, Array.init)
        bytes += withUnsafeBytes(of: Int64(7).littleEndian, Array.init)
        let path = dir.appendingPathComponent("tv.safetensors").path
        FileManager.default.createFile(atPath: path, contents: Data(bytes))

        let target = Tensor.zeros([2], category: .parameters)
        _ = try Safetensors.load(path, into: ["bn.weight": target])
        XCTAssertEqual(target.array, [1.5, -2])
        XCTAssertEqual(try Safetensors.readHeader(path).skipped, ["bn.num_batches_tracked"])

        // An int64 tensor under any other name, or a counter that is not a scalar, is refused.
        for (name, shape, end) in [("bn.steps", "[]", 16), ("bn.num_batches_tracked", "[2]", 24)] {
            let h = #"{"\#(name)":{"dtype":"I64","shape":\#(shape),"data_offsets":[8,\#(end)]},"bn.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
            var b = withUnsafeBytes(of: UInt64(h.utf8.count).littleEndian, Array.init) + Array(h.utf8)
            b += [UInt8](repeating: 0, count: end)
            let bad = dir.appendingPathComponent("bad-\(end).safetensors").path
            FileManager.default.createFile(atPath: bad, contents: Data(b))
            XCTAssertThrowsError(try Safetensors.read(bad), "\(name) \(shape)") { error in
                XCTAssertTrue("\(error)".contains(name), "the error names the tensor: \(error)")
            }
        }
    }
}
