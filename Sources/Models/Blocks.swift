import Engine

/// nn.Sequential with named children (PyTorch's `Sequential(OrderedDict(...))`), also used for
/// plain top-level models that just run their children in order (printed under `typeName`).
public final class NamedSequential: Module {
    public let typeName: String
    public let named: [(name: String, module: Module)]

    public init(_ typeName: String = "Sequential", _ named: [(String, Module)]) {
        self.typeName = typeName
        self.named = named.map { (name: $0.0, module: $0.1) }
    }

    public var typeDescription: String { typeName }
    public var children: [(name: String, module: Module)] { named }

    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        var h = x
        for (_, layer) in named { h = layer(h, ctx) }
        return h
    }

    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        var g = dy
        for (_, layer) in named.reversed() {
            g = layer.gradient(g, ctx)
            ctx.backwardProgress?(layer)
        }
        return g
    }
}

/// Output size of a convolution or pooling window along one axis.
@inline(__always)
func windowOutput(_ size: Int, kernel: Int, stride: Int, padding: Int = 0) -> Int {
    (size + 2 * padding - kernel) / stride + 1
}

/// Stops the input gradient of a network's first layer: nothing upstream needs it.
func skipInputGradient(_ module: Module) {
    var m = module
    while true {
        if let first = m as? InputGradientOptional { first.computesInputGradient = false; return }
        if let firstChild = m.children.first?.module { m = firstChild } else { return }
    }
}
