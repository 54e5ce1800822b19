import Autograd
import Checkpoints
import DenseNetModels
import Foundation
import Runtime
import Training
import XCTest

/// Issue 11, classes 2, 3, 4, 9 and 10 and bench-memory's `--batch 1`, through the real
/// `densenet` and `bench-memory` executables: every case must exit non-zero with a message that
/// names the option (never a signal, never a hang), in seconds, before anything large is built.
final class HostileCommandLineTests: XCTestCase {
    var dir: TemporaryDirectory!
    var cifar: String { dir.file("cifar") }
    override func setUp() {
        dir = TemporaryDirectory("hostile-cli")
        writeMiniatureCIFAR10(in: cifar)
    }
    override func tearDown() { dir.remove() }

    /// `densenet train` on the miniature CIFAR-10, with an output folder in the temporary one.
    func train(_ extra: [String]) -> [String] {
        ["train", "--data", "cifar10:\(cifar)", "--model", "densenet-bc-10-2", "--epochs", "1", "--limit", "8"]
            + (extra.contains("--out") ? [] : ["--out", dir.file("run")]) + extra
    }

    // MARK: Class 2: every user number through checked arithmetic, naming the option

    func testHugeNumbersOnTheCommandLinesAreClearErrors() {
        let huge = "9223372036854775807"
        refusesCommand("densenet", train(["--batch", huge]), mentioning: ["--batch \(huge)", "overflows"])
        refusesCommand("densenet", ["summary", "--model", "d2l", "--batch", huge], mentioning: ["--batch \(huge)", "overflows"])
        refusesCommand("densenet", ["summary", "--model", "d2l", "--batch", "1000000000000"],
                       mentioning: ["--batch 1000000000000", "physical memory"])
        refusesCommand("densenet", train(["--max-memory", "1e30"]), mentioning: ["--max-memory 1e30", "not a whole number"])
        refusesCommand("densenet", train(["--max-memory", "1e20T"]), mentioning: ["--max-memory 1e20T"])
        refusesCommand("densenet", ["summary", "--model", "densenet-bc-10-5000000000000000000"],
                       mentioning: ["growth rate", "5000000000000000000", "too large"])
        refusesCommand("densenet", ["summary", "--model", "d2l", "--input", "3x3037000500x3037000500"],
                       mentioning: ["--input 3x3037000500x3037000500", "overflows"])
        refusesCommand("densenet", ["summary", "--model", "d2l", "--classes", "4611686018427387904"],
                       mentioning: ["--classes 4611686018427387904", "overflows"])
        refusesCommand("densenet", train(["--classes", "4611686018427387904"]), mentioning: ["--classes 4611686018427387904"])
        refusesCommand("densenet", ["summary", "--model", "densenet-bc-9223372036854775804-12"],
                       mentioning: ["--model densenet-bc-9223372036854775804-12"])
        refusesCommand("bench-memory", ["--batch", "64,\(huge)", "--out", dir.file("b")], mentioning: ["--batch \(huge)", "overflows"])
        refusesCommand("bench-memory", ["--batch", "99999999999999999999", "--out", dir.file("b")],
                       mentioning: ["--batch", "99999999999999999999"])
        refusesCommand("bench-memory", ["--depths", "40,9223372036854775804", "--out", dir.file("b")],
                       mentioning: ["--depths 9223372036854775804 with --growth 12"])
        refusesCommand("bench-memory", ["--growth", "5000000000000000000", "--depths", "10", "--out", dir.file("b")],
                       mentioning: ["--growth 5000000000000000000", "too large"])
        refusesCommand("bench-memory", ["--model", "d2l", "--classes", "4611686018427387904", "--out", dir.file("b")],
                       mentioning: ["--classes 4611686018427387904", "overflows"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("b")), "refused before the output folder was made")
    }

