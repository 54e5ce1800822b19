import ArgumentParser
import CommandLineOptions
import DenseNetModels
import Foundation
import Runtime
import Training
import XCTest

/// The option groups the command lines share (Sources/CommandLineOptions), parsed from argument
/// lists as `densenet` and `bench-memory` receive them.
final class CommandLineOptionsTests: XCTestCase {
    // MARK: --max-memory

    func testByteCountsTakeSuffixesInPowersOf1024() throws {
        XCTAssertEqual(try ByteCount.parse("1000000"), 1_000_000)
        XCTAssertEqual(try ByteCount.parse("512K"), 512 * 1024)
        XCTAssertEqual(try ByteCount.parse("6G"), 6 * 1024 * 1024 * 1024)
        XCTAssertEqual(try ByteCount.parse("1.5GiB"), 3 * 512 * 1024 * 1024)
        XCTAssertEqual(try ByteCount.parse("2gb"), 2 * 1024 * 1024 * 1024)
        XCTAssertEqual(try ByteCount.parse("300m"), 300 * 1024 * 1024)
        XCTAssertEqual(try ByteCount.parse("1T"), 1024 * 1024 * 1024 * 1024)
        for bad in ["", "G", "abc", "0", "-1G", "0.0001", "12X", "nan", "inf", "1e30", "9000000T"] {
            XCTAssertThrowsError(try ByteCount.parse(bad), bad) { error in
                XCTAssertTrue("\(error)".contains("6G"), "the error shows an example: \(error)")
            }
        }
    }

    func testMemoryBudgetAdmitsAndRefuses() throws {
        let none = try MemoryBudgetOptions.parse([])
        XCTAssertNil(none.maxMemory)
        XCTAssertTrue(none.admits(.max))
        let budget = try MemoryBudgetOptions.parse(["--max-memory", "2M"])
        XCTAssertEqual(budget.maxMemory, 2_097_152)
        XCTAssertTrue(budget.admits(2_097_152))
        XCTAssertFalse(budget.admits(2_097_153))
        XCTAssertNoThrow(try budget.check(2_097_152))
        XCTAssertThrowsError(try budget.check(3_000_000)) { error in
            XCTAssertEqual(error as? TrainingError, .exceedsMemoryLimit(predictedBytes: 3_000_000, limitBytes: 2_097_152))
        }
        XCTAssertThrowsError(try MemoryBudgetOptions.parse(["--max-memory", "lots"]))
        // The old name (bench-memory's MiB budget) is gone, not silently read in other units.
        XCTAssertThrowsError(try MemoryBudgetOptions.parse(["--max-rss", "512"]))
    }

    // MARK: --threads

    func testThreadsDefaultToAllCoresAndMustBePositive() throws {
        XCTAssertEqual(try ThreadsOptions.parse([]).threads, max(1, ProcessInfo.processInfo.activeProcessorCount))
        XCTAssertEqual(try ThreadsOptions.parse(["--threads", "3"]).threads, 3)
        XCTAssertThrowsError(try ThreadsOptions.parse(["--threads", "0"]))
        XCTAssertThrowsError(try ThreadsOptions.parse(["--threads", "-2"]))
    }

    // MARK: Strategies

    func testStrategyNamesAndLists() throws {
        XCTAssertEqual(try MemoryPrediction.strategy(named: "minimal"), .minimal)
        XCTAssertEqual(try MemoryPrediction.strategy(named: " Shared "), .shared)
        XCTAssertEqual(try MemoryPrediction.strategy(named: "shared-concat"), .sharedConcatenation)
        XCTAssertEqual(try StrategyListOptions.parse([]).parsed(), [.naive, .checkpoint, .shared, .minimal, .fused])
        XCTAssertEqual(try StrategyListOptions.parse(["--strategies", "minimal,naive"]).parsed(), [.minimal, .naive])
        for bad in ["", "naive,", "naive,fast", "all"] {
            XCTAssertThrowsError(try StrategyListOptions.parse(["--strategies", bad]), bad)
        }
        XCTAssertThrowsError(try MemoryPrediction.strategy(named: "fast", option: "--strategy")) { error in
            guard case .invalidOption(let option, let reason)? = error as? TrainingError else { return XCTFail("\(error)") }
            XCTAssertEqual(option, "--strategy")
            XCTAssertTrue(reason.contains("naive, checkpoint, shared-concat, shared, minimal"), reason)
        }
    }

    // MARK: Optimizer

