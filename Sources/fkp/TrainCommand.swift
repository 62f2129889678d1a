import ArgumentParser
import Checkpoints
import Foundation
import Models
import SwiftMPI
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a keypoint model (single rank, or data-parallel under mpirun).",
        discussion: """
        With no options it trains FaceNet on 68 keypoints of built-in synthetic faces (runs/default).
        Under `mpirun -np N fkp train ...` every rank trains on its shard; --batch is per rank.
        """)

    @Option(help: "A preset from `fkp presets` (the write-up's experiments).") var preset: String?
    @Option(help: "Model: \(ModelZoo.names.joined(separator: ", ")).") var model: String?
    @Option(help: "Dataset: an IMM folder, a dlib XML file or folder, a 300-W .pts folder, or synthetic[:N].") var data: String?
    @Option(help: "Epochs to train (with --resume: the new total).") var epochs: Int?
    @Option(help: "Batch size per rank.") var batch: Int?
    @Option(name: .customLong("lr"), help: "Peak learning rate (AdamW).") var learningRate: Float?
    @Option(help: "AdamW decoupled weight decay.") var weightDecay: Float?
    @Option(help: "Learning-rate schedule: \(TrainConfig.Schedule.syntax).") var schedule: TrainConfig.Schedule?
    @Option(help: "Linear learning-rate warm-up over the first N optimizer steps, before the schedule (0: none).") var warmupSteps: Int?
    @Flag(inversion: .prefixedNo, help: "Augment training samples (shear, shift, zoom, rotation, flip, light).") var augment: Bool?
    @OptionGroup var threads: ThreadOptions
    @Option(help: "Seed for weights, split, shuffling, augmentation and dropout.") var seed: UInt64?
    @Option(help: "Run folder for checkpoints, metrics and pictures (default runs/PRESET).") var out: String?
    @Option(help: "Checkpoint every N optimizer steps, or every N epochs with a suffix: 500 or 2e (default 1e).") var checkpointEvery: String?
    @Option(help: "Checkpoints to keep (the newest).") var keep: Int = 3
    @Option(help: "Continue from a checkpoint file or run folder; 'auto' = the --out folder if it has one.") var resume: String?
    @Option(name: .customLong("init"), help: "Start from these weights (e.g. `fkp import-weights` output); the head is not loaded.") var initWeights: String?
    @Option(help: "Fraction of the data held out for validation.") var valSplit: Double?
    @Option(help: "How the validation faces are chosen.") var split: TrainConfig.Split?
    @Option(help: "Accumulate gradients over N batches per optimizer step.") var accumulate: Int?
    @Option(help: "Cap on optimizer steps per epoch (quick runs).") var stepsPerEpoch: Int?
    @OptionGroup var input: InputSizeOptions
    @Option(help: "U-Net base width / model width.") var width: Int?
    @Option(help: "Train on these keypoint indices only, e.g. 52 or 36,45.") var keypoints: String?
    @Option(help: "Heatmap Gaussian sigma in input pixels (U-Net).") var heatmapSigma: Float?
    @Option(help: "Heatmap loss.") var heatmapLoss: TrainConfig.HeatmapLoss?
    @Flag(inversion: .prefixedNo, help: "Use the model's dropout (facenet: 0.5).") var dropout: Bool?
    @Option(help: "Augmentation rotation range in ±degrees (default 22).") var augmentRotation: Float?
    @Option(help: "Augmentation scale range 1 ± S (default: 0.8 ... 1).") var augmentScale: Float?
    @Flag(inversion: .prefixedNo, help: "Validate with flip-test averaging.") var flipTest: Bool?
    @Option(help: "Heatmap decoder for validation and eval.") var heatmapDecoding: TrainConfig.HeatmapDecoding?
    @Option(help: "Loss of regression models: mse (default), l1 or wing.") var loss: TrainConfig.RegressionLoss?
    @Option(help: "Exponential moving average of the weights with this decay, e.g. 0.999 (0: off).") var ema: Float?
    @Option(help: "Chance of an occluding rectangle over the crop (0: off).") var occlusion: Float?
    @Option(help: "Chance of a Gaussian blur of the crop, sigma up to 1.5 px (0: off).") var blur: Float?
    @Option(help: "Gamma range R: gamma between 1/(1+R) and 1+R (0: off).") var gamma: Float?
    @Option(help: "Face-box jitter before cropping: shift ±F of the box, scale 1 ± F (0: off).") var boxJitter: Float?
    @Flag(inversion: .prefixedNo, help: "Re-crop each augmented face around its keypoints so that its box stands to them as the labelled box does (rotation and shear change the face, the framing stays that of evaluation crops).") var reframe: Bool?
    @Option(help: "Stop after this many optimizer steps (as if preempted; the last checkpoint stays).") var stopAfterSteps: Int?
    @Option(help: "Background threads preparing batches.") var loaderThreads = 1
    @Option(help: "Nice value of the loader threads, 0 to 19 (19: they use only cycles the computation leaves; 0: they compete with it).")
    var loaderNice: Int32 = RunOptions.defaultLoaderNice
    @Option(help: "Decoded faces kept in memory per rank, MiB (0: decode every epoch).") var cacheMb = TrainingData.defaultCacheBytes >> 20
    @Flag(help: "Stop at the first unreadable sample instead of skipping it.") var strict = false
    @OptionGroup var imageLimit: ImageLimitOptions
    @OptionGroup var distributed: DistributedOptions
    @OptionGroup var memory: MemoryOptions
    @Flag(help: "No progress output.") var quiet = false
    @Flag(help: "Do not write pictures.") var noPictures = false
    @Flag(inversion: .prefixedNo, help: "Write a TensorBoard event file into the run folder (scalars per step and epoch, pictures at the end): tensorboard --logdir runs.") var tensorboard = true

    @Option(help: "Signals that stop training gracefully (checkpoint at the next step, exit status 75): a list like TERM,USR1,INT, or none.") var preemptSignals = "TERM,USR1,INT"
    @Flag(help: "Print the memory plan of this run per rank (parameters, gradients, optimizer state, activations, workspace, loader, the predicted peak) and exit without training.") var plan = false

    /// The configuration options given on this command line that `--resume` ignores (the
    /// checkpoint's configuration wins; only --epochs changes it).
    var ignoredOnResume: [String] {
        let given: [(String, Bool)] = [
            ("--preset", preset != nil), ("--model", model != nil), ("--data", data != nil), ("--batch", batch != nil),
            ("--lr", learningRate != nil), ("--weight-decay", weightDecay != nil), ("--schedule", schedule != nil),
            ("--warmup-steps", warmupSteps != nil),
            ("--augment", augment != nil), ("--seed", seed != nil), ("--val-split", valSplit != nil), ("--split", split != nil),
            ("--accumulate", accumulate != nil), ("--steps-per-epoch", stepsPerEpoch != nil), ("--input-size", input.inputSize != nil),
            ("--width", width != nil), ("--keypoints", keypoints != nil), ("--heatmap-sigma", heatmapSigma != nil),
            ("--heatmap-loss", heatmapLoss != nil), ("--dropout", dropout != nil), ("--augment-rotation", augmentRotation != nil),
            ("--augment-scale", augmentScale != nil), ("--flip-test", flipTest != nil), ("--heatmap-decoding", heatmapDecoding != nil),
            ("--loss", loss != nil), ("--ema", ema != nil), ("--occlusion", occlusion != nil), ("--blur", blur != nil),
            ("--gamma", gamma != nil), ("--box-jitter", boxJitter != nil),
            ("--reframe", reframe != nil),
        ]
        return given.filter(\.1).map(\.0)
    }

    /// The preset (or default) configuration with this command line's overrides.
    func configuration() throws -> TrainConfig {
        let name = preset ?? "default"
        guard var config = Preset.named(name)?.config else {
            throw ValidationError("unknown preset '\(name)' (known: \(Preset.all.map(\.name).joined(separator: ", ")))")
        }
        if let preset, let hint = Preset.named(preset)?.dataHint, data == nil {
            throw ValidationError("preset \(preset) needs --data: \(hint)")
        }
        if let model {
            guard ModelSpec.named(model) != nil else { throw ValidationError(ModelError.unknownModel(model).description) }
            config.model = model
        }
        if let data { config.data = data }
        if let epochs { config.epochs = epochs }
        if let batch { config.batch = batch }
        if let learningRate { config.learningRate = learningRate }
        if let weightDecay { config.weightDecay = weightDecay }
        if let schedule { config.schedule = schedule }
        if let warmupSteps {
            guard warmupSteps >= 0 else { throw ValidationError("--warmup-steps must be 0 or more") }
            config.warmupSteps = warmupSteps
        }
        if let augment { config.augment = augment }
        if let dropout { config.dropout = dropout }
        if let seed { config.seed = seed }
        if let valSplit { config.validationFraction = valSplit }
        if let split { config.split = split }
        if let accumulate { config.accumulate = accumulate }
        if let stepsPerEpoch { config.stepsPerEpoch = stepsPerEpoch }
        if let width { config.width = width }
        if let heatmapSigma { config.heatmapSigma = heatmapSigma }
        if let augmentRotation { config.augmentRotation = augmentRotation }
        if let augmentScale { config.augmentScale = augmentScale }
        if let flipTest { config.flipTest = flipTest }
        if let heatmapDecoding { config.heatmapDecoding = heatmapDecoding }
        if let heatmapLoss { config.heatmapLoss = heatmapLoss }
        if let loss { config.regressionLoss = loss }
        if let ema {
            guard ema >= 0, ema < 1 else { throw ValidationError("--ema must be in [0, 1) (0: off)") }
            config.ema = ema
        }
        for (name, value) in [("--occlusion", occlusion), ("--blur", blur)] {
            guard (0 ... 1).contains(value ?? 0) else { throw ValidationError("\(name) is a probability: use a value in [0, 1]") }
        }
        guard (0 ... 10).contains(gamma ?? 0) else { throw ValidationError("--gamma must be in [0, 10]") }
        guard (0 ..< 0.5).contains(boxJitter ?? 0) else { throw ValidationError("--box-jitter must be in [0, 0.5)") }
        if let occlusion { config.augmentOcclusion = occlusion }
        if let blur { config.augmentBlur = blur }
        if let gamma { config.augmentGamma = gamma }
        if let boxJitter { config.boxJitter = boxJitter }
        if let reframe { config.reframe = reframe }
        if let size = input.inputSize { (config.inputWidth, config.inputHeight) = (size.width, size.height) }
        if let keypoints {
            let list = keypoints.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !list.isEmpty, list.allSatisfy({ $0 != nil }) else { throw ValidationError("--keypoints must be indices like 52 or 36,45") }
            config.keypoints = list.map { $0! }
        }
        guard config.epochs > 0, config.batch > 0, config.accumulate > 0 else {
            throw ValidationError("--epochs, --batch and --accumulate must be positive")
        }
        guard config.learningRate > 0, config.learningRate.isFinite else { throw ValidationError("--lr must be positive") }
        guard (0 ... 180).contains(config.augmentRotation ?? 0) else { throw ValidationError("--augment-rotation must be in [0, 180] degrees") }
        guard (0 ..< 1).contains(config.augmentScale ?? 0) else { throw ValidationError("--augment-scale must be in [0, 1)") }
        guard (0 ... 19).contains(loaderNice) else { throw ValidationError("--loader-nice must be in 0...19") }
        guard (0 ..< 1).contains(config.validationFraction) else { throw ValidationError("--val-split must be in [0, 1)") }
        do { try config.head.check(config) } catch { throw ValidationError("\(error)") }
        return config
    }

    func run() throws {
        runReportingErrors {
            var config = try configuration()
            try distributed.bucket.initializeMPI()
            let world = MPI.world
            let outPath = out ?? "runs/\(config.preset ?? config.model)"
            var runOptions = RunOptions(outDirectory: URL(fileURLWithPath: outPath))
            runOptions.keep = keep
            (runOptions.threads, runOptions.threadsSource) = threads.resolved
            runOptions.preemptSignals = try Preemption.parse(preemptSignals)
            distributed.apply(to: &runOptions)
            runOptions.quiet = quiet
            runOptions.strict = strict
            runOptions.maxPixels = imageLimit.maxPixels
            runOptions.pictures = !noPictures
            runOptions.tensorBoard = tensorboard
            runOptions.initWeights = initWeights
            runOptions.stopAfterSteps = stopAfterSteps
            runOptions.loaderThreads = max(1, loaderThreads)
            runOptions.loaderNice = loaderNice
            runOptions.cacheMegabytes = max(0, cacheMb)
            if let every = checkpointEvery {
                if every.hasSuffix("e") {
                    guard let n = Int(every.dropLast()), n > 0 else { throw ValidationError("--checkpoint-every: use N (steps) or Ne (epochs)") }
                    runOptions.checkpointEveryEpochs = n
                } else {
                    guard let n = Int(every), n > 0 else { throw ValidationError("--checkpoint-every: use N (steps) or Ne (epochs)") }
                    runOptions.checkpointEverySteps = n
                }
            }
            if plan {
                // Rank 0 speaks for every rank: the others hold the same less its checkpoint write.
                try memory.apply(to: &config, &runOptions, world: world, quiet: false)
                let plan = try MemoryPlan.forRun(config: config, options: runOptions, worldSize: world.size, rank: world.rank)
                if world.rank == 0 { print(plan.report()) }
                return
            }
            var resumeState: TrainingCheckpoint.Contents?
            if let resume {
                // Rank 0 resolves the path (ranks need not share a filesystem) and tells the others.
                var resolved = ""
                var failure = ""
                if world.rank == 0 {
                    do { resolved = try CheckpointFile.resolve(resume == "auto" ? outPath : resume)?.path ?? "" } catch {
                        if resume != "auto" { failure = "\(error)" }
                    }
                }
                failure = try world.broadcast(failure)
                if !failure.isEmpty { throw ValidationError(failure) }
                resolved = try world.broadcast(resolved)
                if !resolved.isEmpty {
                    let state = try TrainingCheckpoint.readBroadcast(URL(fileURLWithPath: resolved), communicator: world)
                    config = state.config
                    if let epochs { config.epochs = epochs }
                    resumeState = state
                    if world.rank == 0 && !quiet { print("resuming from \(resolved)") }
                } else if world.rank == 0 && !quiet {
                    print("no checkpoint in \(outPath): starting a new run")
                }
            }
            // After a resume: the budget splits the checkpoint's batch.
            try memory.apply(to: &config, &runOptions, world: world, quiet: quiet)
            let trainer = try Trainer(config: config, options: runOptions, communicator: world, resumeFrom: resumeState)
            // Said once the checkpoint has proved usable (a bad one gets its one error line alone).
            if resumeState != nil && world.rank == 0 {
                for option in ignoredOnResume {
                    FileHandle.standardError.write(Data("warning: \(option) is ignored: a resumed run keeps its checkpoint's configuration (only --epochs may change it)\n".utf8))
                }
            }
            if case .preempted = try trainer.run() { Foundation.exit(Preemption.exitStatus) }
        }
    }
}