    /// The other numbers of train and evaluate: threads, a learning rate that makes the weights
    /// diverge, an epoch to stop after, and --input/--classes that contradict a checkpoint.
    func testOtherNumbersOfTrainAndEvaluateAreClearErrors() throws {
        refusesCommand("densenet", train(["--threads", "9223372036854775807"]), mentioning: ["--threads", "1...1024"])
        refusesCommand("bench-memory", ["--threads", "0", "--out", dir.file("b")], mentioning: ["--threads", "1...1024"])
        refusesCommand("bench-memory", ["--steps", "9223372036854775807", "--out", dir.file("b")], mentioning: ["--steps", "1...100000"])
        refusesCommand("bench-memory", ["--warmup", "9223372036854775807", "--out", dir.file("b")], mentioning: ["--warmup", "0...100000"])
        refusesCommand("densenet", ["summary", "--model", "d2l", "--threads", "100000000"], mentioning: ["--threads", "100000000"])
        refusesCommand("densenet", train(["--stop-after-epoch=-3"]), mentioning: ["--stop-after-epoch", "at least 1", "-3"])
        let diverged = refusesCommand("densenet", train(["--lr", "1e38", "--out", dir.file("lr")]),
                                      mentioning: ["--lr", "test loss", "diverged", "lower --lr"])
        XCTAssertFalse(diverged.contains("EncodingError"), diverged)
        let run = dir.file("ok")
        let trained = try HostileCommand.run("densenet", train(["--out", run]), timeout: 60)
        XCTAssertEqual(trained.status, 0, trained.output)
        let evaluate = ["evaluate", "--checkpoint", run, "--data", "cifar10:\(cifar)"]
        refusesCommand("densenet", evaluate + ["--input", "3x100000x100000"], mentioning: ["--input 3x100000x100000", "checkpoint's 3x32x32"])
        refusesCommand("densenet", evaluate + ["--classes", "4611686018427387904"], mentioning: ["--classes", "checkpoint's 10"])
        let agreeing = try HostileCommand.run("densenet", evaluate + ["--input", "3x32x32", "--classes", "10", "--batch", "9223372036854775807"])
        XCTAssertEqual(agreeing.status, 0, agreeing.output)
    }

