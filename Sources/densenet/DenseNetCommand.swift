import ArgumentParser
import Runtime

/// `densenet summary | train | evaluate | policies`
@main
struct DenseNetCommand: ParsableCommand {
    /// OpenBLAS's best kernels for this CPU first (`BLASCoreSelection`), then the command line.
    static func main() {
        BLASCoreSelection.adoptBestCoreType()
        main(nil)
    }

    static let configuration = CommandConfiguration(
        commandName: "densenet",
        abstract: "Memory-efficient DenseNets: inspect, train and evaluate models of the zoo.",
        subcommands: [Summary.self, Train.self, Evaluate.self, Predict.self, Policies.self])
}
