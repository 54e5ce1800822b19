import Runtime

/// Element-by-element concatenation, for tests.
extension Concat {
    public static func forwardReference(_ xs: [Tensor], into y: Tensor) {
        var values = [Float]()
        for x in xs { values += x.array }
        y.assign(Tensor(shape: y.shape, values: values, category: .scratch))
    }

    public static func backwardReference(_ dy: Tensor, dxs: [Tensor?], channels: [Int]) {
        var start = 0
        for (dx, width) in zip(dxs, channels) {
            if let dx {
                let slice = dy.narrow(0, start..<(start + width))
                dx.assign(Tensor(shape: dx.shape, values: zip(dx.array, slice.array).map { $0 + $1 }, category: .scratch))
            }
            start += width
        }
    }
}
