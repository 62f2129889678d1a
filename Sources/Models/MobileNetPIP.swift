import Engine

/// mobilenet-pip: PIPNet (Jin et al. 2021, "Pixel-in-Pixel Net") on MobileNetV2 features. For K
/// keypoints on the feature map's grid, five 1×1 convolutions predict each keypoint's score map
/// (`cls_layer`: which cell holds it), its x and y offset inside that cell (`x_layer`, `y_layer`),
/// and, from the same cell, the offsets of its M nearest neighbours in the mean shape (`nb_x_layer`,
/// `nb_y_layer`); `PIPHead` builds the targets, the loss and the neighbour-averaged decoding. The
/// five maps are returned concatenated along the channels:
///   [N, 1, H, W] → features [N, C, H/16, W/16] → [N, K | K | K | K·M | K·M, H/16, W/16]
/// The features are MobileNetV2's (`MobileNetPFLD.features`, stem width `width`) with the
/// 160-channel stage at stride 1, so the grid is at stride 16: 8×8 cells for a 128×128 face, the
/// grid PIPNet uses on 300-W (stride 32 at 256²); its author found 2×2 maps far too coarse. The
/// heads start as PIPNet's: weights normal(0, 0.001), biases 0. State-dict names and the printed
/// repr are those of Scripts/torch_models.py's MobileNetPIP.
final class MobileNetPIP: Module {
    static let headNames = ["cls_layer", "x_layer", "y_layer", "nb_x_layer", "nb_y_layer"]

    let features: Sequential
    let heads: [Module]
    let concats = (0 ..< 4).map { _ in ChannelConcat() }
    let macsPerImage: Int

    init(_ store: ParameterStore, keypoints k: Int, neighbours m: Int, width: Int, height h0: Int, width w0: Int,
         rng: RandomGenerator.Box) {
        let b = ConvBuilder(store, rng, height: h0, width: w0)
        let (layers, channels) = MobileNetPFLD.features(b, width: width, stage6Stride: 1)
        features = Sequential(layers)
        let c = channels.last!
        let counts = [k, k, k, k * m, k * m]
        heads = zip(Self.headNames, counts).map { name, outputs in
            Conv2d(store, name, c, outputs, kernel: 1, bias: true, rng: rng, weightInit: Initializer.normal(std: 0.001, rng),
                   biasInit: Initializer.constant(0))
        }
        macsPerImage = b.macs + b.height * b.width * c * counts.reduce(0, +)
    }

    var typeDescription: String { "MobileNetPIP" }
    var children: [(name: String, module: Module)] {
        [("features", features)] + zip(Self.headNames, heads).map { ($0, $1) }
    }

    // x: [N, 1, H, W] → [N, K(3 + 2M), H/16, W/16]
    func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        let h = features(x, ctx)
        var out = heads[0](h, ctx)
        for (i, head) in heads.dropFirst().enumerated() { out = concats[i](out, head(h, ctx), ctx) }
        return out
    }

    // The features' gradient is the sum of the five heads' input gradients.
    func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        var parts: [Tensor] = []
        var rest = dy
        for concat in concats.reversed() {
            let (front, last) = concat.gradient(rest, ctx)
            parts.append(last)
            rest = front
        }
        parts.append(rest)
        parts.reverse()
        let g = heads[0].gradient(parts[0], ctx)
        for i in 1 ..< heads.count { addInPlace(g, heads[i].gradient(parts[i], ctx), ctx) }
        ctx.backwardProgress?(heads[0])
        return features.gradient(g, ctx)
    }

    // forward's path; backward adds the heads' input gradients in place (no buffer).
    func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        let h = features.plan(x, ledger)
        var out = heads[0].plan(h, ledger)
        for (i, head) in heads.dropFirst().enumerated() { out = concats[i].planMemory(out, head.plan(h, ledger), ledger) }
        return out
    }
}

extension ModelZoo {
    static func mobileNetPIP(_ config: ModelConfig) throws -> Network {
        guard config.inputHeight >= 32, config.inputWidth >= 32 else {
            throw ModelError.invalidConfig("\(config.name) needs an input of at least 32×32, got \(config.inputHeight)×\(config.inputWidth)")
        }
        let (k, m) = try PIPLayout.split(outputs: config.outputs)
        let store = ParameterStore()
        let rng = RandomGenerator.Box(seed: config.seed)
        let root = MobileNetPIP(store, keypoints: k, neighbours: m, width: config.width ?? 32,
                                height: config.inputHeight, width: config.inputWidth, rng: rng)
        skipInputGradient(root)
        return Network(config: config, store: store, root: root, macsPerImage: root.macsPerImage, blocks: root.features.layers)
    }
}

/// How a PIPNet output's channels are laid out for K keypoints with M neighbours each: K·(3 + 2M)
/// channels, [scores K | x K | y K | neighbour x K·M | neighbour y K·M]. M is PIPNet's 10, or K − 1
/// when there are fewer keypoints.
public enum PIPLayout {
    /// Input pixels per grid cell (`MobileNetPIP`'s feature stride).
    public static let stride = 16
    /// Grid cells along a crop side: every stride-2 layer of the backbone rounds up.
    public static func cells(_ side: Int) -> Int { (side + stride - 1) / stride }
    public static func neighbours(keypoints k: Int) -> Int { max(0, min(10, k - 1)) }
    public static func outputs(keypoints k: Int) -> Int { k * (3 + 2 * neighbours(keypoints: k)) }

    /// (K, M) from an output channel count.
    public static func split(outputs: Int) throws -> (keypoints: Int, neighbours: Int) {
        for k in 1 ... max(1, outputs / 3) where Self.outputs(keypoints: k) == outputs { return (k, neighbours(keypoints: k)) }
        throw ModelError.invalidConfig("\(outputs) outputs are no PIPNet layout K·(3 + 2·min(10, K − 1))")
    }
}
