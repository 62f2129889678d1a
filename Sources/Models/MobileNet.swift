import Engine

/// mobilenet-pfld: torchvision's MobileNetV2 features on a one-channel input, narrowed by a width
/// multiplier, with the multi-scale regression head of PFLD (Guo et al. 2019): the global averages
/// of the features at strides 8, 16 and 32 are concatenated and one linear layer maps them to the
/// 2 × keypoints coordinates. State-dict names and printed repr are those of
/// Scripts/torch_models.py's MobileNetPFLD (torchvision's module names: features.i.conv.j...).
///
/// `ModelConfig.width` is the stem width w; the multiplier is w/32 (MobileNetV2's stem has 32
/// channels). Every stage's channels are c·w/32 rounded to a multiple of min(8, w) as torchvision's
/// `_make_divisible` does (min(8, w): the narrow test models stay narrow), and so is the last 1×1
/// convolution, 1280·w/32 (torchvision keeps 1280 below ×1; a landmark head does not need it).
/// The default w = 8 is the ×0.25 network PFLD uses: 207,256 parameters and 8.0 MMAC for a
/// 112×112 face with 68 keypoints. Any input of at least 32×32 works (every stride-2 layer rounds up).
///
///   features.0        Conv2dNormActivation: Conv2d(1, w, 3, s2, p1) + BatchNorm2d + ReLU6
///   features.1...17   InvertedResidual, stages (t, c, n, s) as in MobileNetV2
///   features.18       Conv2dNormActivation: Conv2d 1×1 + BatchNorm2d + ReLU6
///   avgpool, fc       cat(mean(features.6), mean(features.13), mean(features.18)) → Linear
final class MobileNetPFLD: Module {
    /// MobileNetV2's stages: expansion t, channels c (for w = 32), blocks n, stride s of the first block.
    static let stages: [(t: Int, c: Int, n: Int, s: Int)] = [
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    ]
    /// The feature layers whose outputs the head pools: the last ones at strides 8, 16 and 32.
    static let taps = [6, 13, 18]

    let features: Sequential
    let avgpool: Module
    /// One pooling module per tap (each owns its output); the first is the printed `avgpool`.
    let pools: [AdaptiveAvgPool2d]
    let concat = (ChannelConcat(), ChannelConcat())
    let flatten = Flatten()
    let fc: Linear
    let macsPerImage: Int

    init(_ store: ParameterStore, outputs: Int, width: Int, height h0: Int, width w0: Int, rng: RandomGenerator.Box) {
        let b = ConvBuilder(store, rng, height: h0, width: w0)
        let (layers, channels) = Self.features(b, width: width)
        precondition(Self.taps.last == layers.count - 1, "MobileNetPFLD: taps do not fit the layers")
        let tapped = Self.taps.map { channels[$0] }.reduce(0, +)
        features = Sequential(layers)
        pools = Self.taps.map { _ in AdaptiveAvgPool2d() }
        avgpool = pools[0]
        fc = Linear(store, "fc", tapped, outputs, rng: rng)
        macsPerImage = b.macs + tapped * outputs
    }

    /// MobileNetV2's 19 feature layers for stem width `width` on a one-channel input, and each
    /// layer's output channels. `stage6Stride` is the stride of the 160-channel stage (MobileNetV2:
    /// 2; 1 ends the features at stride 16 instead of 32).
    static func features(_ b: ConvBuilder, width: Int, stage6Stride: Int = 2) -> (layers: [Module], channels: [Int]) {
        let divisor = min(8, width)
        var layers: [Module] = [convNormActivation(b, "features.0", 1, width, kernel: 3, stride: 2)]
        var channels = [width]
        var inp = width
        for (index, (t, c, n, s)) in stages.enumerated() {
            let out = makeDivisible(Double(c * width) / 32, divisor)
            let stride = index == 5 ? stage6Stride : s
            for i in 0 ..< n {
                layers.append(InvertedResidual(b, "features.\(layers.count)", inp, out, stride: i == 0 ? stride : 1, expandRatio: t))
                channels.append(out)
                inp = out
            }
        }
        let last = makeDivisible(Double(1280 * width) / 32, divisor)
        layers.append(convNormActivation(b, "features.\(layers.count)", inp, last, kernel: 1, stride: 1))
        channels.append(last)
        return (layers, channels)
    }

    var typeDescription: String { "MobileNetPFLD" }
    var children: [(name: String, module: Module)] { [("features", features), ("avgpool", avgpool), ("fc", fc)] }

