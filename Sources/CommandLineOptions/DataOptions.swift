import ArgumentParser
import Datasets
import Training

/// The data: `--data`, `--test-data`, `--data-dir`, `--limit`, `--test-limit`. Shared by
/// `densenet train` and `evaluate` (which reads the test split: `--test-limit`, else `--limit`).
public struct DataOptions: ParsableArguments {
    @Option(help: "fashion-mnist (default), cifar10:DIR (cifar-10-batches-bin), cifar100:DIR (cifar-100-binary) or csv:TRAIN.csv (regression, train only).")
    public var data: String?

    @Option(name: .customLong("test-data"), help: "With --data csv:…: the test table, csv:TEST.csv.")
    public var testData: String?

    @Option(name: .customLong("data-dir"), help: "Where Fashion-MNIST is.")
    public var dataDirectory: String = FashionMNIST.defaultDirectory

    @Option(help: "Use only the first N training examples, and test examples unless --test-limit (quick runs).")
    public var limit: Int?

    @Option(name: .customLong("test-limit"), help: "Use only the first N test examples (default: --limit).")
    public var testLimit: Int?

    public init() {}

    public func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
        if let testLimit, testLimit < 1 { throw ValidationError("--test-limit must be at least 1, got \(testLimit)") }
    }

    /// `--data` (default fashion-mnist) with `--test-data` and `--data-dir`.
    public func spec() throws -> DatasetSpec {
        try DatasetSpec.parse(data ?? "fashion-mnist", testData: testData, dataDirectory: dataDirectory)
    }

    /// The data given on the command line, nil without `--data` (a resumed run's own).
    public func givenSpec() throws -> DatasetSpec? {
        guard data != nil || testData != nil else { return nil }
        return try spec()
    }

    /// The test examples to use: `--test-limit`, else `--limit`.
    public var testExamples: Int? { testLimit ?? limit }
}
