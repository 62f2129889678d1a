import Engine
import FaceData
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
    // The options below are optional so that checkpoints written before them still decode (the
    // synthesized decoder requires every non-optional key); nil is the behaviour from before.
    /// Augmentation rotation in ±degrees; nil: the seed's 22.
    public var augmentRotation: Float? = nil
    /// Augmentation scale 1 ± augmentScale (300-W recipes: 0.25); nil: the seed's 0.8 ... 1.
    public var augmentScale: Float? = nil
    /// Validation and `fkp eval` average each prediction with the mirrored image's; nil: off.
    public var flipTest: Bool? = nil
    /// How heatmaps become points; nil: `.auto`.
    public var heatmapDecoding: HeatmapDecoding? = nil
    /// Regression models' loss on the normalised coordinates; nil: MSE (as before).
    public var regressionLoss: RegressionLoss? = nil
    /// Decay of an exponential moving average of the weights (`WeightAverage`, e.g. 0.999), which
    /// validation and checkpoints would use; nil or 0: off.
    public var ema: Float? = nil
    /// Chance of an occluding rectangle (up to 40 % of the crop's sides); nil: off.
    public var augmentOcclusion: Float? = nil
    /// Chance of a Gaussian blur (σ up to 1.5 crop pixels); nil: off.
    public var augmentBlur: Float? = nil
    /// Gamma range R: γ log-uniform in 1/(1 + R) ... 1 + R; nil: off.
    public var augmentGamma: Float? = nil
    /// Face-box jitter before cropping: centre ±F of the box size, size × (1 ± F); nil: off.
    public var boxJitter: Float? = nil
    /// Re-crop augmented faces around their keypoints (`AugmentationParameters.reframe`); nil: off.
    public var reframe: Bool? = nil
    /// PIPNet models: each keypoint's nearest keypoints in the training mean shape (`PIPHead`),
    /// set by the trainer when a run starts and kept with the checkpoint for decoding.
    public var pipNeighbours: [[Int]]? = nil

    public init() {}

    /// The training loader's augmentation ranges.
    public var augmentation: AugmentationParameters {
        var p = AugmentationParameters()
        if let augmentRotation { p.maxRotationDegrees = augmentRotation }
        if let augmentScale { p.maxZoomOut = augmentScale; p.maxZoomIn = augmentScale }
        if let augmentOcclusion { p.occlusionProbability = augmentOcclusion }
        if let augmentBlur { p.blurProbability = augmentBlur }
        if let augmentGamma { p.gammaRange = augmentGamma }
        if let boxJitter { p.boxJitter = boxJitter }
        p.reframe = reframe ?? false
        return p
    }

    /// The weight-average decay when one is on (`ema` in (0, 1)), else nil.
    public var emaDecay: Float? {
        guard let ema, ema > 0, ema < 1 else { return nil }
        return ema
    }

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
                                        unetIBUG, unetIBUGFast, unetIBUGRecipe, unetIBUGRecipeFast, unetIBUGFramed, unetIBUGFramedFast]

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

    /// The U-Net with a 300-W recipe (issue 15): augmentation as mmpose's (rotation ±30°, scale
    /// ±25 %, the flip), its 60-epoch schedule with drops at epochs 40 and 55, and flip-test
    /// validation. Decoding stays the loss's own soft-argmax: on this softmax-trained U-Net, DARK
    /// (which starts from the argmax) measured worse after 1 epoch on ytfaces68's validation faces
    /// (NME 0.348 against 0.139; flip test 0.302 against 0.135); `fkp eval --heatmap-decoding dark`
    /// compares it on any checkpoint. 128² with σ = 5 px at 224² scaled (2.86 ≈ 3); at roughly the
    /// 96² cost × (128/96)² ≈ 1.8, i.e. about 6 images/s on 2 cores, 60 epochs of 2,765 faces take
    /// ≈ 8 hours: a run for a bigger machine or a night. AdamW 1e-3 at batch 8, the setting
    /// measured for unet-ibug-fast (mmpose's 2e-3 is for batch 256).
    public static let unetIBUGRecipe: Preset = {
        var p = unetIBUG
        p.name = "unet-ibug-recipe"
        p.config.preset = p.name; p.config.width = 16; p.config.inputWidth = 128; p.config.inputHeight = 128
        p.config.heatmapSigma = 3; p.config.batch = 8; p.config.epochs = 60
        p.config.schedule = .multistep(epochs: [40, 55], gamma: 0.1)
        p.config.augmentRotation = 30; p.config.augmentScale = 0.25
        p.config.flipTest = true
        p.summary = "U-Net width 16 at 128², sigma 3, rotation ±30°, scale ±25 %, multistep:40,55:0.1 over 60 epochs, flip-test validation"
        return p
    }()

    /// unet-ibug-recipe in an hour of 2 cores: unet-ibug-fast's size (96², width 16, σ 2). With the
    /// direct 3×3 kernels it trains at 29 images/s on 2 cores (docs/RESULTS.md section 7), so 25
    /// epochs of 2,765 faces take 39 min of training (49 min with the flip-test validations). The
    /// 60-epoch drops at 40 and 55 scaled to 25 epochs: 18 and 23 (the NME plateaus after them).
    public static let unetIBUGRecipeFast: Preset = {
        var p = unetIBUGRecipe
        p.name = "unet-ibug-recipe-fast"
        p.config.preset = p.name; p.config.inputWidth = 96; p.config.inputHeight = 96
        p.config.heatmapSigma = 2; p.config.epochs = 25
        p.config.schedule = .multistep(epochs: [18, 23], gamma: 0.1)
        p.summary = "unet-ibug-recipe in under an hour on 2 cores (43 min of training): 96², sigma 2, 25 epochs, multistep:18,23:0.1"
        return p
    }()

    /// unet-ibug-recipe with every augmented face re-cropped around its keypoints (`--reframe`,
    /// issue 21): on ytfaces68, whose boxes are the keypoints' extent, the recipe's rotation, zoom
    /// and shift left each training face off the box that validation crops are cut from, and the
    /// U-Net spent its capacity on framings it never meets. Measured with the `-fast` size and
    /// schedule on ytfaces68 (docs/RESULTS.md section 9): NME 0.0462 → 0.0392, failures 2.2 % → 1.2 %.
    public static let unetIBUGFramed = reframed(unetIBUGRecipe, "unet-ibug-framed",
        "unet-ibug-recipe with --reframe (augmented faces re-cropped around their keypoints): 128², 60 epochs, for a cluster")

    /// unet-ibug-framed in the hour of 2 cores that dlib is given: unet-ibug-recipe-fast's size (96²,
    /// width 16, σ 2) with `--reframe`, over 45 epochs with the drops at 34 and 42 (51 min of
    /// training at 40.5 images/s). The recipe's 25 epochs ended still improving (0.0392); these 45
    /// reach NME 0.0370 and 0.6 % failures on ytfaces68's validation faces, against dlib's 0.0383 and
    /// 2.0 % (docs/RESULTS.md section 10).
    public static let unetIBUGFramedFast: Preset = {
        var p = reframed(unetIBUGRecipeFast, "unet-ibug-framed-fast",
            "unet-ibug-recipe-fast with --reframe over 45 epochs, multistep:34,42:0.1 (51 min of training on 2 cores)")
        p.config.epochs = 45
        p.config.schedule = .multistep(epochs: [34, 42], gamma: 0.1)
        return p
    }()

    /// `base` with `--reframe`, under a new name.
    static func reframed(_ base: Preset, _ name: String, _ summary: String) -> Preset {
        var p = base
        p.name = name
        p.config.preset = name; p.config.reframe = true
        p.summary = summary
        return p
    }
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

    /// The loss of regression models on keypoints normalised to the crop (command line and
    /// checkpoint spelling).
    public enum RegressionLoss: String, Codable, Sendable, CaseIterable {
        /// Mean squared error (nn.MSELoss), the default.
        case mse
        /// Mean absolute error (nn.L1Loss).
        case l1
        /// Wing loss (Feng et al. 2018) with w = 10/128, ε = 2/128 of the crop (`WingLoss`).
        case wing

        public func makeLoss() -> Loss {
            switch self {
            case .mse: MSELoss()
            case .l1: L1Loss()
            case .wing: WingLoss()
            }
        }
    }

    /// Which decoder turns heatmaps into points (command line and checkpoint spelling).
    public enum HeatmapDecoding: String, Codable, Sendable, CaseIterable {
        /// The loss's own: the log-parabola peak for MSE heatmaps, the soft-argmax for logits.
        case auto
        /// Distribution-aware decoding (`Heatmaps.decodeDARK`), for either kind.
        case dark
    }

    /// The learning-rate schedule as written on the command line and stored in checkpoints:
    /// `constant`, `cosine` (to 1 % of the peak over the run), `step:EVERY:GAMMA`,
    /// `multistep:E1,E2,...:GAMMA` (× GAMMA at the start of each listed epoch, counted from 0:
    /// `multistep:40,55:0.1` is mmpose's 60-epoch 300-W recipe).
    public enum Schedule: Equatable, Sendable, Codable, LosslessStringConvertible {
        case constant
        case cosine
        case step(every: Int, gamma: Float)
        case multistep(epochs: [Int], gamma: Float)

        public static let syntax = "constant, cosine, step:EVERY:GAMMA, multistep:EPOCH,EPOCH...:GAMMA"

        public init?(_ text: String) {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            switch parts.first {
            case "constant" where parts.count == 1: self = .constant
            case "cosine" where parts.count == 1: self = .cosine
            case "step":
                guard parts.count == 3, let every = Int(parts[1]), every > 0, let gamma = Float(parts[2]), gamma.isFinite else { return nil }
                self = .step(every: every, gamma: gamma)
            case "multistep":
                guard parts.count == 3, let gamma = Float(parts[2]), gamma.isFinite else { return nil }
                let epochs = parts[1].split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
                guard !epochs.isEmpty, epochs.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
                let sorted = epochs.compactMap { $0 }
                guard zip(sorted, sorted.dropFirst()).allSatisfy({ $0 < $1 }) else { return nil }
                self = .multistep(epochs: sorted, gamma: gamma)
            default: return nil
            }
        }

        public var description: String {
            switch self {
            case .constant: "constant"
            case .cosine: "cosine"
            case let .step(every, gamma): "step:\(every):\(gamma)"
            case let .multistep(epochs, gamma): "multistep:\(epochs.map(String.init).joined(separator: ",")):\(gamma)"
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

        /// The schedule over a run of `totalSteps`, with `warmupSteps` of linear warmup in front;
        /// `stepsPerEpoch` places multistep's epochs (counted from the run's start, warmup included).
        public func rates(totalSteps: Int, warmupSteps: Int, stepsPerEpoch: Int = 1) -> LearningRateSchedule {
            let base: LearningRateSchedule = switch self {
            case .constant: .constant
            case .cosine: .cosine(totalSteps: max(1, totalSteps - warmupSteps), minFactor: 0.01)
            case let .step(every, gamma): .step(every: every, gamma: gamma)
            case let .multistep(epochs, gamma):
                // The schedule after warmup counts its steps from the warmup's end.
                .multistep(milestones: epochs.map { max(0, $0 * stepsPerEpoch - max(warmupSteps, 0)) }, gamma: gamma)
            }
            return base.withWarmup(warmupSteps)
        }
    }
}
