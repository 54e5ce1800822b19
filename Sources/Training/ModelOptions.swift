import DenseNetModels

/// Command-line changes to a zoo model beyond `--classes` and `--input`.
public enum ModelOptions {
    /// `--transition-pooling`: `avg` (or `average`) and `max`.
    public static func transitionPooling(_ text: String) throws -> DenseNetConfiguration.TransitionPooling {
        switch text.lowercased() {
        case "avg", "average": return .average
        case "max": return .max
        default:
            throw TrainingError.invalidOption("--transition-pooling", reason: "'\(text)' is not avg or max")
        }
    }

    /// `model` with its transitions pooling by `pooling` (a DenseNet; an error for other models,
    /// which have no transitions that pool).
    public static func applying(transitionPooling pooling: DenseNetConfiguration.TransitionPooling,
                                to model: ModelConfiguration) throws -> ModelConfiguration {
        guard case .denseNet(var c) = model else {
            throw TrainingError.invalidOption("--transition-pooling", reason: "\(model.name) is not a DenseNet: only"
                                              + " DenseNet transitions pool (avg or max)")
        }
        c.transitionPooling = pooling
        return .denseNet(c)
    }

    /// `applying(transitionPooling:to:)` for the text of the option, or `model` unchanged when it is nil.
    public static func applying(transitionPooling text: String?, to model: ModelConfiguration) throws -> ModelConfiguration {
        guard let text else { return model }
        return try applying(transitionPooling: transitionPooling(text), to: model)
    }
}
