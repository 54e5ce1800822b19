import ArgumentParser

/// `densenet summary | train | evaluate`
@main
struct DenseNetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "densenet",
        abstract: "Memory-efficient DenseNets: inspect, train and evaluate models of the zoo.",
        subcommands: [Summary.self, Train.self, Evaluate.self])
}
