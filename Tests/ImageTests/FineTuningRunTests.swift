import Checkpoints
import Datasets
import DenseNetModels
import Foundation
import NeuralLayers
import Runtime
import Training
import XCTest

/// `densenet train --init-from FILE --freeze features` through `TrainingRun` and through the
/// `densenet` executable: a 1000-class torchvision-named state_dict (with PyTorch's int64
/// `num_batches_tracked` counters) into a 5-class model of an image folder.
final class FineTuningRunTests: XCTestCase {
    var dir: TemporaryFolder!
    override func setUp() { dir = TemporaryFolder("fine-tuning-run") }
    override func tearDown() { dir.remove() }

    /// Five classes of RGB PNGs (train: 4 each, val: 2 each) whose colour says the class.
    func writeFolder() -> String {
        let root = dir.file("photos")
        for (split, count) in [("train", 4), ("val", 2)] {
            for k in 0..<5 {
                for i in 0..<count {
                    let side = 20 + 3 * i
                    var pixels = [UInt8](repeating: 0, count: side * side * 3)
                    for p in 0..<(side * side) {
                        pixels[3 * p + k % 3] = UInt8(80 + 40 * k)
                        pixels[3 * p + (k + 1) % 3] = UInt8((p * 7 + i * 13) % 64)
                    }
                    dir.write("photos/\(split)/class\(k)/\(i).png",
                              try! PNGEncoder.encode(DecodedImage(width: side, height: side, channels: 3, pixels: pixels)))
                }
            }
        }
        return root
    }

    /// `model`'s state as torchvision saves it: F32 tensors plus, beside every batch norm, an
    /// I64 `num_batches_tracked` scalar (written by hand: our writer writes F32 only).
    func writeTorchvisionStateDict(_ model: Module, to path: String) throws {
        var entries = model.stateDict().map { (name: $0.name, dtype: "F32", shape: $0.tensor.shape, bytes: $0.tensor.array.withUnsafeBytes { [UInt8]($0) }) }
        for (name, _) in model.stateDict() where name.hasSuffix(".running_mean") {
            let counter = String(name.dropLast(".running_mean".count)) + ".num_batches_tracked"
            entries.append((counter, "I64", [], withUnsafeBytes(of: Int64(7).littleEndian) { [UInt8]($0) }))
        }
        var header = [String](), data = [UInt8]()
        for e in entries {
            let shape = e.shape.map(String.init).joined(separator: ",")
            header.append("\"\(e.name)\":{\"dtype\":\"\(e.dtype)\",\"shape\":[\(shape)],\"data_offsets\":[\(data.count),\(data.count + e.bytes.count)]}")
            data += e.bytes
        }
        var json = Array("{\(header.joined(separator: ","))}".utf8)
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        let bytes = withUnsafeBytes(of: UInt64(json.count).littleEndian) { [UInt8]($0) } + json + data
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        XCTAssertGreaterThan(try Safetensors.readHeader(path).skipped.count, 4, "the file has the int64 counters")
    }

    /// A 1000-class model with trained (not initial) weights and running statistics, saved.
    func imageNetLikeFile(_ configuration: DenseNetConfiguration) throws -> (path: String, tensors: [String: [Float]]) {
        Initialization.seed = 11
        let model = try DenseNet(configuration, policy: .shared)
        let trainer = Trainer(model: model, optimizer: SGD(parameters: model.parameters, learningRate: 0.05, momentum: 0.9),
                              schedule: LearningRateSchedule(kind: .constant, baseRate: 0.05, epochs: 1, stepsPerEpoch: 1))
        let s = configuration.inputShape
        _ = trainer.step(images: Tensor.randomNormal([s.channels, 4, s.height, s.width], seed: 3), labels: [0, 1, 2, 999])
        let path = dir.file("imagenet.safetensors")
        try writeTorchvisionStateDict(model, to: path)
        return (path, Dictionary(uniqueKeysWithValues: model.stateDict().map { ($0.name, $0.tensor.array) }))
    }

    func checkpointTensors(_ run: String) throws -> (model: [String: [Float]], state: Set<String>) {
        let (model, state) = try TrainingCheckpoint.locate(run)
        return (try Safetensors.read(model).tensors.mapValues(\.array), Set(try Safetensors.readHeader(state).entries.map(\.name)))
    }