    // x: [N, 1, H, W] → [N, outputs]
    func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        var h = x
        var pooled: [Tensor] = []
        for (i, layer) in features.layers.enumerated() {
            h = layer(h, ctx)
            if let k = Self.taps.firstIndex(of: i) { pooled.append(pools[k](h, ctx)) }
        }
        // [N, C, 1, 1] in CNHW is C×N: concatenating channels appends, and Flatten gives [N, ΣC].
        let all = concat.1(concat.0(pooled[0], pooled[1], ctx), pooled[2], ctx)
        return fc(flatten(all, ctx), ctx)
    }

    func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        let (d01, d2) = concat.1.gradient(flatten.gradient(fc.gradient(dy, ctx), ctx), ctx)
        let (d0, d1) = concat.0.gradient(d01, ctx)
        let tapGradients = [d0, d1, d2]
        // Down the layers; at a tap, its pooled gradient joins the one coming from above (a tensor
        // the layer above owns and returned, so it may be added into).
        var g: Tensor?
        for (i, layer) in features.layers.enumerated().reversed() {
            if let k = Self.taps.firstIndex(of: i) {
                let d = pools[k].gradient(tapGradients[k], ctx)
                if let above = g { addInPlace(above, d, ctx) } else { g = d }
            }
            g = layer.gradient(g!, ctx)
            ctx.backwardProgress?(layer)
        }
        return g!
    }

    // forward's path; backward adds the taps' gradients in place (no buffer).
    func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        var h = x
        var pooled: [[Int]] = []
        for (i, layer) in features.layers.enumerated() {
            h = layer.plan(h, ledger)
            if let k = Self.taps.firstIndex(of: i) { pooled.append(pools[k].plan(h, ledger)) }
        }
        let all = concat.1.planMemory(concat.0.planMemory(pooled[0], pooled[1], ledger), pooled[2], ledger)
        return fc.plan(flatten.plan(all, ledger), ledger)
    }
}

/// MobileNetV2's block: 1×1 expansion to t·inp channels (when t > 1), depthwise 3×3 with the
/// stride, linear 1×1 projection (BatchNorm, no activation); out = x + block(x) when the stride is 1
/// and the channels stay the same. Children `conv.0...` as in torchvision.
final class InvertedResidual: Module {
    let conv: Sequential
    let useResidual: Bool
    let add = Add()

    init(_ b: ConvBuilder, _ name: String, _ inp: Int, _ oup: Int, stride: Int, expandRatio t: Int) {
        let hidden = inp * t
        useResidual = stride == 1 && inp == oup
        var layers: [Module] = []
        if t != 1 { layers.append(convNormActivation(b, "\(name).conv.0", inp, hidden, kernel: 1, stride: 1)) }
        let i = layers.count
        layers.append(Sequential(typeName: "Conv2dNormActivation", named: [
            ("0", b.depthwise("\(name).conv.\(i).0", hidden, stride: stride)),
            ("1", BatchNorm2d(b.store, "\(name).conv.\(i).1", hidden, fusedReLU6: true)),
            ("2", ReLU(cap: 6, inplace: true, fusedIntoPrevious: true)),
        ]))
        layers.append(b.conv("\(name).conv.\(i + 1)", hidden, oup, kernel: 1, stride: 1, padding: 0))
        layers.append(b.bn("\(name).conv.\(i + 2)", oup))
        conv = Sequential(layers)
    }

    var typeDescription: String { "InvertedResidual" }
    var children: [(name: String, module: Module)] { [("conv", conv)] }

    func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        let out = conv(x, ctx)
        return useResidual ? add(x, out, ctx) : out
    }

    // The block's returned input gradient is its first convolution's (owned), + dy on the identity path.
    func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        let g = useResidual ? add.gradient(dy, ctx) : dy
        let dx = conv.gradient(g, ctx)
        if useResidual { addInPlace(dx, g, ctx) }
        return dx
    }

    func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        let out = conv.plan(x, ledger)
        return useResidual ? add.planMemory(x, out, ledger) : out
    }

    func releaseBuffers() { releaseChildren(); add.releaseBuffers() }
}

/// torchvision's Conv2dNormActivation as MobileNetV2 uses it: bias-free convolution (padding
/// (k − 1)/2), BatchNorm2d, ReLU6 (fused into the BatchNorm: one pass over the activations less
/// forward and backward; the module stays for the printed summary).
func convNormActivation(_ b: ConvBuilder, _ name: String, _ inC: Int, _ outC: Int, kernel: Int, stride: Int) -> Module {
    Sequential(typeName: "Conv2dNormActivation", named: [
        ("0", b.conv("\(name).0", inC, outC, kernel: kernel, stride: stride, padding: (kernel - 1) / 2)),
        ("1", BatchNorm2d(b.store, "\(name).1", outC, fusedReLU6: true)),
        ("2", ReLU(cap: 6, inplace: true, fusedIntoPrevious: true)),
    ])
}

/// torchvision's `_make_divisible`: the nearest multiple of `divisor` (at least `divisor`), moved up
/// one step when rounding down would lose more than 10 % of `v`.
func makeDivisible(_ v: Double, _ divisor: Int) -> Int {
    let rounded = max(divisor, Int(v + Double(divisor) / 2) / divisor * divisor)
    return Double(rounded) < 0.9 * v ? rounded + divisor : rounded
}

extension ModelZoo {
    static func mobileNetPFLD(_ config: ModelConfig) throws -> Network {
        guard config.inputHeight >= 32, config.inputWidth >= 32 else {
            throw ModelError.invalidConfig("\(config.name) needs an input of at least 32×32, got \(config.inputHeight)×\(config.inputWidth)")
        }
        let store = ParameterStore()
        let rng = RandomGenerator.Box(seed: config.seed)
        let root = MobileNetPFLD(store, outputs: config.outputs, width: config.width ?? 8,
                                 height: config.inputHeight, width: config.inputWidth, rng: rng)
        skipInputGradient(root)
        return Network(config: config, store: store, root: root, macsPerImage: root.macsPerImage, blocks: root.features.layers)
    }
}
