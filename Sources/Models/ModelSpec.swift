import Engine

/// What a model predicts: coordinates directly, one heatmap per keypoint, or PIPNet's score,
/// offset and neighbour maps on a coarse grid. The raw values are the ones checkpoints store in
/// their configuration ("regression", "heatmap", "pip").
public enum ModelTask: String, Codable, Sendable, CaseIterable {
    case regression, heatmap, pip

    /// Outputs for `keypoints` landmarks: 2 × keypoints coordinates, one heatmap per keypoint, or
    /// PIPNet's channels (`PIPLayout`).
    public func outputs(keypoints: Int) -> Int {
        switch self {
        case .regression: 2 * keypoints
        case .heatmap: keypoints
        case .pip: PIPLayout.outputs(keypoints: keypoints)
        }
    }
}

/// Everything fkp knows about one model, in one place: adding a model is one entry in `all` plus
/// its builder. The zoo, the trainer (which parameters `--init` must not load) and the command
/// line (model lists, the task a model implies) all read this table.
public struct ModelSpec: Sendable {
    public let name: String
    public let task: ModelTask
    /// The standard input size and keypoint count (`fkp summary`, `fkp bench train`).
    public let inputHeight: Int
    public let inputWidth: Int
    public let keypoints: Int
    /// Base channel count (ResNet and MobileNet stem, U-Net first encoder); nil for the fixed small nets.
    public let width: Int?
    /// Parameter-name prefixes of the output layer, whose shape depends on the keypoints: `--init`
    /// loads everything else.
    public let headPrefixes: [String]
    /// Builds the model from a checked configuration (`ModelZoo.make` checks what is common).
    let build: @Sendable (ModelConfig, _ dropout: Float?) throws -> Network

    /// The standard configuration for `keypoints` landmarks (default: the model's own count).
    public func defaultConfig(keypoints: Int? = nil) -> ModelConfig {
        ModelConfig(name: name, outputs: task.outputs(keypoints: keypoints ?? self.keypoints),
                    inputHeight: inputHeight, inputWidth: inputWidth, width: width)
    }

    /// Whether `parameter` belongs to the output layer.
    public func isHead(_ parameter: String) -> Bool { headPrefixes.contains { parameter.hasPrefix($0) } }

    public static let all: [ModelSpec] = [
        ModelSpec(name: "nosenet", task: .regression, inputHeight: 60, inputWidth: 80, keypoints: 1, width: nil,
                  headPrefixes: ["regressor.3."]) { config, _ in try SmallNets.noseNet(config) },
        ModelSpec(name: "facenet", task: .regression, inputHeight: 120, inputWidth: 160, keypoints: 58, width: nil,
                  headPrefixes: ["fc1."]) { config, dropout in try SmallNets.faceNet(config, dropout: dropout ?? 0.5) },
        ModelSpec(name: "resnet18", task: .regression, inputHeight: 224, inputWidth: 224, keypoints: 68, width: 64,
                  headPrefixes: ["fc."]) { config, _ in try ModelZoo.resnet(config, kind: .basic, blocks: [2, 2, 2, 2]) },
        ModelSpec(name: "resnet34", task: .regression, inputHeight: 224, inputWidth: 224, keypoints: 68, width: 64,
                  headPrefixes: ["fc."]) { config, _ in try ModelZoo.resnet(config, kind: .basic, blocks: [3, 4, 6, 3]) },
        ModelSpec(name: "resnet50", task: .regression, inputHeight: 224, inputWidth: 224, keypoints: 68, width: 64,
                  headPrefixes: ["fc."]) { config, _ in try ModelZoo.resnet(config, kind: .bottleneck, blocks: [3, 4, 6, 3]) },
        ModelSpec(name: "unet", task: .heatmap, inputHeight: 224, inputWidth: 224, keypoints: 68, width: 32,
                  headPrefixes: ["conv."]) { config, _ in try ModelZoo.unet(config) },
        // width: the stem width; 8 is MobileNetV2 ×0.25, PFLD's size (MobileNet.swift).
        ModelSpec(name: "mobilenet-pfld", task: .regression, inputHeight: 112, inputWidth: 112, keypoints: 68, width: 8,
                  headPrefixes: ["fc."]) { config, _ in try ModelZoo.mobileNetPFLD(config) },
        // width: the stem width (32: MobileNetV2 ×1); 128² gives PIPNet's 8×8 grid (MobileNetPIP.swift).
        ModelSpec(name: "mobilenet-pip", task: .pip, inputHeight: 128, inputWidth: 128, keypoints: 68, width: 32,
                  headPrefixes: MobileNetPIP.headNames.map { $0 + "." }) { config, _ in try ModelZoo.mobileNetPIP(config) },
    ]

    public static func named(_ name: String) -> ModelSpec? { all.first { $0.name == name } }

    public static var names: [String] { all.map(\.name) }
}
