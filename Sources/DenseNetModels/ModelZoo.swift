/// The named models of the command line, and the parsing of `--model`, `--classes` and `--input`.
public enum ModelZoo {
    /// torchvision's ImageNet DenseNets (Huang et al. 2017, Table 1), and densenet83.
    static let imagenet: [String: (k: Int, blocks: [Int], features: Int)] = [
        "densenet121": (32, [6, 12, 24, 16], 64),
        "densenet161": (48, [6, 12, 36, 24], 96),
        "densenet169": (32, [6, 12, 32, 32], 64),
        "densenet201": (32, [6, 12, 48, 32], 64),
        "densenet264": (32, [6, 12, 64, 48], 64),
        // The "new" DenseNet-83 of the DeepLearningMadeEasy / CAP421 exercise: DenseNet-161's
        // k = 48 and 96 stem channels with every block halved, 2·39 + 1 + 3 + 1 = 83 layers.
        "densenet83": (48, [3, 6, 18, 12], 96),
    ]

    /// Every concrete name, in display order. `densenet-bc-L-k` takes any valid L and k
    /// (see `namePatterns`); its four published instances are listed.
    public static let names: [String] = [
        "densenet121", "densenet161", "densenet169", "densenet201", "densenet264", "densenet83",
        "densenet-bc-100-12", "densenet-bc-250-24", "densenet-bc-190-40", "densenet-bc-40-12",
        "d2l", "resnet18", "dense-mlp", "mlp",
    ]

    /// Name families with parameters.
    public static let namePatterns: [String] = ["densenet-bc-L-k (L = 6n + 4, n ≥ 1; k ≥ 1)"]

    /// The configuration for `name` (case-insensitive), with optional overrides:
    /// `classes` replaces the class (or MLP output) count; `input` is `CxHxW` for the image
    /// models (e.g. `3x32x32`) and `F` (or `Fx1x1`) input features for `dense-mlp` and `mlp`.
    /// The result is validated; shapes are checked when an `Architecture` is derived from it.
    public static func configuration(named name: String, classes: Int? = nil,
                                     input: String? = nil) throws(ConfigurationError) -> ModelConfiguration {
        let key = name.lowercased().filter { !$0.isWhitespace }
        var model = try base(key, original: name)
        let shape: FeatureShape?
        if let input { shape = try parseInput(input, for: model) } else { shape = nil }
        switch model {
        case .denseNet(var c):
            if let classes { c.classCount = classes }
            if let shape { c.inputShape = shape }
            model = .denseNet(c)
        case .resNet(var c):
            if let classes { c.classCount = classes }
            if let shape { c.inputShape = shape }
            model = .resNet(c)
        case .denseMLP(var c):
            if let classes { c.outputCount = classes }
            if let shape { c.inputFeatures = shape.channels }
            model = .denseMLP(c)
        }
        try model.validate()
        return model
    }

    private static func base(_ key: String, original: String) throws(ConfigurationError) -> ModelConfiguration {
        if let t = imagenet[key] {
            return .denseNet(.torchvision(name: key, growthRate: t.k, blockConfig: t.blocks, initialFeatures: t.features))
        }
        switch key {
        case "d2l": return .denseNet(.d2l)
        case "resnet18": return .resNet(.d2l)
        case "dense-mlp": return .denseMLP(DenseMLPConfiguration())
        case "mlp": return .denseMLP(.plain)
        default: break
        }
        let prefix = "densenet-bc-"
        if key.hasPrefix(prefix) {
            let parts = key.dropFirst(prefix.count).split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 2, let depth = Int(parts[0]), let k = Int(parts[1]) else {
                throw .malformedName(original, expected: "densenet-bc-L-k with integers L = 6n + 4 and k ≥ 1, e.g. densenet-bc-100-12")
            }
            return .denseNet(try DenseNetConfiguration.cifarBC(depth: depth, growthRate: k))
        }
        throw .unknownModel(original, known: names + namePatterns)
    }

    /// Reads `--input` for `model`: `CxHxW` for image models, `F` or `Fx1x1` for the MLP.
    public static func parseInput(_ text: String, for model: ModelConfiguration) throws(ConfigurationError) -> FeatureShape {
        let isMLP = model.takesFeatureVectors
        let expected = isMLP ? "a feature count F (e.g. 10) for \(model.name)"
                             : "CxHxW (e.g. 3x32x32) for \(model.name)"
        guard let shape = FeatureShape(parsing: text) else { throw .malformedInput(text, expected: expected) }
        let isFlat = shape.height == 1 && shape.width == 1
        let isTriple = text.lowercased().contains("x")
        if isMLP ? !isFlat : !isTriple { throw .malformedInput(text, expected: expected) }
        guard shape.isPositive else {
            throw .invalidInputShape(shape, reason: "every extent must be at least 1 (\(expected))")
        }
        return shape
    }
}
