import Engine

/// torchvision's ResNet (v1.5: the stride sits on the 3×3 convolution of a Bottleneck) with a
/// one-channel stem: conv1 = Conv2d(1, w, 7, s2, p3, bias=False), bn1, relu, maxpool(3, 2, 1),
/// layer1...layer4, global average pool, fc. State-dict names and printed repr are torchvision's.
///
/// Every ReLU that follows a BatchNorm or the residual add is fused into it (BatchNorm2d /
/// Add with `fusedReLU`); the `relu` modules stay in the tree only so that the summary prints
/// what PyTorch prints (torchvision's blocks, too, reuse one `relu` module several times).
final class ResNet: Module {
    enum BlockKind { case basic, bottleneck
        var expansion: Int { self == .basic ? 1 : 4 }
    }

    let conv1: Conv2d
    let bn1: BatchNorm2d
    let relu, maxpool, avgpool, flatten, fc: Module
    let layers: [Sequential]
    let macsPerImage: Int

    init(_ store: ParameterStore, kind: BlockKind, blocks: [Int], outputs: Int, width: Int,
         height h0: Int, width w0: Int, rng: RandomGenerator.Box) {
        let b = ConvBuilder(store, rng, height: h0, width: w0)
        conv1 = b.conv("conv1", 1, width, kernel: 7, stride: 2, padding: 3)
        bn1 = b.bn("bn1", width, fusedReLU: true)
        ConvEpilogue.foldAtInference(conv1, bn1)
        relu = b.relu()
        maxpool = MaxPool2d(kernel: 3, stride: 2, padding: 1)
        b.pool(kernel: 3, stride: 2, padding: 1)
        var inplanes = width
        var built: [Sequential] = []
        for (i, count) in blocks.enumerated() {
            let planes = width << i
            var stage: [Module] = []
            for j in 0 ..< count {
                let name = "layer\(i + 1).\(j)", stride = (i > 0 && j == 0) ? 2 : 1
                let downsample = j == 0 && (stride != 1 || inplanes != planes * kind.expansion)
                switch kind {
                case .basic: stage.append(BasicBlock(b, name, inplanes, planes, stride: stride, downsample: downsample))
                case .bottleneck: stage.append(Bottleneck(b, name, inplanes, planes, stride: stride, downsample: downsample))
                }
                inplanes = planes * kind.expansion
            }
            built.append(Sequential(stage))
        }
        layers = built
        avgpool = AdaptiveAvgPool2d()
        flatten = Flatten()
        fc = Linear(store, "fc", inplanes, outputs, rng: rng)
        macsPerImage = b.macs + inplanes * outputs
    }

    var typeDescription: String { "ResNet" }
    var children: [(name: String, module: Module)] {
        [("conv1", conv1), ("bn1", bn1), ("relu", relu), ("maxpool", maxpool)]
            + layers.enumerated().map { ("layer\($0.offset + 1)", $0.element) }
            + [("avgpool", avgpool), ("fc", fc)]
    }

    func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        var h = maxpool(bn1(conv1(x, ctx), ctx), ctx)
        for layer in layers { h = layer(h, ctx) }
        return fc(flatten(avgpool(h, ctx), ctx), ctx)
    }

    func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        var g = avgpool.gradient(flatten.gradient(fc.gradient(dy, ctx), ctx), ctx)
        for layer in layers.reversed() { g = layer.gradient(g, ctx) }
        return conv1.gradient(bn1.gradient(maxpool.gradient(g, ctx), ctx), ctx)
    }

    func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        var h = maxpool.plan(bn1.plan(conv1.plan(x, ledger), ledger), ledger)
        for layer in layers { h = layer.plan(h, ledger) }
        return fc.plan(flatten.plan(avgpool.plan(h, ledger), ledger), ledger)
    }
}

/// Two 3×3 convolutions; out = relu(bn2(conv2(relu(bn1(conv1(x))))) + identity).
final class BasicBlock: Module {
    let conv1, conv2: Conv2d
    let bn1, bn2: BatchNorm2d
    let relu: Module
    let downsample: Sequential?
    let add = Add(fusedReLU: true)

