import ArgumentParser
import Dispatch
import Engine
import Foundation
import Models
import SwiftMPI
import Training

/// `fkp bench train`: full training steps (forward, MSE loss, backward, AdamW) on random input,
/// `--warmup` untimed steps, then steps timed one by one until at least `--seconds` have passed
/// (and at least `--steps` steps); the figures use the median step, as Scripts/bench-vs-pytorch
/// does for PyTorch. Last lines: `GFLOP/s: X` then `images/s: X`.
/// FLOPs are counted analytically: 2 per multiply-accumulate of the convolutions and linear
/// layers, ×3 for a training step (forward, input gradient, weight gradient).
/// Under `mpirun -np N` it measures data-parallel steps instead (see `DistributedBench`).
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Time training steps of a model on random input (release builds only).")

    @Option(help: "Model name: \(ModelZoo.names.joined(separator: ", ")).")
    var model: String

    @Option(help: "Images per step.")
    var batch: Int = 32

    @OptionGroup var threadOptions: ThreadOptions
    var threads: Int { threadOptions.resolved.threads }

    @Option(help: "Untimed warm-up steps (buffers are allocated in the first).")
    var warmup: Int = 3

    @Option(help: "Time steps for at least this many seconds (one rank).")
    var seconds: Double = 8

    @Option(help: "Time at least this many steps (one rank, default 3); steps per measurement under mpirun (default 10).")
    var steps: Int?

    @Option(help: "Outputs (default: the model's standard keypoints).")
    var outputs: Int?

    @OptionGroup var input: InputSizeOptions

    @Option(help: "Model width (U-Net base width, ResNet or MobileNet stem width; default: the model's).")
    var width: Int?

    @Flag(help: "Time forward passes only (evaluation mode, no backward or optimizer).")
    var inference = false

    @Flag(help: "Recompute each block's forward in backward (train's --recompute blocks), to time what it costs.")
    var recompute = false

    @Flag(help: "Print time per layer type.")
    var profile = false

    @Flag(help: "Print time per layer configuration (layers of the same configuration added up).")
    var profileLayers = false

    @OptionGroup var bucket: BucketOptions

    @Option(help: "Under mpirun: rounds of (1 rank alone, all ranks without allreduce, all ranks data-parallel); medians are reported.")
    var rounds: Int = 3

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1, got \(rounds)") }
        guard warmup >= 1 else { throw ValidationError("--warmup must be at least 1, got \(warmup)") }
        if let width, width < 1 { throw ValidationError("--width must be positive, got \(width)") }
        guard seconds >= 0 else { throw ValidationError("--seconds must not be negative, got \(seconds)") }
    }

    func run() throws {
        Parallel.setThreads(threads)
        let layerProfile = profile || profileLayers ? LayerProfile(byLayer: profileLayers) : nil
        guard ModelZoo.names.contains(model) else {
            throw ValidationError("unknown model '\(model)' (known: \(ModelZoo.names.joined(separator: ", ")))")
        }
        var config = try ModelZoo.defaultConfig(model, keypoints: ModelZoo.defaultKeypoints(model))
        if let outputs { config.outputs = outputs }
        if let size = input.inputSize { (config.inputWidth, config.inputHeight) = (size.width, size.height) }
        if let width { config.width = width }
        let network: Network
        do { network = try ModelZoo.make(config) } catch let error as ModelError {
            throw ValidationError(error.description)
        }
        network.recomputesBlocks = recompute
        // A plain one-process bench never starts MPI.
        if MPI.launchedByProcessManager { try bucket.initializeMPI() }
        if MPI.launchedByProcessManager && MPI.world.size > 1 {
            guard !inference && !profile && !profileLayers else { throw ValidationError("--inference and --profile are for one rank (without mpirun)") }
            runReportingErrors {
                try DistributedBench(loop: BenchLoop(network: network, batch: batch, inference: false), world: MPI.world,
                                     model: model, threads: threads, bucketBytes: bucket.bucketBytes, progressInterval: bucket.progressInterval)
                    .run(steps: steps ?? 10, rounds: rounds)
            }
        }
        network.context.profile = layerProfile
        let result = BenchLoop(network: network, batch: batch, inference: inference)
            .run(warmup: warmup, minimumSteps: steps ?? 3, minimumSeconds: seconds, profile: layerProfile)
        let flopsPerImage = Double(2 * network.macsPerImage) * (inference ? 1 : 3)
        let timed = result.stepSeconds.count
        let perStep = result.stepSeconds.sorted()[timed / 2]
        print("model \(model) \(config.inputWidth)x\(config.inputHeight), batch \(batch), threads \(threads), OpenBLAS \(BLASCore.current), conv3x3 \(DirectConv3x3.instructionSet), \(inference ? "inference" : "training")\(recompute ? " with recomputation" : ""), "
              + "\(timed) steps: median \(String(format: "%.2f", perStep * 1000)) ms/step, "
              + "\(String(format: "%.3f", flopsPerImage / 1e9)) GFLOP/image, loss \(result.loss)")
        if let layerProfile {
            let total = result.stepSeconds.reduce(0, +)
            print(layerProfile.table(total: total, steps: timed))
            print(String(format: "loss + optimizer      %.2f ms/step", 1000 * result.otherSeconds / Double(timed)))
        }
        print(String(format: "minor page faults/step: %.1f", Double(result.minorFaults) / Double(timed)))
        print(String(format: "GFLOP/s: %.1f", flopsPerImage * Double(batch) / perStep / 1e9))
        print(String(format: "images/s: %.2f", Double(batch) / perStep))
    }
}

