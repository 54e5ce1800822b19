import Runtime

/// Kernel size, stride and zero padding of a 2-D convolution (PyTorch's `Conv2d` arguments).
public struct ConvParameters: Equatable, Sendable, CustomStringConvertible {
    public var kernelH: Int, kernelW: Int, strideH: Int, strideW: Int, padH: Int, padW: Int

    /// A square kernel with the same stride and padding in both directions.
    public init(kernel: Int, stride: Int = 1, padding: Int = 0) {
        self.init(kernelH: kernel, kernelW: kernel, strideH: stride, strideW: stride, padH: padding, padW: padding)
    }

    public init(kernelH: Int, kernelW: Int, strideH: Int, strideW: Int, padH: Int, padW: Int) {
        precondition(kernelH >= 1 && kernelW >= 1 && strideH >= 1 && strideW >= 1 && padH >= 0 && padW >= 0,
                     "ConvParameters: kernel \(kernelH)x\(kernelW) stride \(strideH)x\(strideW) padding \(padH)x\(padW) must be positive (padding non-negative)")
        self.kernelH = kernelH
        self.kernelW = kernelW
        self.strideH = strideH
        self.strideW = strideW
        self.padH = padH
        self.padW = padW
    }

    /// Output height and width for an input of `height` × `width` (floor mode, as PyTorch).
    /// Zero when the padded input is smaller than the kernel; callers check.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        let spanH = height + 2 * padH - kernelH, spanW = width + 2 * padW - kernelW
        return (spanH < 0 ? 0 : spanH / strideH + 1, spanW < 0 ? 0 : spanW / strideW + 1)
    }

    /// A 1x1 kernel, stride 1, no padding: the convolution is one matrix product on the input.
    public var isPointwise: Bool {
        kernelH == 1 && kernelW == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0
    }

    public var description: String {
        if kernelH == kernelW && strideH == strideW && padH == padW {
            return "k\(kernelH) s\(strideH) p\(padH)"
        }
        return "k\(kernelH)x\(kernelW) s\(strideH)x\(strideW) p\(padH)x\(padW)"
    }
}