    init(_ b: ConvBuilder, _ name: String, _ inplanes: Int, _ planes: Int, stride: Int, downsample: Bool) {
        let (h, w) = (b.height, b.width)
        conv1 = b.conv("\(name).conv1", inplanes, planes, kernel: 3, stride: stride, padding: 1)
        bn1 = b.bn("\(name).bn1", planes, fusedReLU: true)
        relu = b.relu()
        conv2 = b.conv("\(name).conv2", planes, planes, kernel: 3, stride: 1, padding: 1)
        bn2 = b.bn("\(name).bn2", planes)
        ConvEpilogue.foldAtInference(conv1, bn1)
        ConvEpilogue.foldAtInference(conv2, bn2)
        self.downsample = downsample ? b.downsample(name, inplanes, planes, stride: stride, from: (h, w)) : nil
    }

    var typeDescription: String { "BasicBlock" }
    var children: [(name: String, module: Module)] {
        [("conv1", conv1), ("bn1", bn1), ("relu", relu), ("conv2", conv2), ("bn2", bn2)]
            + (downsample.map { [("downsample", $0)] } ?? [])
    }

    func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        let identity = downsample?(x, ctx) ?? x
        let out = bn1(conv1(x, ctx), ctx)
        // At inference conv2 applies bn2, this Add and its ReLU in its epilogue (ConvEpilogue.swift).
        if conv2.addsResidualInNextForward(identity, relu: add.fusedReLU, ctx) { return bn2(conv2(out, ctx), ctx) }
        return add(bn2(conv2(out, ctx), ctx), identity, ctx)
    }

    func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        let g = add.gradient(dy, ctx)
        let dx = conv1.gradient(bn1.gradient(conv2.gradient(bn2.gradient(g, ctx), ctx), ctx), ctx)
        addInPlace(dx, downsample?.gradient(g, ctx) ?? g, ctx)
        return dx
    }

    func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        let identity = downsample?.plan(x, ledger) ?? x
        let out = bn2.plan(conv2.plan(bn1.plan(conv1.plan(x, ledger), ledger), ledger), ledger)
        return add.planMemory(out, identity, ledger)
    }

    func releaseBuffers() { releaseChildren(); add.releaseBuffers() }
}

/// 1×1 reduce, 3×3 (with the stride), 1×1 expand (×4); out = relu(bn3(conv3(...)) + identity).
final class Bottleneck: Module {
    let conv1, conv2, conv3: Conv2d
    let bn1, bn2, bn3: BatchNorm2d
    let relu: Module
    let downsample: Sequential?
    let add = Add(fusedReLU: true)

    init(_ b: ConvBuilder, _ name: String, _ inplanes: Int, _ planes: Int, stride: Int, downsample: Bool) {
        let (h, w) = (b.height, b.width)
        conv1 = b.conv("\(name).conv1", inplanes, planes, kernel: 1, stride: 1, padding: 0)
        bn1 = b.bn("\(name).bn1", planes, fusedReLU: true)
        conv2 = b.conv("\(name).conv2", planes, planes, kernel: 3, stride: stride, padding: 1)
        bn2 = b.bn("\(name).bn2", planes, fusedReLU: true)
        conv3 = b.conv("\(name).conv3", planes, planes * 4, kernel: 1, stride: 1, padding: 0)
        bn3 = b.bn("\(name).bn3", planes * 4)
        for (conv, bn) in [(conv1, bn1), (conv2, bn2), (conv3, bn3)] { ConvEpilogue.foldAtInference(conv, bn) }
        relu = b.relu()
        self.downsample = downsample ? b.downsample(name, inplanes, planes * 4, stride: stride, from: (h, w)) : nil
    }

