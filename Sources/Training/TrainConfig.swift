import Engine
import Foundation
import Models

/// Everything that defines a training run. Presets fill it; command-line options override it;
/// the checkpoint's metadata stores it, so resume, eval and predict need nothing else.
public struct TrainConfig: Codable, Equatable, Sendable {
    /// Regression or heatmaps: a property of the model (`ModelSpec.task`).
    public typealias Task = ModelTask
    public enum Split: String, Codable, Sendable, CaseIterable {
        /// A seeded random split with `validationFraction` held out.
        case random
        /// People never on both sides (IMM: the person is the file's NN prefix).
        case byPerson = "by-person"
    }

    public var preset: String? = nil
    public var model = "facenet"
    /// U-Net base width (channels of the first encoder block); nil = the model's default.
    public var width: Int? = nil
    /// Regression or heatmaps: the model's (`ModelSpec.task`), never set separately. Not stored in
    /// the config JSON (checkpoints keep it in their preprocessing); an unknown model fails when built.
    public var task: Task { ModelSpec.named(model)?.task ?? .regression }
    /// "synthetic[:N]" (built-in faces) or a dataset path (IMM folder, dlib XML, .pts folder).
    public var data = "synthetic:3000"
    public var inputWidth = 160
    public var inputHeight = 120
    /// Train on these keypoints only (e.g. [52], the IMM nose tip); nil = all.
    public var keypoints: [Int]? = nil
    public var split = Split.random
    public var validationFraction = 0.2
    public var epochs = 30
    /// Caps the steps of an epoch (quick runs, tests); nil = the whole shard.
    public var stepsPerEpoch: Int? = nil
    /// Per-rank batch size.
    public var batch = 16
    public var accumulate = 1
    public var learningRate: Float = 1e-3
    public var weightDecay: Float = 0.01
    public var schedule = Schedule.cosine
    public var warmupSteps = 0
    public var augment = true
    public var cropEnlargement: Float = 0.2
    public var heatmapSigma: Float = 5
    public var heatmapLoss = HeatmapLoss.softargmax
    public var seed: UInt64 = 1
    public var dropout = true

    public init() {}

    /// Number of regression outputs or heatmap channels for `keypointCount` points of the markup.
    public func outputs(markupCount: Int) -> Int { task.outputs(keypoints: keypoints?.count ?? markupCount) }
}

/// The write-up's four experiments (and fast variants for small machines), rerunnable by name.
public struct Preset: Sendable {
    public var name: String
    public var summary: String
    /// What `--data` must point to when the preset needs real data.
    public var dataHint: String?
    public var config: TrainConfig

    public static let all: [Preset] = [defaultRun, noseIMM, facenetIMM, facenetIMMBatch, resnet50IBUG, resnet18IBUGFast,
                                        unetIBUG, unetIBUGFast]

    public static func named(_ name: String) -> Preset? { all.first { $0.name == name } }

    /// `fkp train` with no options: FaceNet-style regression of the 68 iBUG points on the
    /// built-in synthetic faces, a few minutes on 2 cores.
    public static let defaultRun: Preset = {
        var c = TrainConfig()
        c.preset = "default"
        return Preset(name: "default", summary: "FaceNet, 68 points on built-in synthetic faces (no download)", dataHint: nil, config: c)
    }()

    public static let noseIMM: Preset = {
        var c = TrainConfig()
        c.preset = "nose-imm"; c.model = "nosenet"; c.inputWidth = 80; c.inputHeight = 60
        c.keypoints = [52]; c.split = .random; c.validationFraction = 0.2
        c.epochs = 40; c.batch = 8; c.augment = false; c.schedule = .constant; c.cropEnlargement = 0
        return Preset(name: "nose-imm", summary: "nose tip (IMM point 52), small CNN, grey 60x80, random 192/48 split, MSE, AdamW 1e-3",
                      dataHint: "the IMM face database folder (NN-Tg.jpg + .asf)", config: c)
    }()

    public static let facenetIMM: Preset = {
        var c = TrainConfig()
        c.preset = "facenet-imm"; c.model = "facenet"; c.inputWidth = 160; c.inputHeight = 120
        c.split = .random; c.validationFraction = 0.2; c.epochs = 75; c.batch = 1; c.augment = true
        c.schedule = .constant; c.cropEnlargement = 0
        return Preset(name: "facenet-imm", summary: "58 IMM points, FaceNet 120x160, augmentation, AdamW 1e-3, 75 epochs, batch 1 (as the seed)",
                      dataHint: "the IMM face database folder", config: c)
    }()

    public static let facenetIMMBatch: Preset = {
        var p = facenetIMM
        p.name = "facenet-imm-b16"
        p.config.preset = p.name; p.config.batch = 16; p.config.epochs = 150; p.config.learningRate = 2e-3
        p.config.schedule = .cosine
        p.summary = "facenet-imm with batch 16 and a cosine schedule: the same error in a fraction of the time"
        return p
    }()

