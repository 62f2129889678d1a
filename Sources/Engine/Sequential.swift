/// nn.Sequential: children run in order forward, in reverse backward. Children are named "0",
/// "1", ... as in PyTorch (parameter names use the same indices).
public final class Sequential: Module {
    public let layers: [Module]

    public init(_ layers: [Module]) { self.layers = layers }

    public var typeDescription: String { "Sequential" }
    public var children: [(name: String, module: Module)] { layers.enumerated().map { (String($0.offset), $0.element) } }

    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        var h = x
        for layer in layers { h = layer(h, ctx) }
        return h
    }

    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        var g = dy
        for layer in layers.reversed() {
            g = layer.gradient(g, ctx)
            ctx.backwardProgress?(layer)
        }
        return g
    }
}

/// nn.Flatten: CNHW [N, C, H, W] → row-major [N, C·H·W] in PyTorch's (c, h, w) order.
public final class Flatten: Module {
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])
    private var inputShape: [Int] = []

    public init() {}
    public var typeDescription: String { "Flatten(start_dim=1, end_dim=-1)" }

    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        checkShape(x.shape.count == 4 || x.shape.count == 2, typeDescription, "input shape \(x.shape)")
        inputShape = x.shape
        if x.shape.count == 2 { return x }
        output.resize([x.n, x.c * x.h * x.w])
        Layout.swapNC(x.data, output.data, n: x.c, c: x.n, plane: x.h * x.w)
        return output
    }

    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        if inputShape.count == 2 { return dy }
        gradInput.resize(inputShape)
        Layout.swapNC(dy.data, gradInput.data, n: inputShape[0], c: inputShape[1], plane: inputShape[2] * inputShape[3])
        return gradInput
    }
}