    func testOptimizerDefaultsPerKind() throws {
        XCTAssertEqual(try OptimizerOptions.parse([]).settings(),
                       OptimizerSettings(kind: .sgd, learningRate: 0.1, momentum: 0.9, weightDecay: 1e-4))
        XCTAssertEqual(try OptimizerOptions.parse(["--optimizer", "adam"]).settings(),
                       OptimizerSettings(kind: .adam, learningRate: 0.001, momentum: 0, weightDecay: 1e-4))
        XCTAssertEqual(try OptimizerOptions.parse(["--optimizer", "sgd", "--momentum", "0", "--lr", "0.5",
                                                   "--weight-decay", "0"]).settings(),
                       OptimizerSettings(kind: .sgd, learningRate: 0.5, momentum: 0, weightDecay: 0))
        // summary's former spelling: SGD with momentum.
        XCTAssertEqual(try OptimizerOptions.parse(["--optimizer", "sgd-momentum"]).settings(),
                       OptimizerSettings(kind: .sgd, learningRate: 0.1, momentum: 0.9, weightDecay: 1e-4))
        XCTAssertThrowsError(try OptimizerOptions.parse(["--optimizer", "sgd-momentum", "--momentum", "0"]))
        XCTAssertThrowsError(try OptimizerOptions.parse(["--optimizer", "rmsprop"]))
        XCTAssertThrowsError(try OptimizerOptions.parse(["--optimizer", "adam", "--nesterov"]))
        XCTAssertThrowsError(try OptimizerOptions.parse(["--lr", "-1"]))
        XCTAssertThrowsError(try OptimizerOptions.parse(["--momentum", "1"]))
    }

    /// The optimizer options reach the planner: its optimizer state is 0, 1 and 2 copies of the
    /// gradients for SGD, SGD with momentum and Adam.
    func testPlannedOptimizerStateFollowsTheOptimizerOptions() throws {
        let model = try ModelZoo.configuration(named: "densenet-bc-10-4", input: "3x8x8")
        func stateBytes(_ arguments: [String]) throws -> (state: Int, gradients: Int) {
            let plan = try MemoryPrediction.plan(model, batch: 2, strategy: .shared, threads: 1,
                                                 optimizer: try OptimizerOptions.parse(arguments).settings())
            return (plan.optimizerStateBytes, plan.gradientBytes)
        }
        let plain = try stateBytes(["--momentum", "0"])
        let momentum = try stateBytes([])
        let adam = try stateBytes(["--optimizer", "adam"])
        XCTAssertGreaterThan(plain.gradients, 0)
        XCTAssertEqual(plain.state, 0)
        XCTAssertEqual(momentum.state, momentum.gradients)
        XCTAssertEqual(adam.state, 2 * adam.gradients)
    }

    func testPlanRefusesWhatCannotRun() throws {
        // The planner runs the real step, so it models every zoo model, the plain MLP included.
        let mlp = try ModelZoo.configuration(named: "mlp", classes: 1, input: "4")
        XCTAssertGreaterThan(try MemoryPrediction.plan(mlp, batch: 2, strategy: .naive, threads: 1).peakBytes, 0)
        let dense = try ModelZoo.configuration(named: "dense-mlp", classes: 1, input: "4")
        XCTAssertGreaterThan(try MemoryPrediction.plan(dense, batch: 2, strategy: .naive, threads: 1).peakBytes, 0)
        let d2l = try ModelZoo.configuration(named: "d2l")
        XCTAssertThrowsError(try MemoryPrediction.plan(d2l, batch: 0, strategy: .naive, threads: 1))
        XCTAssertThrowsError(try MemoryPrediction.plan(d2l, batch: 1, strategy: .naive, threads: 0))
    }

