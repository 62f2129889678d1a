import ArgumentParser
import Dispatch
import Engine
import Foundation
import Models

/// `fkp bench train`: full training steps (forward, MSE loss, backward, AdamW) on random input,
/// `--warmup` untimed steps, then steps timed one by one until at least `--seconds` have passed
/// (and at least `--steps` steps); the figures use the median step, as Scripts/bench-vs-pytorch
/// does for PyTorch. Last lines: `GFLOP/s: X` then `images/s: X`.
/// FLOPs are counted analytically: 2 per multiply-accumulate of the convolutions and linear
/// layers, ×3 for a training step (forward, input gradient, weight gradient).
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Time training steps of a model on random input (release builds only).")

    @Option(help: "Model name: \(ModelZoo.names.joined(separator: ", ")).")
    var model: String

    @Option(help: "Images per step.")
    var batch: Int = 32

    @Option(help: "Threads (OpenBLAS and the engine's own loops).")
    var threads: Int = 1

    @Option(help: "Untimed warm-up steps (buffers are allocated in the first).")
    var warmup: Int = 3

    @Option(help: "Time steps for at least this many seconds.")
    var seconds: Double = 8

    @Option(help: "Time at least this many steps.")
    var steps: Int = 3

    @Option(help: "Outputs (default: the model's standard keypoints).")
    var outputs: Int?

    @Flag(help: "Time forward passes only (evaluation mode, no backward or optimizer).")
    var inference = false

    @Flag(help: "Print time per layer type.")
    var profile = false

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard warmup >= 1 else { throw ValidationError("--warmup must be at least 1, got \(warmup)") }
        guard seconds >= 0 else { throw ValidationError("--seconds must not be negative, got \(seconds)") }
    }

    func run() throws {
        Parallel.setThreads(threads)
        let layerProfile = profile ? LayerProfile() : nil
        guard ModelZoo.names.contains(model) else {
            throw ValidationError("unknown model '\(model)' (known: \(ModelZoo.names.joined(separator: ", ")))")
        }
        var config = try ModelZoo.defaultConfig(model, keypoints: ModelZoo.defaultKeypoints(model))
        if let outputs { config.outputs = outputs }
        let network: Network
        do { network = try ModelZoo.make(config) } catch let error as ModelError {
            throw ValidationError(error.description)
        }
        network.context.profile = layerProfile
        let result = BenchLoop(network: network, batch: batch, inference: inference)
            .run(warmup: warmup, minimumSteps: steps, minimumSeconds: seconds, profile: layerProfile)
        let flopsPerImage = Double(2 * network.macsPerImage) * (inference ? 1 : 3)
        let timed = result.stepSeconds.count
        let perStep = result.stepSeconds.sorted()[timed / 2]
        print("model \(model), batch \(batch), threads \(threads), \(inference ? "inference" : "training"), "
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
struct BenchLoop {
    let network: Network
    let batch: Int
    let inference: Bool

    func run(warmup: Int, minimumSteps: Int, minimumSeconds: Double, profile: LayerProfile?)
        -> (stepSeconds: [Double], otherSeconds: Double, loss: Float, minorFaults: Int) {
        let c = network.config
        var rng = RandomGenerator(seed: 42)
        let input = Tensor(shape: [batch, 1, c.inputHeight, c.inputWidth])
        for i in 0 ..< input.count { input.data[i] = rng.uniform(-1, 1) }
        let outputCount: Int
        switch network.outputKind {
        case .regression(let count): outputCount = batch * count
        case .heatmaps(let k, let h, let w): outputCount = batch * k * h * w
        }
        let target = (0 ..< outputCount).map { _ in rng.uniform(-1, 1) }
        let loss = MSELoss()
        let optimizer = AdamW(store: network.store, learningRate: 1e-4, weightDecay: 0.01)
        network.training = !inference
        var lastLoss: Float = 0
        var other = 0.0
        func step(timed: Bool) {
            if inference { _ = network.forward(input); return }
            network.store.zeroGrads()
            let y = network.forward(input)
            let t0 = now()
            lastLoss = target.withUnsafeBufferPointer { loss.forward(y, $0.baseAddress!) }
            if timed { other += now() - t0 }
            network.backward(loss.gradient)
            let t1 = now()
            optimizer.step()
            if timed { other += now() - t1 }
        }
        for _ in 0 ..< warmup { step(timed: false) }   // buffers are allocated in the first
        profile?.reset()
        var stepSeconds: [Double] = []
        let faults = minorFaults()
        let start = now()
        while stepSeconds.count < minimumSteps || now() - start < minimumSeconds {
            let t0 = now()
            step(timed: true)
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

    private func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
}
