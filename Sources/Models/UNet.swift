import Engine

/// The widely used PyTorch U-Net (mateuszbuda/brain-segmentation-pytorch, `unet.py`) with one input
/// channel: four encoder blocks (f, 2f, 4f, 8f; each conv3×3-BN-ReLU twice, convs without bias),
/// 2×2 max-pools, a 16f bottleneck, four ConvTranspose2d(k2, s2) upsamplings whose output is
/// concatenated with the encoder output of the same size, decoder blocks, and a 1×1 conv to K
/// heatmaps. f = 32 and K = 68 at 224×224: 7,764,676 parameters.
///
/// The original ends in `torch.sigmoid`; fkp returns raw heatmaps (the loss decides the scaling),
/// so there is no sigmoid here.
final class UNet: Module {
    let encoders: [Sequential]
    let pools: [Module]
    let bottleneck: Sequential
    /// upconvs[i] and decoders[i] are upconv(i+1) / decoder(i+1): index 0 is the full-resolution level.
    let upconvs: [Module]
    let decoders: [Sequential]
    let concats = (0 ..< 4).map { _ in ChannelConcat() }
    let conv: Module
    let macsPerImage: Int

    init(_ store: ParameterStore, features f: Int, outputs: Int, height: Int, width: Int, rng: RandomGenerator.Box) {
        pools = (0 ..< 4).map { _ in MaxPool2d(kernel: 2, stride: 2) }
        var macs = 0
        // Encoders first, then the bottleneck, upconvs and decoders from the deepest level up:
        // the declaration order of PyTorch's state_dict.
        var encoders: [Sequential] = []
        var inC = 1
        for level in 0 ..< 4 {
            let c = f << level
            let plane = (height >> level) * (width >> level)
            encoders.append(UNet.block(store, "encoder\(level + 1)", "enc\(level + 1)", inC, c, rng))
            macs += plane * 9 * (inC * c + c * c)
            inC = c
        }
        self.encoders = encoders
        let deepest = (height >> 4) * (width >> 4)
        bottleneck = UNet.block(store, "bottleneck", "bottleneck", 8 * f, 16 * f, rng)
        macs += deepest * 9 * (8 * f * 16 * f + 16 * f * 16 * f)
        var ups: [Module?] = Array(repeating: nil, count: 4)
        var decs: [Sequential?] = Array(repeating: nil, count: 4)
        for level in (0 ..< 4).reversed() {
            let c = f << level
            let plane = (height >> level) * (width >> level)
            ups[level] = ConvTranspose2d(store, "upconv\(level + 1)", 2 * c, c, kernel: 2, stride: 2, bias: true, rng: rng)
            decs[level] = UNet.block(store, "decoder\(level + 1)", "dec\(level + 1)", 2 * c, c, rng)
            macs += (plane / 4) * 2 * c * c * 4 + plane * 9 * (2 * c * c + c * c)
        }
        upconvs = ups.map { $0! }
        decoders = decs.map { $0! }
        conv = Conv2d(store, "conv", f, outputs, kernel: 1, rng: rng)
        macsPerImage = macs + height * width * f * outputs
    }

    /// `_block`: Sequential(OrderedDict) of {prefix}conv1, norm1, relu1, conv2, norm2, relu2. The
    /// ReLUs are fused into the BatchNorms (the modules remain for the printed summary).
    static func block(_ store: ParameterStore, _ name: String, _ prefix: String, _ inC: Int, _ c: Int,
                      _ rng: RandomGenerator.Box) -> Sequential {
        let layers: [(String, Module)] = [
            ("\(prefix)conv1", Conv2d(store, "\(name).\(prefix)conv1", inC, c, kernel: 3, padding: 1, bias: false, rng: rng)),
            ("\(prefix)norm1", BatchNorm2d(store, "\(name).\(prefix)norm1", c, fusedReLU: true)),
            ("\(prefix)relu1", ReLU(inplace: true, fusedIntoPrevious: true)),
            ("\(prefix)conv2", Conv2d(store, "\(name).\(prefix)conv2", c, c, kernel: 3, padding: 1, bias: false, rng: rng)),
            ("\(prefix)norm2", BatchNorm2d(store, "\(name).\(prefix)norm2", c, fusedReLU: true)),
            ("\(prefix)relu2", ReLU(inplace: true, fusedIntoPrevious: true)),
                ]
        return Sequential(named: layers)
    }

    var typeDescription: String { "UNet" }
    var children: [(name: String, module: Module)] {
        var kids: [(name: String, module: Module)] = []
        for level in 0 ..< 4 { kids += [("encoder\(level + 1)", encoders[level]), ("pool\(level + 1)", pools[level])] }
        kids.append(("bottleneck", bottleneck))
        for level in (0 ..< 4).reversed() { kids += [("upconv\(level + 1)", upconvs[level]), ("decoder\(level + 1)", decoders[level])] }
        kids.append(("conv", conv))
        return kids
    }

    func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        checkShape(x.h % 16 == 0 && x.w % 16 == 0, "UNet", "input \(x.shape): height and width must be multiples of 16")
        var skips: [Tensor] = []
        var h = x
        for level in 0 ..< 4 {
            let e = encoders[level](h, ctx)
            skips.append(e)
            h = pools[level](e, ctx)
        }
        h = bottleneck(h, ctx)
        for level in (0 ..< 4).reversed() {
            let up = upconvs[level](h, ctx)
            h = decoders[level](concats[level](up, skips[level], ctx), ctx)
        }
        return conv(h, ctx)
    }

    func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        var g = conv.gradient(dy, ctx)
        var skipGrads: [Tensor] = Array(repeating: g, count: 4)
        for level in 0 ..< 4 {
            let (dUp, dSkip) = concats[level].gradient(decoders[level].gradient(g, ctx), ctx)
            skipGrads[level] = dSkip
            g = upconvs[level].gradient(dUp, ctx)
        }
        g = bottleneck.gradient(g, ctx)
        // Each encoder output feeds its pool and (as the skip) its decoder: the gradients add.
        for level in (0 ..< 4).reversed() {
            g = pools[level].gradient(g, ctx)
            addInPlace(g, skipGrads[level], ctx)
            g = encoders[level].gradient(g, ctx)
        }
        return g
    }

    // forward's path through the levels; backward adds the skip gradients in place (no buffer).
    func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        var skips: [[Int]] = []
        var h = x
        for level in 0 ..< 4 {
            let e = encoders[level].plan(h, ledger)
            skips.append(e)
            h = pools[level].plan(e, ledger)
        }
        h = bottleneck.plan(h, ledger)
        for level in (0 ..< 4).reversed() {
            let up = upconvs[level].plan(h, ledger)
            h = decoders[level].plan(concats[level].planMemory(up, skips[level], ledger), ledger)
        }
        return conv.plan(h, ledger)
    }
}