    func testInitFromReplacesTheClassifierFreezesTheFeaturesAndResumesFrozen() throws {
        let (source, original) = try imageNetLikeFile(smallDenseNet(classes: 1000))
        let spec = try DatasetSpec.parse("folder:\(writeFolder())")
        let configuration = TrainingConfiguration(
            model: .denseNet(smallDenseNet(classes: 5)), strategy: .shared, data: spec, epochs: 3, batchSize: 10,
            optimizer: OptimizerSettings(kind: .sgd, learningRate: 0.2, momentum: 0.9, weightDecay: 0), schedule: .constant,
            augment: false, initFrom: source, freeze: .features)
        let out = dir.file("run")
        let messages = Messages()
        let run = try TrainingRun(.fresh(configuration), outputDirectory: out)
        run.observer = messages
        run.stopAfterEpoch = 1
        let first = try run.run()
        XCTAssertTrue(messages.lines.contains { $0.contains("initialised from \(source)") && $0.contains(
            "classifier replaced: the file's has 1000 classes, the model 5") }, "\(messages.lines)")
        XCTAssertTrue(messages.lines.contains { $0.contains("frozen: features") && $0.contains("training 85 of") },
                      "\(messages.lines)")

        // The features (weights and running statistics) are the file's, bit for bit, after training.
        let (afterOne, stateNames) = try checkpointTensors(out)
        let features = original.filter { $0.key.hasPrefix("features.") }
        XCTAssertEqual(features.count, afterOne.count - 2)
        for (name, values) in features { XCTAssertEqual(afterOne[name], values, name) }
        XCTAssertEqual(afterOne["classifier.weight"]?.count, 5 * 16)
        XCTAssertEqual(stateNames, ["optimizer.classifier.bias.momentum_buffer", "optimizer.classifier.weight.momentum_buffer"])

        // --resume keeps the freeze (and records the source), loads the classifier's momentum, trains on.
        let resumed = try TrainingRun(.resume(path: out, epochs: nil, data: nil))
        XCTAssertEqual(resumed.configuration.freeze, .features)
        XCTAssertEqual(resumed.configuration.initFrom, source)
        resumed.observer = messages
        let before = messages.lines.count
        let last = try resumed.run()
        XCTAssertFalse(messages.lines.dropFirst(before).contains { $0.contains("initialised from") }, "the checkpoint, not the file")
        let (afterThree, _) = try checkpointTensors(out)
        for (name, values) in features { XCTAssertEqual(afterThree[name], values, name) }
        XCTAssertNotEqual(afterThree["classifier.weight"], afterOne["classifier.weight"], "the classifier trains")
        // Colour separates the classes: the classifier on fixed features learns them.
        let firstLoss = try XCTUnwrap(first.records.first { $0.phase == .trainEpoch }?.loss)
        let lastLoss = try XCTUnwrap(last.records.last { $0.phase == .trainEpoch }?.loss)
        XCTAssertLessThan(lastLoss, firstLoss, "training loss falls: \(firstLoss) → \(lastLoss)")
    }

    func testInitFromAnotherArchitectureIsAnErrorNamingTheTensors() throws {
        let (source, _) = try imageNetLikeFile(smallDenseNet(classes: 1000, growth: 6))
        let configuration = TrainingConfiguration(
            model: .denseNet(smallDenseNet(classes: 5)), data: try DatasetSpec.parse("folder:\(writeFolder())"),
            batchSize: 10, augment: false, initFrom: source)
        let run = try TrainingRun(.fresh(configuration), outputDirectory: dir.file("run"))
        // No observer: the weights are loaded all the same.
        XCTAssertThrowsError(try run.run()) { error in
            XCTAssertTrue("\(error)".contains("features.denseblock1.denselayer1.conv2.weight"), "\(error)")
        }
        // A missing file fails before the data are read.
        var missing = configuration
        missing.initFrom = dir.file("nowhere.safetensors")
        XCTAssertThrowsError(try TrainingRun(.fresh(missing), outputDirectory: dir.file("run2"))) { error in
            XCTAssertTrue("\(error)".contains("nowhere.safetensors"), "\(error)")
        }
        // Fine-tuning is for DenseNets.
        var resnet = configuration
        resnet.model = try ModelZoo.configuration(named: "resnet18", classes: 5, input: "3x32x32")
        XCTAssertThrowsError(try resnet.validate()) { XCTAssertTrue("\($0)".contains("--init-from"), "\($0)") }
    }

    func testConfigurationWithoutFineTuningFieldsDecodesAndEncodesAsBefore() throws {
        let plain = TrainingConfiguration(model: .denseNet(smallDenseNet(classes: 5)), data: .fashionMNIST(directory: "x"))
        let json = String(decoding: try JSONEncoder().encode(plain), as: UTF8.self)
        XCTAssertFalse(json.contains("freeze") || json.contains("initFrom"), json)
        let tuned = TrainingConfiguration(model: .denseNet(smallDenseNet(classes: 5)), data: .fashionMNIST(directory: "x"),
                                          initFrom: "a.safetensors", freeze: .features)
        let back = try JSONDecoder().decode(TrainingConfiguration.self, from: JSONEncoder().encode(tuned))
        XCTAssertEqual(back, tuned)
        XCTAssertEqual(try JSONDecoder().decode(TrainingConfiguration.self, from: Data(json.utf8)).frozenPart, .none)
    }