struct Presets: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the experiments' presets and their settings.")

    func run() throws {
        for preset in Preset.all {
            let c = preset.config
            print("\(preset.name): \(preset.summary)")
            var settings = "  model \(c.model)\(c.width.map { " width \($0)" } ?? "") task \(c.task.rawValue) input \(c.inputWidth)x\(c.inputHeight)"
            settings += " epochs \(c.epochs) batch \(c.batch) lr \(c.learningRate) wd \(c.weightDecay) schedule \(c.schedule)"
            if c.warmupSteps > 0 { settings += " warmup \(c.warmupSteps) steps" }
            settings += " augment \(c.augment) split \(c.split.rawValue) val \(c.validationFraction) crop +\(Int(c.cropEnlargement * 100))%"
            if let k = c.keypoints { settings += " keypoints \(k.map(String.init).joined(separator: ","))" }
            settings += c.head.settings
            if let r = c.augmentRotation { settings += " rotation ±\(r)°" }
            if let s = c.augmentScale { settings += " scale ±\(Int((s * 100).rounded()))%" }
            if let d = c.heatmapDecoding { settings += " decoding \(d.rawValue)" }
            if c.flipTest == true { settings += " flip-test" }
            if let d = c.emaDecay { settings += " ema \(d)" }
            if let p = c.augmentOcclusion { settings += " occlusion \(p)" }
            if let p = c.augmentBlur { settings += " blur \(p)" }
            if let r = c.augmentGamma { settings += " gamma ±\(r)" }
            if let f = c.boxJitter { settings += " box-jitter \(f)" }
            if c.reframe == true { settings += " reframe" }
            print(settings)
            print("  data: \(preset.dataHint ?? c.data)")
        }
    }
}

// Parsed once, here at the edge: the rest of the program sees only valid values.
extension TrainConfig.HeatmapLoss: ExpressibleByArgument {}
extension TrainConfig.RegressionLoss: ExpressibleByArgument {}
extension TrainConfig.HeatmapDecoding: ExpressibleByArgument {}
extension TrainConfig.Split: ExpressibleByArgument {}

extension TrainConfig.Schedule: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
    public static var defaultCompletionKind: CompletionKind { .list(["constant", "cosine", "step:1000:0.5"]) }
}