    var typeDescription: String { "Bottleneck" }
    var children: [(name: String, module: Module)] {
        [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2), ("conv3", conv3), ("bn3", bn3), ("relu", relu)]
            + (downsample.map { [("downsample", $0)] } ?? [])
    }

    func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        let identity = downsample?(x, ctx) ?? x
        var out = bn1(conv1(x, ctx), ctx)
        out = bn2(conv2(out, ctx), ctx)
        // At inference conv3 applies bn3, this Add and its ReLU in its epilogue (ConvEpilogue.swift).
        if conv3.addsResidualInNextForward(identity, relu: add.fusedReLU, ctx) { return bn3(conv3(out, ctx), ctx) }
        out = bn3(conv3(out, ctx), ctx)
        return add(out, identity, ctx)
    }

    func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        let g = add.gradient(dy, ctx)
        var d = conv3.gradient(bn3.gradient(g, ctx), ctx)
        d = conv2.gradient(bn2.gradient(d, ctx), ctx)
        let dx = conv1.gradient(bn1.gradient(d, ctx), ctx)
        addInPlace(dx, downsample?.gradient(g, ctx) ?? g, ctx)
        return dx
    }

    func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        let identity = downsample?.plan(x, ledger) ?? x
        var out = bn1.plan(conv1.plan(x, ledger), ledger)
        out = bn2.plan(conv2.plan(out, ledger), ledger)
        out = bn3.plan(conv3.plan(out, ledger), ledger)
        return add.planMemory(out, identity, ledger)
    }

    func releaseBuffers() { releaseChildren(); add.releaseBuffers() }
}

/// Declares bias-free convolutions with torchvision's ResNet initialisation
/// (kaiming_normal_, mode="fan_out", nonlinearity="relu": N(0, 2 / (Cout·k·k))) and tracks the
/// feature-map size to count multiply-accumulates.
final class ConvBuilder {
    let store: ParameterStore
    let rng: RandomGenerator.Box
    private(set) var height, width: Int
    private(set) var macs = 0

    init(_ store: ParameterStore, _ rng: RandomGenerator.Box, height: Int, width: Int) {
        self.store = store; self.rng = rng; self.height = height; self.width = width
    }

    func bn(_ name: String, _ channels: Int, fusedReLU: Bool = false) -> BatchNorm2d {
        BatchNorm2d(store, name, channels, fusedReLU: fusedReLU)
    }

    /// The printed `ReLU(inplace=True)`: its work is done by the fused BatchNorm / Add before it.
    func relu() -> Module { ReLU(inplace: true, fusedIntoPrevious: true) }

    func conv(_ name: String, _ inC: Int, _ outC: Int, kernel: Int, stride: Int, padding: Int) -> Conv2d {
        let std = (2 / Float(outC * kernel * kernel)).squareRoot()
        let conv = Conv2d(store, name, inC, outC, kernel: kernel, stride: stride, padding: padding, bias: false,
                          rng: rng, weightInit: Initializer.normal(std: std, rng))
        height = windowOutput(height, kernel: kernel, stride: stride, padding: padding)
        width = windowOutput(width, kernel: kernel, stride: stride, padding: padding)
        macs += height * width * outC * inC * kernel * kernel
        return conv
    }

    /// A bias-free depthwise 3×3 convolution (MobileNet), same initialisation: PyTorch's fan_out
    /// of a [C, 1, 3, 3] weight is C·9.
    func depthwise(_ name: String, _ channels: Int, stride: Int) -> Module {
        let std = (2 / Float(channels * 9)).squareRoot()
        let conv = DepthwiseConv2d(store, name, channels, stride: stride, bias: false, rng: rng,
                                   weightInit: Initializer.normal(std: std, rng))
        macs += conv.macs(height: height, width: width)
        height = windowOutput(height, kernel: 3, stride: stride, padding: 1)
        width = windowOutput(width, kernel: 3, stride: stride, padding: 1)
        return conv
    }

    func pool(kernel: Int, stride: Int, padding: Int) {
        height = windowOutput(height, kernel: kernel, stride: stride, padding: padding)
        width = windowOutput(width, kernel: kernel, stride: stride, padding: padding)
    }

    /// `name.downsample` = Sequential(conv1x1 with the block's stride, BatchNorm2d) on the block's input.
    func downsample(_ name: String, _ inC: Int, _ outC: Int, stride: Int, from input: (Int, Int)) -> Sequential {
        let std = (2 / Float(outC)).squareRoot()
        let conv = Conv2d(store, "\(name).downsample.0", inC, outC, kernel: 1, stride: stride, bias: false,
                          rng: rng, weightInit: Initializer.normal(std: std, rng))
        macs += windowOutput(input.0, kernel: 1, stride: stride) * windowOutput(input.1, kernel: 1, stride: stride) * inC * outC
        return Sequential([conv, bn("\(name).downsample.1", outC)])
    }
}
