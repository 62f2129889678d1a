/// nn.Sequential: children run in order forward, in reverse backward. Children are named "0",
/// "1", ... as in PyTorch (parameter names use the same indices), or given names as in PyTorch's
/// `Sequential(OrderedDict(...))`. Plain top-level models that just run their children in order
/// use it too, printed under their own `typeName` (e.g. "FaceNet"). A Conv2d directly followed by
/// a BatchNorm2d carries it at inference (ConvEpilogue.swift).
public final class Sequential: Module {
    public let typeName: String
    public let children: [(name: String, module: Module)]

    public init(_ layers: [Module]) {
        typeName = "Sequential"
        children = layers.enumerated().map { (String($0.offset), $0.element) }
        ConvEpilogue.foldPairs(layers)
    }

    public init(typeName: String = "Sequential", named: [(String, Module)]) {
        self.typeName = typeName
        children = named.map { (name: $0.0, module: $0.1) }
        ConvEpilogue.foldPairs(named.map(\.1))
    }

    public var layers: [Module] { children.map(\.module) }
    public var typeDescription: String { typeName }

    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        var h = x
        for (_, layer) in children { h = layer(h, ctx) }
        return h
    }

    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        guard ctx.earlyRelease === self else {
            var g = dy
            for (_, layer) in children.reversed() {
                g = layer.gradient(g, ctx)
                ctx.backwardProgress?(layer)
            }
            return g
        }
        // Inside a recomputed block (`Recomputation`): once a child has made a new gradient,
        // nothing after it is read again (its backward read only its own input and output, and
        // the gradient it got), so those children are freed at once. A child that hands the
        // gradient on (a fused ReLU) frees nothing: the gradient still lives in a later child.
        var g = dy, unreleased = children.count
        for (index, (_, layer)) in children.enumerated().reversed() {
            if layer is Sequential { ctx.earlyRelease = layer }
            let next = layer.gradient(g, ctx)
            ctx.earlyRelease = self
            ctx.backwardProgress?(layer)
            if next !== g {
                for later in children[(index + 1) ..< unreleased] { later.module.releaseBuffers() }
                unreleased = index + 1
            }
            g = next
        }
        return g
    }

    public func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        children.reduce(x) { shape, child in child.module.plan(shape, ledger) }
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

    // [N, F] passes through; [N, C, H, W] is copied out and its gradient copied back.
    public func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        checkShape(x.count == 4 || x.count == 2, typeDescription, "input shape \(x)")
        if x.count == 2 { return x }
        ledger.keep(.output, floats: Tensor.elementCount(x), typeDescription)
        ledger.keep(.gradient, floats: Tensor.elementCount(x), typeDescription)
        return [x[0], x[1] * x[2] * x[3]]
    }

    public func releaseBuffers() { output.release(); gradInput.release() }
}
