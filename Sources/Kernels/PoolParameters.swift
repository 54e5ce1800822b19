/// Square pooling window, as PyTorch's `MaxPool2d`/`AvgPool2d` with `ceil_mode=False`.
public struct PoolParameters: Equatable, Sendable {
    public var kernel: Int, stride: Int, padding: Int
    /// Avg pool only: whether padded positions count in the divisor (PyTorch's default, true).
    public var countIncludePad: Bool

    /// stride defaults to kernel, as in PyTorch.
    public init(kernel: Int, stride: Int? = nil, padding: Int = 0, countIncludePad: Bool = true) {
        precondition(kernel >= 1 && (stride ?? kernel) >= 1 && padding >= 0,
                     "PoolParameters: kernel \(kernel), stride \(String(describing: stride)), padding \(padding)")
        precondition(padding <= kernel / 2,
                     "PoolParameters: padding \(padding) must be at most half the kernel \(kernel) (as PyTorch)")
        self.kernel = kernel
        self.stride = stride ?? kernel
        self.padding = padding
        self.countIncludePad = countIncludePad
    }

    /// Floor mode: (size + 2·padding − kernel) / stride + 1.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        precondition(height + 2 * padding >= kernel && width + 2 * padding >= kernel,
                     "PoolParameters: input \(height)x\(width) with padding \(padding) is smaller than the kernel \(kernel)")
        return ((height + 2 * padding - kernel) / stride + 1, (width + 2 * padding - kernel) / stride + 1)
    }
}
