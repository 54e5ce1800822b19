import ArgumentParser

/// `--out DIR`: the folder a command writes its files to. Shared by `densenet train` (the run's
/// folder) and `bench-memory` (its reports); each says its default in its discussion.
public struct OutputFolderOptions: ParsableArguments {
    @Option(help: "The folder the files are written to (default: in the discussion above).")
    public var out: String?

    public init() {}

    /// `--out`, else `fallback()`.
    public func folder(_ fallback: () -> String) -> String { out ?? fallback() }
}

/// `--json`: one JSON document on standard output instead of text. Shared by `densenet summary`,
/// `densenet evaluate` and `bench-memory`.
public struct JSONOutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON document on standard output instead of text.")
    public var json = false

    public init() {}
}
