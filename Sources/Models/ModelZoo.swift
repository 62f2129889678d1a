import Engine

/// The models fkp knows by name.
public enum ModelZoo {
    public static let names = ["nosenet", "facenet", "resnet18", "resnet34", "resnet50", "unet"]

    /// Builds and initialises a model (weights drawn from `config.seed`). `dropout` overrides the
    /// dropout probability of models that have dropout (facenet: 0.5); the reference tests pass 0.
    /// With a `profile`, every layer records its forward and backward time there (benchmarks).
    public static func make(_ config: ModelConfig, dropout: Float? = nil, profile: LayerProfile? = nil) throws -> Network {
        guard names.contains(config.name) else { throw ModelError.unknownModel(config.name) }
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
        switch config.name {
        case "nosenet": return try SmallNets.noseNet(config, profile: profile)
        case "facenet": return try SmallNets.faceNet(config, dropout: dropout ?? 0.5, profile: profile)
        case "unet": return try unet(config, profile: profile)
        default: return try resnet(config, profile: profile)
        }
    }

    /// The standard configuration of a model for `keypoints` landmarks: regression models predict
    /// 2 × keypoints numbers, the U-Net one heatmap per keypoint.
    public static func defaultConfig(_ name: String, keypoints: Int) -> ModelConfig {
        switch name {
        case "nosenet": return ModelConfig(name: name, outputs: 2 * keypoints, inputHeight: 60, inputWidth: 80)
        case "facenet": return ModelConfig(name: name, outputs: 2 * keypoints, inputHeight: 120, inputWidth: 160)
        case "unet": return ModelConfig(name: name, outputs: keypoints, inputHeight: 224, inputWidth: 224, width: 32)
        default: return ModelConfig(name: name, outputs: 2 * keypoints, inputHeight: 224, inputWidth: 224, width: 64)
        }
    }

    /// The number of keypoints each model predicts by default (nosenet: the nose tip; facenet: 58;
    /// ResNets and U-Net: the 68-point iBUG markup).
    public static func defaultKeypoints(_ name: String) -> Int {
        switch name {
        case "nosenet": return 1
        case "facenet": return 58
        default: return 68
        }
    }

    private static func resnet(_ config: ModelConfig, profile: LayerProfile?) throws -> Network {
        let (kind, blocks): (ResNet.BlockKind, [Int]) = switch config.name {
        case "resnet18": (.basic, [2, 2, 2, 2])
        case "resnet34": (.basic, [3, 4, 6, 3])
        default: (.bottleneck, [3, 4, 6, 3])
        }
        guard config.inputHeight >= 32, config.inputWidth >= 32 else {
            throw ModelError.invalidConfig("\(config.name) needs an input of at least 32×32, got \(config.inputHeight)×\(config.inputWidth)")
        }
        let store = ParameterStore()
        let rng = RandomGenerator.Box(seed: config.seed)
        let root = ResNet(store, kind: kind, blocks: blocks, outputs: config.outputs, width: config.width ?? 64,
                          height: config.inputHeight, width: config.inputWidth, rng: rng, profile: profile)
        skipInputGradient(root)
        return Network(config: config, store: store, root: root, outputKind: .regression(count: config.outputs),
                       macsPerImage: root.macsPerImage)
    }

    private static func unet(_ config: ModelConfig, profile: LayerProfile?) throws -> Network {
        guard config.inputHeight % 16 == 0, config.inputWidth % 16 == 0 else {
            throw ModelError.invalidConfig("unet needs height and width divisible by 16, got \(config.inputHeight)×\(config.inputWidth)")
        }
        let store = ParameterStore()
        let rng = RandomGenerator.Box(seed: config.seed)
        let root = UNet(store, features: config.width ?? 32, outputs: config.outputs,
                        height: config.inputHeight, width: config.inputWidth, rng: rng, profile: profile)
        skipInputGradient(root)
        return Network(config: config, store: store, root: root,
                       outputKind: .heatmaps(channels: config.outputs, height: config.inputHeight, width: config.inputWidth),
                       macsPerImage: root.macsPerImage)
    }
}