/// The timed loop, kept out of `run()` so the hot path is a plain method.
final class BenchLoop {
    let network: Network
    let batch: Int
    let inference: Bool
    private let input: Tensor
    private let target: [Float]
    private let loss = MSELoss()
    private let optimizer: AdamW
    private(set) var lastLoss: Float = 0

    init(network: Network, batch: Int, inference: Bool) {
        self.network = network
        self.batch = batch
        self.inference = inference
        let c = network.config
        var rng = RandomGenerator(seed: 42)
        input = Tensor(shape: [batch, 1, c.inputHeight, c.inputWidth])
        for i in 0 ..< input.count { input.data[i] = rng.uniform(-1, 1) }
        network.training = !inference
        // The bench times the network, whatever its head: MSE against a random target of the
        // output's size (one forward pass tells the size; it also allocates the activations).
        let outputCount = network.forward(input).count
        target = (0 ..< outputCount).map { _ in rng.uniform(-1, 1) }
        optimizer = AdamW(store: network.store, learningRate: 1e-4, weightDecay: 0.01)
    }

    /// One training step; with `sync`, the gradients are averaged over the ranks before AdamW.
    /// With `overlap`, buckets start during backward (`GradientSync.beginOverlap`). Returns the
    /// seconds spent in the loss and optimizer, and in averaging after backward (with overlap: the
    /// exposed part of the allreduce).
    @discardableResult
    func step(sync: GradientSync? = nil, overlap: Bool = false) throws -> (other: Double, communication: Double) {
        if inference { _ = network.forward(input); return (0, 0) }
        network.store.zeroGrads()
        let y = network.forward(input)
        let t0 = now()
        lastLoss = target.withUnsafeBufferPointer { loss.forward(y, $0.baseAddress!) }
        let t1 = now()
        if overlap { sync?.beginOverlap(network) }
        network.backward(loss.gradient)
        let t2 = now()
        if overlap { try sync?.finish() } else { try sync?.average(network.store.grads) }
        let t3 = now()
        optimizer.step()
        return (t1 - t0 + now() - t3, t3 - t2)
    }

    func run(warmup: Int, minimumSteps: Int, minimumSeconds: Double, profile: LayerProfile?)
        -> (stepSeconds: [Double], otherSeconds: Double, loss: Float, minorFaults: Int) {
        for _ in 0 ..< warmup { try! step() }   // buffers are allocated in the first
        profile?.reset()
        var stepSeconds: [Double] = []
        var other = 0.0
        let faults = minorFaults()
        let start = now()
        while stepSeconds.count < minimumSteps || now() - start < minimumSeconds {
            let t0 = now()
            Callgrind.startInstrumentation()   // counts the timed steps under Scripts/bench-callgrind
            other += try! step().other
            Callgrind.stopInstrumentation()
            stepSeconds.append(now() - t0)
        }
        return (stepSeconds, other, lastLoss, minorFaults() - faults)
    }

    /// Page faults served without I/O so far: each one is a fresh page of memory being mapped,
    /// which a step that reuses its buffers should not cause.
    private func minorFaults() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_minflt
    }

    func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
}
