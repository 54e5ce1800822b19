import ArgumentParser
import Training

/// The optimizer: `--optimizer`, `--lr`, `--momentum`, `--weight-decay`, `--nesterov`, and the
/// one place their defaults are set (`settings()`). `densenet train` trains with it;
/// `densenet summary` counts its state in the predicted peak (none for SGD with `--momentum 0`,
/// one buffer per parameter with momentum, two for Adam).
public struct OptimizerOptions: ParsableArguments {
    @Option(help: "sgd (default) or adam; sgd-momentum, an older spelling, is sgd with momentum.")
    public var optimizer: String?

    @Option(help: "Learning rate (default 0.1 for sgd, 0.001 for adam).")
    public var lr: Float?

    @Option(help: "SGD momentum (default 0.9; 0: plain SGD, no optimizer state).")
    public var momentum: Float?

    @Option(name: .customLong("weight-decay"), help: "L2 weight decay (default 1e-4).")
    public var weightDecay: Float?

    @Flag(help: "Nesterov momentum (SGD).")
    public var nesterov = false

    public init() {}

    public func validate() throws {
        _ = try settings()
    }

    /// `--optimizer` as a kind; `sgd-momentum` (summary's former name) is `sgd`.
    public func kind() throws -> OptimizerSettings.Kind {
        let text = (optimizer ?? "sgd").lowercased()
        if text == "sgd-momentum" { return .sgd }
        guard let kind = OptimizerSettings.Kind(rawValue: text) else {
            throw TrainingError.invalidOption("--optimizer", reason: "'\(text)' is not one of "
                                              + OptimizerSettings.Kind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return kind
    }

    /// The settings the options give, defaults filled in, validated.
    public func settings() throws -> OptimizerSettings {
        let kind = try kind()
        if optimizer?.lowercased() == "sgd-momentum", momentum == 0 {
            throw TrainingError.invalidOption("--momentum", reason: "0 contradicts --optimizer sgd-momentum: use --optimizer sgd --momentum 0")
        }
        let settings = OptimizerSettings(kind: kind, learningRate: lr ?? (kind == .sgd ? 0.1 : 1e-3),
                                         momentum: momentum ?? (kind == .sgd ? 0.9 : 0), weightDecay: weightDecay ?? 1e-4,
                                         nesterov: nesterov)
        try settings.validate()
        return settings
    }
}
