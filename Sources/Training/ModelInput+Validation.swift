import DenseNetModels
import Foundation
import Runtime

extension ModelInput {
    /// The one check of a model and the input it will see, for every entry point (issue 11,
    /// class 4): `densenet train`, `evaluate` (a checkpoint's model, or `--input-tensor`'s
    /// images), `summary` and `bench-memory` all come here through `ModelInputOptions` or
    /// `checkInput`. Its sizes first (`ModelBounds.check`: checked arithmetic, physical memory,
    /// microseconds), then `Architecture(_:)`: an input too small for the downsampling chain is
    /// `ConfigurationError.inputTooSmall`, naming the layer and the smallest size that works,
    /// instead of a crash in a pooling kernel. `inputName` and `parametersName` name the
    /// user's numbers in a size error.
    @discardableResult
    public static func check(_ model: ModelConfiguration, inputName: String, parametersName: String) throws -> Architecture {
        try ModelBounds.check(model, input: inputName, parameters: parametersName)
        return try Architecture(model)
    }

    /// `model` with a per-example input of `shape` (C, H, W) — the images of a tensor given to
    /// `densenet evaluate --input-tensor`, whatever size the model was trained at — checked as
    /// `check` does. The MLPs take `shape.channels` features.
    @discardableResult
    public static func checkInput(_ shape: FeatureShape, for model: ModelConfiguration, source: String) throws -> Architecture {
        var resized = model
        switch model {
        case .denseNet(var c): c.inputShape = shape; resized = .denseNet(c)
        case .resNet(var c): c.inputShape = shape; resized = .resNet(c)
        case .denseMLP(var c): c.inputFeatures = shape.channels; resized = .denseMLP(c)
        }
        return try check(resized, inputName: source, parametersName: "the model of the checkpoint (\(model.name))")
    }
}
