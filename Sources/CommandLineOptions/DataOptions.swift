import ArgumentParser
import Datasets
import Training

/// The data: `--data`, `--test-data`, `--data-dir`, `--limit`, `--test-limit`. Shared by
/// `densenet train` and `evaluate` (which reads the test split: `--test-limit`, else `--limit`).
public struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "fashion-mnist (default), cifar10:DIR (cifar-10-batches-bin), cifar100:DIR (cifar-100-binary), folder:DIR[,OPTION...] (your PNG/JPEG images) or csv:TRAIN.csv (regression, train only).",
        discussion: DataOptions.folderHelp))
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

    /// `--data folder:` in full (DatasetSpec.parse, ImageFolderOptions.parse).
    static let folderHelp = """
        folder:DIR reads torchvision's ImageFolder layout: DIR/train/<class>/* and DIR/val/<class>/* \
        (or DIR/test/), classes sorted by name, PNG and JPEG, grey or RGB. Options follow the path, \
        comma-separated: val-fraction=F (one tree DIR/<class>/* split by this fraction of every \
        class), split-seed=N (seeds that split, default 0), channels=1|3 (default: 1 when the \
        images are grey, else 3), resize=N (evaluation's shorter side, default the model's side \
        ·256/224), min-scale=F (random-resized crop's smallest area, default 0.08), mean=A/B/C and \
        std=A/B/C (default ImageNet's), skip-bad-images (leave out undecodable files, counted in \
        the log, instead of stopping). Example: --data folder:photos,val-fraction=0.2,skip-bad-images
        """

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