    public static let resnet50IBUG: Preset = {
        var c = TrainConfig()
        c.preset = "resnet50-ibug"; c.model = "resnet50"; c.inputWidth = 224; c.inputHeight = 224
        c.split = .random; c.validationFraction = 0.2; c.epochs = 15; c.batch = 8; c.augment = true
        c.cropEnlargement = 0.2; c.schedule = .cosine
        return Preset(name: "resnet50-ibug", summary: "68 points, dlib XML, box +20 %, 224², ResNet-50 (1 channel, 136 outputs), AdamW 1e-3, 15 epochs",
                      dataHint: "a dlib XML file (labels_ibug_300W_train.xml layout) or its folder", config: c)
    }()

    public static let resnet18IBUGFast: Preset = {
        var p = resnet50IBUG
        p.name = "resnet18-ibug-fast"
        p.config.preset = p.name; p.config.model = "resnet18"; p.config.inputWidth = 128; p.config.inputHeight = 128
        p.config.batch = 16; p.config.epochs = 10
        p.summary = "resnet50-ibug for small machines: ResNet-18 at 128², 10 epochs"
        return p
    }()

    public static let unetIBUG: Preset = {
        var c = TrainConfig()
        c.preset = "unet-ibug"; c.model = "unet"; c.inputWidth = 224; c.inputHeight = 224
        c.heatmapSigma = 5; c.split = .random; c.validationFraction = 0.2; c.epochs = 15; c.batch = 4
        c.augment = true; c.cropEnlargement = 0.2; c.schedule = .cosine
        return Preset(name: "unet-ibug", summary: "68 Gaussian heatmaps (sigma 5) at 224², U-Net 1->68, AdamW 1e-3, batch 4",
                      dataHint: "a dlib XML file or its folder", config: c)
    }()

    public static let unetIBUGFast: Preset = {
        var p = unetIBUG
        p.name = "unet-ibug-fast"
        p.config.preset = p.name; p.config.width = 16; p.config.inputWidth = 96; p.config.inputHeight = 96
        p.config.heatmapSigma = 2; p.config.batch = 8; p.config.epochs = 10
        p.summary = "unet-ibug for small machines: U-Net width 16 at 96², sigma 2 (5 px at 224² scaled), 10 epochs"
        return p
    }()
}

extension TrainConfig {
    /// How the heatmap loss compares predicted and target heatmaps. The raw values are the
    /// command line's and the checkpoint's spelling.
    public enum HeatmapLoss: String, Codable, Sendable, CaseIterable {
        /// Softmax cross-entropy plus a soft-argmax coordinate term.
        case softargmax
        /// Softmax cross-entropy alone.
        case softmaxCE = "softmax-ce"
        /// Foreground-weighted MSE on Gaussian targets.
        case mse

        /// Whether the model's heatmaps are logits (softmax-trained) rather than Gaussians.
        public var producesLogits: Bool { self != .mse }
    }

    /// The learning-rate schedule as written on the command line and stored in checkpoints:
    /// `constant`, `cosine` (to 1 % of the peak over the run), `step:EVERY:GAMMA`.
    public enum Schedule: Equatable, Sendable, Codable, LosslessStringConvertible {
        case constant
        case cosine
        case step(every: Int, gamma: Float)

        public static let syntax = "constant, cosine, step:EVERY:GAMMA"

        public init?(_ text: String) {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            switch parts.first {
            case "constant" where parts.count == 1: self = .constant
            case "cosine" where parts.count == 1: self = .cosine
            case "step":
                guard parts.count == 3, let every = Int(parts[1]), every > 0, let gamma = Float(parts[2]), gamma.isFinite else { return nil }
                self = .step(every: every, gamma: gamma)
            default: return nil
            }
        }

        public var description: String {
            switch self {
            case .constant: "constant"
            case .cosine: "cosine"
            case let .step(every, gamma): "step:\(every):\(gamma)"
            }
        }

        /// Checkpoints store the text, as they always have.
        public init(from decoder: Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let value = Schedule(text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "unknown schedule '\(text)' (\(Schedule.syntax))"))
            }
            self = value
        }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(description)
        }

        /// The schedule over a run of `totalSteps`, with `warmupSteps` of linear warmup in front.
        public func rates(totalSteps: Int, warmupSteps: Int) -> LearningRateSchedule {
            let base: LearningRateSchedule = switch self {
            case .constant: .constant
            case .cosine: .cosine(totalSteps: max(1, totalSteps - warmupSteps), minFactor: 0.01)
            case let .step(every, gamma): .step(every: every, gamma: gamma)
            }
            return base.withWarmup(warmupSteps)
        }
    }
}
