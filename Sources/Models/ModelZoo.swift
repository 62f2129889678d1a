import Engine

/// The models fkp knows by name (the table is `ModelSpec.all`).
public enum ModelZoo {
    public static var names: [String] { ModelSpec.names }
    /// The largest model `make` builds, relative to its standard configuration (see `make`).
    public static let maxCostFactor = 64.0
    public static let maxOutputs = 4096

    /// The table entry of `name`, or the error that lists the known models.
    public static func spec(_ name: String) throws -> ModelSpec {
        guard let spec = ModelSpec.named(name) else { throw ModelError.unknownModel(name) }
        return spec
    }

    /// Builds and initialises a model (weights drawn from `config.seed`). `dropout` overrides the
    /// dropout probability of models that have dropout (facenet: 0.5); the reference tests pass 0.
    public static func make(_ config: ModelConfig, dropout: Float? = nil) throws -> Network {
        let spec = try spec(config.name)
        guard config.outputs > 0 else { throw ModelError.invalidConfig("\(config.name): outputs must be positive, got \(config.outputs)") }
        guard config.inputHeight > 0, config.inputWidth > 0 else {
            throw ModelError.invalidConfig("\(config.name): input size \(config.inputHeight)×\(config.inputWidth)")
        }
        if let dropout, !(0 ... 1).contains(dropout) {
            throw ModelError.invalidConfig("dropout probability \(dropout) is outside [0, 1]")
        }
        if let width = config.width, width <= 0 {
            throw ModelError.invalidConfig("\(config.name): width must be positive, got \(width)")
        }
        // A checkpoint's metadata chooses the configuration, so it is untrusted input: a facenet
        // claiming a 60000x60000 input asked for 920 GB here. Buffers grow with the input area and
        // parameters with the width squared; anything over 64 times the standard configuration's
        // cost (8x its input side, say) or over 4096 outputs is refused before allocating.
        let area = Double(config.inputHeight) * Double(config.inputWidth) / Double(spec.inputHeight * spec.inputWidth)
        let widen = Double(config.width ?? 1) / Double(spec.width ?? 1)
        guard area * max(1, widen * widen) <= ModelZoo.maxCostFactor, config.outputs <= ModelZoo.maxOutputs else {
            throw ModelError.invalidConfig("\(config.name): input \(config.inputHeight)x\(config.inputWidth)"
                + "\(config.width.map { ", width \($0)" } ?? ""), \(config.outputs) outputs is too large (at most "
                + "\(Int(ModelZoo.maxCostFactor))x the cost of its standard \(spec.inputHeight)x\(spec.inputWidth)"
                + "\(spec.width.map { ", width \($0)" } ?? "") and \(ModelZoo.maxOutputs) outputs)")
        }
        return try spec.build(config, dropout)
    }

    /// The standard configuration of a model for `keypoints` landmarks: regression models predict
    /// 2 × keypoints numbers, the U-Net one heatmap per keypoint.
    public static func defaultConfig(_ name: String, keypoints: Int) throws -> ModelConfig {
        try spec(name).defaultConfig(keypoints: keypoints)
    }

    /// The number of keypoints a model predicts by default (nosenet: the nose tip; facenet: 58;
    /// ResNets and U-Net: the 68-point iBUG markup).
    public static func defaultKeypoints(_ name: String) throws -> Int { try spec(name).keypoints }

    static func resnet(_ config: ModelConfig, kind: ResNet.BlockKind, blocks: [Int]) throws -> Network {
        guard config.inputHeight >= 32, config.inputWidth >= 32 else {
            throw ModelError.invalidConfig("\(config.name) needs an input of at least 32×32, got \(config.inputHeight)×\(config.inputWidth)")
        }
        let store = ParameterStore()
        let rng = RandomGenerator.Box(seed: config.seed)
        let root = ResNet(store, kind: kind, blocks: blocks, outputs: config.outputs, width: config.width ?? 64,
                          height: config.inputHeight, width: config.inputWidth, rng: rng)
        skipInputGradient(root)
        return Network(config: config, store: store, root: root, macsPerImage: root.macsPerImage,
                       blocks: root.layers.flatMap(\.layers))
    }

    static func unet(_ config: ModelConfig) throws -> Network {
        guard config.inputHeight % 16 == 0, config.inputWidth % 16 == 0 else {
            throw ModelError.invalidConfig("unet needs height and width divisible by 16, got \(config.inputHeight)×\(config.inputWidth)")
        }
        let store = ParameterStore()
        let rng = RandomGenerator.Box(seed: config.seed)
        let root = UNet(store, features: config.width ?? 32, outputs: config.outputs,
                        height: config.inputHeight, width: config.inputWidth, rng: rng)
        skipInputGradient(root)
        return Network(config: config, store: store, root: root, macsPerImage: root.macsPerImage,
                       blocks: root.downs + [root.bottleneck] + root.ups)
    }
}
