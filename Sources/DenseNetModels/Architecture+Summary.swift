// A torchsummary-like text table of an Architecture: name (type), output shape, parameters.

extension Architecture {
    /// The table for a batch of `batchSize` examples: one row per leaf (or per entry, indented
    /// by nesting, with `includeComposites`), then the totals. Shapes print PyTorch-style
    /// `[N, C, H, W]` (the runtime stores `(C, N, H, W)`; the extents are the same).
    /// Non-trainable parameters are BN running statistics, as Keras counts them.
    public func summaryTable(batchSize: Int, includeComposites: Bool = false) -> String {
        precondition(batchSize >= 1, "summaryTable: batch size \(batchSize) < 1")
        let rows: [(String, String, String)] = layers.filter { includeComposites || !$0.isComposite }.map { layer in
            let indent = includeComposites ? String(repeating: "  ", count: layer.depth) : ""
            return ("\(indent)\(layer.name) (\(typeName(layer)))",
                    shapeText(layer, batchSize: batchSize),
                    Self.grouped(layer.trainableParameters))
        }
        let header = ("Layer (type)", "Output Shape", "Param #")
        let w0 = max(header.0.count, rows.map { $0.0.count }.max() ?? 0)
        let w1 = max(header.1.count, rows.map { $0.1.count }.max() ?? 0)
        let w2 = max(header.2.count, rows.map { $0.2.count }.max() ?? 0)
        let width = w0 + w1 + w2 + 4
        func row(_ r: (String, String, String)) -> String {
            Self.padRight(r.0, w0) + "  " + Self.padLeft(r.1, w1) + "  " + Self.padLeft(r.2, w2)
        }
        var lines: [String] = []
        lines.append("\(name): input \(inputShape), batch \(batchSize)")
        lines.append(String(repeating: "-", count: width))
        lines.append(row(header))
        lines.append(String(repeating: "=", count: width))
        lines += rows.map(row)
        lines.append(String(repeating: "=", count: width))
        lines.append("Total params: \(Self.grouped(totalParameters))")
        lines.append("Trainable params: \(Self.grouped(trainableParameters))")
        lines.append("Non-trainable params: \(Self.grouped(nonTrainableParameters)) (BN running mean and variance)")
        lines.append("Forward FLOPs: \(Self.scaled(forwardFLOPs)) per example, \(Self.scaled(forwardFLOPs * batchSize)) per batch (2 x MACs of convs and linears)")
        lines.append(String(repeating: "-", count: width))
        return lines.joined(separator: "\n") + "\n"
    }

    /// PyTorch's class name for a kind, for the table.
    /// PyTorch's class name for a layer (`Conv2d`, `BatchNorm2d`, `_DenseBlock`, ...), as summaries print it.
    public func typeName(_ layer: Layer) -> String {
        let flat = layer.inputShape.height == 1 && layer.inputShape.width == 1
        switch layer.kind {
        case .convolution: return "Conv2d"
        case .batchNorm: return flat ? "BatchNorm1d" : "BatchNorm2d"
        case .relu: return "ReLU"
        case .dropout: return "Dropout"
        case .maxPool: return "MaxPool2d"
        case .avgPool: return "AvgPool2d"
        case .globalAvgPool: return "AdaptiveAvgPool2d"
        case .linear: return "Linear"
        case .add: return "Add"
        case .denseBlock: return "_DenseBlock"
        case .denseLayer: return "_DenseLayer"
        case .transition: return "_Transition"
        case .residual: return "Residual"
        }
    }

    private func shapeText(_ layer: Layer, batchSize: Int) -> String {
        let s = layer.outputShape
        if case .linear = layer.kind { return "[\(batchSize), \(s.channels)]" }
        if s.height == 1 && s.width == 1 && configuration.takesFeatureVectors { return "[\(batchSize), \(s.channels)]" }
        return "[\(batchSize), \(s.channels), \(s.height), \(s.width)]"
    }

    /// `7978856` → `7,978,856`.
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return value < 0 ? "-" + out : out
    }

    /// A count with two decimals in the largest fitting unit of 10³ (K, M, G, T), rounded
    /// half up: `5_668_323_328` → `5.67 G`; below 1000 the plain number.
    static func scaled(_ value: Int) -> String {
        let units: [(Int, String)] = [(1_000_000_000_000, "T"), (1_000_000_000, "G"), (1_000_000, "M"), (1_000, "K")]
        guard let (unit, suffix) = units.first(where: { value >= $0.0 }) else { return "\(value)" }
        let hundredths = (value + unit / 200) / (unit / 100)
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction) \(suffix)"
    }

    private static func padRight(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(0, n - s.count)) }
    private static func padLeft(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
}