    /// `--epochs 4000000000000000000` trains (one epoch is stopped after) without trapping: the
    /// schedule's step count saturates (HostileArithmeticTests has the schedule itself).
    func testAbsurdEpochCountDoesNotTrap() throws {
        let result = try HostileCommand.run("densenet", train(["--epochs", "4000000000000000000", "--stop-after-epoch", "1"]),
                                            timeout: 60)
        XCTAssertFalse(result.signalled, result.output)
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("stopped: 1/4000000000000000000 epoch(s)"), result.output)
    }

    // MARK: Class 3: absurd models refused before anything large is built

    func testAbsurdModelsAreRefusedQuicklyWithTheFigure() {
        refusesCommand("densenet", ["summary", "--model", "densenet-bc-100000-12"],
                       mentioning: ["--model densenet-bc-100000-12", "parameters", "physical memory"], within: 3)
        // Refused by its parameters (at least 50 GiB) here; on a machine with more memory by the
        // step's lower bound (parameters, gradients, momentum: 150 GiB): either way, before building.
        refusesCommand("densenet", ["summary", "--model", "densenet-bc-16000-12"],
                       mentioning: ["densenet-bc-16000-12", "physical memory"], within: 3)
        refusesCommand("bench-memory", ["--depths", "100000", "--max-memory", "1", "--out", dir.file("b")],
                       mentioning: ["--depths 100000 with --growth 12", "physical memory"], within: 3)
        refusesCommand("densenet", train(["--input", "3x100000x100000"]),
                       mentioning: ["3x100000x100000", "physical memory"], within: 5)
        // One example fits, one step of 128 does not: the step's lower bound says so, with the figure.
        refusesCommand("densenet", train(["--input", "3x20000x20000", "--batch", "128"]),
                       mentioning: ["--batch 128", "one training step needs at least", "GiB", "physical memory"], within: 5)
        refusesCommand("densenet", ["summary", "--model", "densenet121", "--batch", "100000"],
                       mentioning: ["--batch 100000", "one training step"], within: 3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("run")))
    }

    /// A model 16,000 layers deep but narrow (k = 1, 3x4x4, 169 M parameters that the dry run
    /// never allocates) is planned: the autograd graph of its naive step is released without
    /// recursion (`Node.deinit`); before, this command died of a stack overflow (SIGSEGV).
    func testADeepNarrowModelIsPlannedWithoutOverflowingTheStack() throws {
        let result = try HostileCommand.run("densenet", ["summary", "--model", "densenet-bc-16000-1", "--input", "3x4x4",
                                                         "--batch", "2", "--strategies", "naive", "--threads", "1"], timeout: 90)
        XCTAssertFalse(result.signalled, "signal \(result.status): \(result.output.suffix(2000))")
        XCTAssertEqual(result.status, 0, String(result.output.suffix(2000)))
        XCTAssertTrue(result.output.contains("Predicted training memory per step"), String(result.output.suffix(2000)))
    }

    // MARK: Class 4: one input validation for every entry point

    func testEvaluateInputTensorsTooSmallAndLimitsAreRefusedAsTrainRefusesThem() throws {
        let model = try ModelFactory.build(.denseNet(.d2l), policy: .shared)
        let checkpoint = dir.file("d2l.safetensors")
        try TrainingCheckpoint.saveModel(model, to: checkpoint)
        func tensor(_ shape: [Int]) throws -> String {
            let path = dir.file("input-\(shape.map(String.init).joined(separator: "x")).safetensors")
            try Safetensors.write(["input": Tensor.filled(shape, 0.5)], to: path)
            return path
        }
        for shape in [[1, 1, 1, 1], [2, 1, 3, 3], [1, 1, 28, 28]] {
            refusesCommand("densenet", ["evaluate", "--checkpoint", checkpoint, "--input-tensor", try tensor(shape)],
                           mentioning: ["too small", "at least 29x29"])
        }
        refusesCommand("densenet", ["evaluate", "--checkpoint", checkpoint, "--input-tensor", try tensor([1, 1, 0, 0])],
                       mentioning: ["1x0x0", "at least 1"])
        refusesCommand("densenet", ["evaluate", "--checkpoint", checkpoint, "--input-tensor", try tensor([1, 3, 32, 32])],
                       mentioning: ["(N, 1, H, W)"])
        // The same too-small input through train: the same error.
        refusesCommand("densenet", train(["--model", "d2l", "--input", "3x3x3"]), mentioning: ["too small", "at least 29x29"])
        refusesCommand("densenet", ["evaluate", "--checkpoint", checkpoint, "--limit=-5"], mentioning: ["--limit", "at least 1", "-5"])
        refusesCommand("densenet", ["evaluate", "--checkpoint", checkpoint, "--limit", "0"], mentioning: ["--limit", "at least 1"])
        refusesCommand("densenet", ["evaluate", "--checkpoint", checkpoint, "--test-limit", "0"], mentioning: ["--test-limit", "at least 1"])
        // What must still work: the smallest input, and train mode on two images.
        let ok = try HostileCommand.run("densenet", ["evaluate", "--checkpoint", checkpoint, "--input-tensor", try tensor([2, 1, 29, 29]),
                                                     "--mode", "train", "--threads", "1"])
        XCTAssertEqual(ok.status, 0, ok.output)
        XCTAssertEqual(ok.output.split(separator: "\n").filter { $0.split(separator: " ").count == 10 }.count, 2, ok.output)
    }

    // MARK: bench-memory --batch 1, and children that die

    func testBenchMemoryRefusesABatchItsBatchNormsCannotTrainBeforeAnyChild() {
        refusesCommand("bench-memory", ["--depths", "10", "--input", "3x4x4", "--batch", "1", "--out", dir.file("b")],
                       mentioning: ["--batch", "value per channel", "use --batch 2 or more"])
        refusesCommand("bench-memory", ["--model", "resnet18", "--input", "1x32x32", "--batch", "4,1", "--out", dir.file("b")],
                       mentioning: ["--batch 1", "layer4.0.bn1", "value per channel"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("b")), "no child, no report before the refusal")
    }

    /// A child killed while measuring (its address space limited below what the step needs):
    /// the row is marked failed with the reason, every report is written, and bench-memory exits 1.
    func testAChildThatDiesMakesBenchMemoryExitNonZeroWithTheReason() throws {
        let bench = try HostileCommand.executable("bench-memory").path
        let out = dir.file("dies")
        let shell = try runShell("ulimit -v 1500000; exec '\(bench)' --depths 40 --batch 256 --strategies naive"
                                 + " --steps 1 --warmup 0 --threads 1 --out '\(out)'")
        XCTAssertFalse(shell.signalled, shell.output)
        XCTAssertEqual(shell.status, 1, shell.output)
        XCTAssertTrue(shell.output.contains("1 of 1 configurations failed"), shell.output)
        XCTAssertTrue(shell.output.contains("child died with signal"), shell.output)
        let csv = try String(contentsOfFile: (out as NSString).appendingPathComponent("results.csv"), encoding: .utf8)
        XCTAssertTrue(csv.contains("failed"), csv)
    }

    /// As root, `--ranks` without Open MPI's two consent variables is refused before any child with
    /// what to do (mpirun's own refusal ended a failed row in the tail of its banner).
    func testBenchMemoryRanksAsRootSaysWhatOpenMPINeeds() throws {
        guard geteuid() == 0 else { throw XCTSkip("Open MPI refuses only root") }
        let bench = try HostileCommand.executable("bench-memory").path
        let shell = try runShell("exec env -u OMPI_ALLOW_RUN_AS_ROOT -u OMPI_ALLOW_RUN_AS_ROOT_CONFIRM '\(bench)'"
                                 + " --ranks 2 --depths 40 --out '\(dir.file("ranks"))'")
        XCTAssertFalse(shell.signalled, shell.output)
        XCTAssertNotEqual(shell.status, 0, shell.output)
        XCTAssertTrue(shell.output.contains("--ranks 2") && shell.output.contains("OMPI_ALLOW_RUN_AS_ROOT=1"), shell.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("ranks")), "refused before the sweep")
    }

    func runShell(_ script: String) throws -> HostileCommand.Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let started = Date()
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return HostileCommand.Result(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                                     timedOut: false, seconds: Date().timeIntervalSince(started),
                                     output: String(decoding: data, as: UTF8.self))
    }

    // MARK: Class 9: output locations checked before the work

    func testOutputLocationsAreCheckedBeforeTheWork() throws {
        let file = dir.file("a-file")
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        refusesCommand("densenet", train(["--out", file]), mentioning: ["--out", "is a file, not a folder"])
        refusesCommand("densenet", train(["--out", file + "/run"]), mentioning: ["--out", "cannot create", "is a file"])
        refusesCommand("bench-memory", ["--depths", "10", "--out", file], mentioning: ["--out", "is a file"], within: 3)
        refusesCommand("bench-memory", ["--depths", "10", "--out", file + "/deeper/still"], mentioning: ["--out", "cannot create"], within: 3)
        refusesCommand("densenet", ["evaluate", "--checkpoint", file, "--input-tensor", file, "--dump-logits", dir.path],
                       mentioning: ["--dump-logits", "is a folder"])
        refusesCommand("densenet", ["evaluate", "--checkpoint", file, "--input-tensor", file, "--dump-logits", file + "/logits"],
                       mentioning: ["--dump-logits", "cannot write", "is a file"])
        refusesCommand("densenet", ["evaluate", "--checkpoint", file, "--input-tensor", file, "--dump-logits", dir.file("no/such/l.st")],
                       mentioning: ["--dump-logits", "does not exist"])
        refusesCommand("bench-kernels", ["--json", file + "/records.json", "--repeats", "1"],
                       mentioning: ["--json", "cannot write", "is a file"], within: 3)
        refusesCommand("bench-kernels", ["--json", dir.path, "--repeats", "1"], mentioning: ["--json", "is a folder"], within: 3)
        refusesCommand("densenet", ["evaluate", "--checkpoint", file, "--dump-logits", dir.file("l.safetensors")],
                       mentioning: ["--dump-logits", "--input-tensor"])
        if getuid() != 0 {
            // Permissions bind everyone but root (CI containers often run as root).
            let locked = dir.file("locked")
            try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: true)
            chmod(locked, 0o500)
            defer { chmod(locked, 0o700) }
            refusesCommand("densenet", train(["--out", locked]), mentioning: ["--out", "not writable"])
            refusesCommand("bench-memory", ["--depths", "10", "--out", locked + "/new"], mentioning: ["--out", "not writable"])
        }
    }

    // MARK: Class 10: messages about what the user typed

    func testMessagesSpeakOfWhatTheUserTyped() throws {
        let table = dir.file("t.csv")
        try "a,b,y\n1,2,3\n4,5,6\n7,8,9\n".write(toFile: table, atomically: true, encoding: .utf8)
        let message = refusesCommand("densenet", ["train", "--data", "csv:\(table)", "--test-data", "csv:\(table)", "--model", "d2l",
                                                  "--out", dir.file("r")],
                                     mentioning: ["--model", "d2l reads images", "dense-mlp"])
        XCTAssertFalse(message.contains("cannot read input shape"), message)
        for growth in ["-1", "0"] {
            let m = refusesCommand("bench-memory", ["--growth=\(growth)", "--out", dir.file("b")],
                                   mentioning: ["--growth must be a positive integer", growth])
            XCTAssertFalse(m.contains("cannot read model name"), m)
        }
        refusesCommand("bench-memory", ["--depths", "41", "--out", dir.file("b")], mentioning: ["--depths 41", "6n + 4"])
        refusesCommand("bench-memory", ["--depths", "40,,100", "--out", dir.file("b")], mentioning: ["--depths", "'40,,100'"])
    }
}
