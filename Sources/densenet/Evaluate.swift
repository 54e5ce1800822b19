import ArgumentParser

// In progress in this revision: being written on its own branch.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(in progress)")
    func run() throws { throw ValidationError("densenet evaluate is not built in this revision yet") }
}
