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
    let concats: [ChannelConcat]
    /// Each level as one Sequential: downs[i] = encoder, skip tap, pool; ups[i] = upconv, skip
    /// concatenation, decoder (the blocks of `--recompute blocks`; not printed).
    let downs: [Sequential], ups: [Sequential]
    let conv: Module
    let macsPerImage: Int

    init(_ store: ParameterStore, features f: Int, outputs: Int, height: Int, width: Int, rng: RandomGenerator.Box) {
        let pools: [Module] = (0 ..< 4).map { _ in MaxPool2d(kernel: 2, stride: 2) }
        self.pools = pools
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
        var upconvs: [Module?] = Array(repeating: nil, count: 4)
        var decoders: [Sequential?] = Array(repeating: nil, count: 4)
        for level in (0 ..< 4).reversed() {
            let c = f << level
            let plane = (height >> level) * (width >> level)
            upconvs[level] = ConvTranspose2d(store, "upconv\(level + 1)", 2 * c, c, kernel: 2, stride: 2, bias: true, rng: rng)
            decoders[level] = UNet.block(store, "decoder\(level + 1)", "dec\(level + 1)", 2 * c, c, rng)
            macs += (plane / 4) * 2 * c * c * 4 + plane * 9 * (2 * c * c + c * c)
        }
        self.upconvs = upconvs.map { $0! }
        self.decoders = decoders.map { $0! }
        let concats = (0 ..< 4).map { _ in ChannelConcat() }
        self.concats = concats
        let skips = (0 ..< 4).map { _ in Skip() }
        downs = (0 ..< 4).map { level in
            Sequential(named: [("encoder", encoders[level]), ("skip", SkipTap(skips[level])), ("pool", pools[level])])
        }
        ups = (0 ..< 4).map { level in
            Sequential(named: [("upconv", upconvs[level]!), ("skip", SkipConcat(concats[level], skips[level])), ("decoder", decoders[level]!)])
        }
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
        var h = x
        for level in 0 ..< 4 { h = downs[level](h, ctx) }
        h = bottleneck(h, ctx)
        for level in (0 ..< 4).reversed() { h = ups[level](h, ctx) }
        return conv(h, ctx)
    }

    // Each encoder output feeds its pool and (as the skip) its decoder: the skip's tap adds the
    // two gradients, in place into the pool's input gradient.
    func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        var g = conv.gradient(dy, ctx)
        for level in 0 ..< 4 { g = ups[level].gradient(g, ctx) }
        g = bottleneck.gradient(g, ctx)
        for level in (0 ..< 4).reversed() { g = downs[level].gradient(g, ctx) }
        return g
    }

    func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        var h = x
        for level in 0 ..< 4 { h = downs[level].plan(h, ledger) }
        h = bottleneck.plan(h, ledger)
        for level in (0 ..< 4).reversed() { h = ups[level].plan(h, ledger) }
        return conv.plan(h, ledger)
    }
}

/// A U-Net level's skip connection, shared by its two ends: `SkipTap` after the encoder keeps the
/// encoder output and adds its gradient in backward; `SkipConcat` before the decoder reads it and
/// leaves its gradient. Both ends are one-input modules, so that a whole level, from encoder to
/// pool and from up-convolution to decoder, is a `Sequential` that `--recompute blocks` can
/// recompute as one block. Not in the printed tree: PyTorch's U-Net writes this in `forward`.
final class Skip {
    /// The encoder output, or, when the level's buffers are freed between forward and backward
    /// (recomputation), a copy of it.
    fileprivate var output: Tensor?
    fileprivate let keptOutput = Tensor(shape: [0])
    /// dL/dskip of the last backward (the concatenation's buffer, or a copy when recomputed).
    fileprivate var gradient: Tensor?
    fileprivate let keptGradient = Tensor(shape: [0])
    /// The skip's shape, for the plan.
    fileprivate var plannedShape: [Int] = []

    /// `tensor`, or, with `--recompute blocks` (every level is a block, and the layer that owns
    /// `tensor` is freed at the block's end), a copy.
    fileprivate static func keep(_ tensor: Tensor, in copy: Tensor, _ ctx: Context) -> Tensor {
        guard ctx.recomputation != nil else { return tensor }
        Tensor.outsideBlockArena { copy.resize(tensor.shape) }   // it outlives the block
        copy.copy(from: tensor)
        return copy
    }
}

/// Identity after a level's encoder: keeps its output as the skip; backward adds the skip's gradient.
final class SkipTap: Module {
    let skip: Skip
    init(_ skip: Skip) { self.skip = skip }
    var typeDescription: String { "SkipTap" }

    func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        skip.output = Skip.keep(x, in: skip.keptOutput, ctx)
        return x
    }

    // dy is the pool's input gradient (a buffer the pool owns): the skip's gradient adds into it.
    // (A leaf: `fkp bench train --profile` records this as SkipTap, so the add is not timed again.)
    func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        guard let dSkip = skip.gradient else { preconditionFailure("SkipTap: backward before the decoder's") }
        addInPlace(dy, dSkip)
        return dy
    }

    // Recomputed, the copy of the skip outlives the level (it is recorded outside the block).
    func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        skip.plannedShape = x
        if ledger.isInsideRecomputedBlock { ledger.outermost.keep(.output, floats: Tensor.elementCount(x), "SkipTap (recomputed): the skip's copy") }
        return x
    }
}

/// cat(x, skip) before a level's decoder; backward returns dL/dx and leaves dL/dskip in the skip.
final class SkipConcat: Module {
    let concat: ChannelConcat, skip: Skip
    init(_ concat: ChannelConcat, _ skip: Skip) { self.concat = concat; self.skip = skip }
    var typeDescription: String { "SkipConcat" }

    func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        guard let output = skip.output else { preconditionFailure("SkipConcat: forward before the encoder's") }
        return concat.forward(x, output, ctx)   // a leaf: the profile records it as SkipConcat
    }

    func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        let (dx, dSkip) = concat.backward(dy, ctx)
        skip.gradient = Skip.keep(dSkip, in: skip.keptGradient, ctx)
        return dx
    }

    func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        let out = concat.planMemory(x, skip.plannedShape, ledger)
        if ledger.isInsideRecomputedBlock {
            ledger.outermost.keep(.gradient, floats: Tensor.elementCount(skip.plannedShape), "SkipConcat (recomputed): the skip's gradient copy")
        }
        return out
    }

    func releaseBuffers() { concat.releaseBuffers() }
}
