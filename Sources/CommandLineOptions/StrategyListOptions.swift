import ArgumentParser
import DenseNetModels

/// `--strategies a,b,...`: the memory strategies to predict or measure, in order. Shared by
/// `densenet summary` and `bench-memory`.
public struct StrategyListOptions: ParsableArguments {
    @Option(help: "Memory strategies, comma-separated: naive,checkpoint,shared,minimal,fused (and the ablation step shared-concat; fields joined by '+', densenet policies).")
    public var strategies = "naive,checkpoint,shared,minimal,fused"

    public init() {}

    public func validate() throws { _ = try parsed() }

    public func parsed() throws -> [MemoryPolicy] { try MemoryPrediction.strategies(strategies) }
}