    /// The command line: `densenet train --init-from … --freeze features`, then `--resume`,
    /// which refuses another --freeze or an --init-from.
    func testCommandLine() throws {
        let densenet = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("densenet")
        guard FileManager.default.isExecutableFile(atPath: densenet.path) else {
            throw XCTSkip("\(densenet.path) is missing: build it with `swift build --product densenet`")
        }
        guard case .denseNet(let bc) = try ModelZoo.configuration(named: "densenet-bc-40-12", classes: 1000, input: "3x32x32") else {
            return XCTFail("densenet-bc-40-12 is a DenseNet")
        }
        let (source, _) = try imageNetLikeFile(bc)
        let folder = writeFolder(), out = dir.file("cli-run")
        let common = ["--threads", "1", "--batch", "10", "--no-augment"]
        let fresh = try run(densenet, ["train", "--model", "densenet-bc-40-12", "--data", "folder:\(folder)", "--epochs", "2",
                                       "--stop-after-epoch", "1", "--init-from", source, "--freeze", "features", "--out", out] + common)
        XCTAssertEqual(fresh.status, 0, fresh.output)
        XCTAssertTrue(fresh.output.contains("classifier replaced: the file's has 1000 classes, the model 5"), fresh.output)
        XCTAssertTrue(fresh.output.contains("features frozen"), fresh.output)
        let conflict = try run(densenet, ["train", "--resume", out, "--freeze", "none"] + common)
        XCTAssertNotEqual(conflict.status, 0)
        XCTAssertTrue(conflict.output.contains("--freeze"), conflict.output)
        let again = try run(densenet, ["train", "--resume", out, "--init-from", source] + common)
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.output.contains("--init-from starts a new run"), again.output)
        let resumed = try run(densenet, ["train", "--resume", out, "--freeze", "features"] + common)
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("done: 2/2 epoch(s)"), resumed.output)
        let badFreeze = try run(densenet, ["train", "--model", "densenet-bc-40-12", "--data", "folder:\(folder)",
                                           "--freeze", "everything", "--out", dir.file("x")] + common)
        XCTAssertNotEqual(badFreeze.status, 0)
        XCTAssertTrue(badFreeze.output.contains("'everything' is not one of none, features"), badFreeze.output)
        let help = try run(densenet, ["train", "--help"])
        XCTAssertTrue(help.output.contains("folder:DIR") && help.output.contains("val-fraction=F") && help.output.contains("--init-from"),
                      help.output)
    }

    /// Under `mpirun -np 2` the frozen features stay the file's bit for bit too (every rank
    /// keeps their batch norm in evaluation mode and zeroes their unused gradients), and the
    /// classifier trains.
    func testDataParallelFrozenRun() throws {
        let densenet = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("densenet")
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        guard FileManager.default.isExecutableFile(atPath: densenet.path),
              let mpirun = path.split(separator: ":").map({ "\($0)/mpirun" }).first(where: FileManager.default.isExecutableFile) else {
            throw XCTSkip("needs the densenet executable and mpirun (Scripts/setup.sh installs openmpi-bin)")
        }
        guard case .denseNet(let bc) = try ModelZoo.configuration(named: "densenet-bc-40-12", classes: 1000, input: "3x32x32") else {
            return XCTFail("densenet-bc-40-12 is a DenseNet")
        }
        let (source, original) = try imageNetLikeFile(bc)
        let out = dir.file("mpi-run")
        let job = try run(URL(fileURLWithPath: mpirun), [
            "--oversubscribe", "-np", "2", densenet.path, "train", "--model", "densenet-bc-40-12", "--data", "folder:\(writeFolder())",
            "--epochs", "2", "--batch", "10", "--no-augment", "--threads", "1", "--lr", "0.2", "--init-from", source,
            "--freeze", "features", "--out", out], environment: ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                                                                 "OMPI_MCA_btl_vader_single_copy_mechanism": "none"], timeout: 120)
        XCTAssertEqual(job.status, 0, job.output)
        XCTAssertTrue(job.output.contains("data-parallel over 2 ranks") && job.output.contains("classifier replaced"), job.output)
        let (trained, _) = try checkpointTensors(out)
        for (name, values) in original where name.hasPrefix("features.") { XCTAssertEqual(trained[name], values, name) }
        XCTAssertEqual(trained["classifier.weight"]?.count, 5 * 132)
    }

    /// Runs `executable` to its end (`timeout` seconds at most), standard output and error together.
    func run(_ executable: URL, _ arguments: [String], environment: [String: String] = [:],
             timeout: Double = 60) throws -> (status: Int32, output: String) {
        let log = dir.file("log-\(UUID().uuidString).txt")
        XCTAssertTrue(FileManager.default.createFile(atPath: log, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, given in given }
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }
}

/// Collects a run's messages.
final class Messages: TrainingObserver {
    var lines: [String] = []
    func message(_ text: String) { lines.append(text) }
    func step(_ progress: StepProgress) {}
    func evaluating(batch: Int, of batches: Int) {}
    func epochFinished(_ report: EpochReport) {}
}