    /// Any input size is planned (a step larger than this machine is still predicted); sizes
    /// whose arithmetic would overflow are a SizeError naming --input, never a trap.
    func testHighResolutionInputsArePlannedAndAbsurdOnesRefused() throws {
        let large = try ModelZoo.configuration(named: "densenet121", input: "3x1024x768")
        let minimal = try MemoryPrediction.plan(large, batch: 16, strategy: .minimal, threads: 1).peakBytes
        let naive = try MemoryPrediction.plan(large, batch: 16, strategy: .naive, threads: 1).peakBytes
        // The batch's input alone: 16 × 3 × 1024 × 768 floats = 144 MiB; naive keeps far more.
        XCTAssertGreaterThan(minimal, 16 * 3 * 1024 * 768 * 4)
        XCTAssertGreaterThan(naive, 4 * minimal)
        for (input, batch) in [("3x9223372036854775807x2", 1), ("1x5000000x5000000", 16), ("3x100000x100000", 1),
                               ("3x224x224", Int.max), ("3x4096x4096", 1 << 40)] {
            let model = try ModelZoo.configuration(named: "densenet121", input: input)
            // Refused before planning, by the step's bound (ModelBounds.checkStep): its arithmetic
            // overflows, or its lower bound is beyond physical memory; the error names what was asked.
            XCTAssertThrowsError(try MemoryPrediction.plan(model, batch: batch, strategy: .minimal, threads: 1), input) { error in
                XCTAssertTrue(error is SizeError, "\(error)")
                XCTAssertTrue("\(error)".contains(input) || "\(error)".contains("--batch \(batch)"), "\(error)")
            }
            XCTAssertThrowsError(try MemoryPrediction.checkStep(model, batch: batch), input)
        }
        // A training configuration too.
        var c = TrainingConfiguration(model: try ModelZoo.configuration(named: "densenet121", input: "3x224x224"),
                                      data: .fashionMNIST(directory: "x"), batchSize: 1 << 50)
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("--batch"), "\($0)") }
        (c.batchSize, c.evaluationBatchSize) = (8, 8)
        XCTAssertNoThrow(try c.validate())
    }

    // MARK: Data

    func testDataSpecsForImagesAndTables() throws {
        XCTAssertNil(try DataOptions.parse([]).givenSpec())
        XCTAssertEqual(try DataOptions.parse(["--data-dir", "/d"]).spec(), .fashionMNIST(directory: "/d"))
        XCTAssertEqual(try DataOptions.parse(["--data", "cifar10:/c"]).spec(), .cifar10(directory: "/c"))
        let table = try DataOptions.parse(["--data", "csv:train.csv", "--test-data", "csv:test.csv"]).spec()
        XCTAssertEqual(table, .table(train: "train.csv", test: "test.csv"))
        XCTAssertTrue(table.isTable)
        XCTAssertEqual(table.tablePath(.test), "test.csv")
        XCTAssertThrowsError(try table.load(.test))
        XCTAssertThrowsError(try DataOptions.parse(["--data", "csv:train.csv"]).spec())
        XCTAssertThrowsError(try DataOptions.parse(["--data", "csv:", "--test-data", "csv:t.csv"]).spec())
        XCTAssertThrowsError(try DataOptions.parse(["--data", "fashion-mnist", "--test-data", "csv:t.csv"]).spec())
        XCTAssertThrowsError(try DataOptions.parse(["--data", "imagenet"]).spec())
        XCTAssertEqual(try DataOptions.parse(["--limit", "10"]).testExamples, 10)
        XCTAssertEqual(try DataOptions.parse(["--limit", "10", "--test-limit", "4"]).testExamples, 4)
        XCTAssertThrowsError(try DataOptions.parse(["--limit", "0"]))
    }

    // MARK: Model and input

    func testModelOptionsApplyClassesInputAndPooling() throws {
        let d2l = try ModelInputOptions.parse(["--model", "d2l", "--classes", "3", "--input", "1x32x32",
                                               "--transition-pooling", "max"]).configuration()
        guard case .denseNet(let c) = d2l else { return XCTFail("d2l is not a DenseNet") }
        XCTAssertEqual(c.transitionPooling, .max)
        XCTAssertEqual(d2l.outputCount, 3)
        XCTAssertEqual(d2l.inputShape.description, "1x32x32")
        XCTAssertEqual(try ModelInputOptions.parse([]).configuration(defaultModel: "resnet18").name, "resnet18")
        XCTAssertEqual(try ModelInputOptions.parse(["--model", "d2l"]).configuration(named: "densenet-bc-40-12").name,
                       "densenet-bc-40-12")
        XCTAssertThrowsError(try ModelInputOptions.parse([]).configuration())
        XCTAssertThrowsError(try ModelInputOptions.parse(["--model", "resnet18", "--transition-pooling", "max"]).configuration())
        XCTAssertThrowsError(try ModelInputOptions.parse(["--transition-pooling", "min"]))
        XCTAssertThrowsError(try ModelInputOptions.parse(["--classes", "0"]))
    }

    func testTableDataGiveAnMLPReadingTheFeatures() throws {
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("cli-options-\(getpid())-\(UUID().uuidString).csv")
        try "a,b,c,y\n1,2,3,4\n5,6,7,8\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let spec = DatasetSpec.table(train: path, test: path)
        let dense = try ModelInputOptions.parse([]).configuration(for: spec)
        guard case .denseMLP = dense else { return XCTFail("\(dense.name) is not the dense MLP") }
        XCTAssertEqual(dense.inputShape.channels, 3)
        XCTAssertEqual(dense.outputCount, 1)
        XCTAssertEqual(try ModelInputOptions.parse(["--model", "mlp"]).configuration(for: spec).name, "mlp")
    }

    func testModelOptionsThatContradictASavedModel() throws {
        let saved = try ModelZoo.configuration(named: "d2l")
        XCTAssertNoThrow(try ModelInputOptions.parse(["--model", "D2L", "--transition-pooling", "avg"]).checkAgrees(with: saved))
        XCTAssertThrowsError(try ModelInputOptions.parse(["--model", "resnet18"]).checkAgrees(with: saved)) { error in
            XCTAssertEqual(error as? TrainingError, .resumeConflict(option: "--model", saved: "d2l", given: "resnet18"))
        }
        XCTAssertThrowsError(try ModelInputOptions.parse(["--transition-pooling", "max"]).checkAgrees(with: saved))
        XCTAssertThrowsError(try ModelInputOptions.parse(["--transition-pooling", "max"])
            .checkAgrees(with: try ModelZoo.configuration(named: "resnet18")))
    }
}
