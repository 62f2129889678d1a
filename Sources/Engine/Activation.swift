/// nn.ReLU. Any shape, any layout (element-wise).
public final class ReLU: Module {
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])

    public init() {}
    public var typeDescription: String { "ReLU()" }

    // y = max(x, 0)
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        output.resize(x.shape)
        let (src, dst) = (x.data, output.data)
        Parallel.chunks(x.count, work: x.count) { start, end in
            for i in start ..< end { dst[i] = max(src[i], 0) }
        }
        return output
    }

    // dx = dy where y > 0 (the saved output tells which inputs were positive)
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        checkShape(dy.count == output.count, typeDescription, "gradient shape \(dy.shape) for output \(output.shape)")
        gradInput.resize(output.shape)
        let (y, g, dx) = (output.data, dy.data, gradInput.data)
        Parallel.chunks(dy.count, work: dy.count) { start, end in
            for i in start ..< end { dx[i] = y[i] > 0 ? g[i] : 0 }
        }
        return gradInput
    }
}
