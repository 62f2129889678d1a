import Engine
import Models
import XCTest

/// `--recompute blocks` (Recomputation): for every model, two steps with and without it give
/// bit-identical outputs, parameter gradients and BatchNorm statistics at the same thread count
/// (facenet's dropout draws the same mask twice), and the memory it allocates is what the ledger
/// plans: the blocks' outputs and input gradients between steps, one block's inside at the peak.
final class RecomputationTests: XCTestCase {
    override func tearDown() { Parallel.setThreads(1) }

    static let models: [(config: ModelConfig, batch: Int)] = [
        (ModelConfig(name: "nosenet", outputs: 2, inputHeight: 60, inputWidth: 80), 3),
        (ModelConfig(name: "facenet", outputs: 136, inputHeight: 120, inputWidth: 160), 2),
        (ModelConfig(name: "resnet18", outputs: 136, inputHeight: 64, inputWidth: 64, width: 16), 2),
        (ModelConfig(name: "resnet50", outputs: 136, inputHeight: 64, inputWidth: 64, width: 8), 2),
        (ModelConfig(name: "unet", outputs: 5, inputHeight: 64, inputWidth: 64, width: 16), 2),
        (ModelConfig(name: "mobilenet-pfld", outputs: 136, inputHeight: 64, inputWidth: 64, width: 8), 2),
        (ModelConfig(name: "mobilenet-pip", outputs: PIPLayout.outputs(keypoints: 68), inputHeight: 64, inputWidth: 64, width: 16), 2),
    ]

    /// Every value a step produces: the output, the parameter gradients, the buffers (running
    /// statistics, batch counters), as bit patterns; and the step's input and loss gradient, which
    /// the caller keeps alive until it has counted the memory (a first layer outside the blocks
    /// keeps the input).
    func step(_ net: Network, seed: UInt64, batch: Int)
        -> (output: [UInt32], grads: [UInt32], buffers: [UInt32], tensors: (Tensor, Tensor)) {
        let config = net.config
        let x = Tensor(shape: [batch, 1, config.inputHeight, config.inputWidth])
        var rng = RandomGenerator(seed: seed)
        for i in 0 ..< x.count { x.data[i] = rng.uniform(-1, 1) }
        net.store.zeroGrads()
        let y = net.forward(x)
        let output = y.toArray()
        let dy = Tensor(shape: y.shape)
        for i in 0 ..< dy.count { dy.data[i] = rng.uniform(-1, 1) }
        net.backward(dy)
        return (output.map(\.bitPattern), net.store.grads.map(\.bitPattern), net.store.state.map(\.bitPattern), (x, dy))
    }

    func testGradientsAreBitIdenticalForEveryModel() throws {
        Parallel.setThreads(2)
        try assertRecomputationIsBitIdentical()
    }

    /// The blocks' buffers come from an arena whose contents are unspecified (pages reused from the
    /// block before, not zeroed). With every buffer of 256 floats or more taken from it and filled
    /// with NaN when handed out, each model still gives the same bits: no layer reads a buffer of
    /// its own before writing it.
    func testArenaBuffersAreWrittenBeforeTheyAreRead() throws {
        Parallel.setThreads(2)
        Tensor.setArena(thresholdFloats: 256, poisoned: true)
        defer { Tensor.setArena(thresholdFloats: Tensor.largeBufferFloats, poisoned: false) }
        try assertRecomputationIsBitIdentical()
    }

    func assertRecomputationIsBitIdentical() throws {
        for (config, batch) in Self.models {
            let plain = try ModelZoo.make(config), recomputed = try ModelZoo.make(config)
            recomputed.recomputesBlocks = true
            XCTAssertGreaterThan(recomputed.blocks.count, 0, config.name)
            // Two steps: the second runs on buffers the first freed and allocated again.
            for seed: UInt64 in [1, 2] {
                let a = step(plain, seed: seed, batch: batch), b = step(recomputed, seed: seed, batch: batch)
                XCTAssert(a.output == b.output, "\(config.name) step \(seed): outputs differ")
                XCTAssert(a.grads == b.grads, "\(config.name) step \(seed): gradients differ")
                XCTAssert(a.buffers == b.buffers, "\(config.name) step \(seed): BatchNorm running statistics differ")
            }
            // The generator moved as far as without recomputation (facenet's dropout drew once).
            XCTAssertEqual(plain.context.random, recomputed.context.random, config.name)
        }
    }

    /// Evaluation mode through recomputed blocks: the same predictions, and the blocks' insides freed.
    func testEvaluationIsUnchanged() throws {
        let config = Self.models[4].config
        let plain = try ModelZoo.make(config), recomputed = try ModelZoo.make(config)
        recomputed.recomputesBlocks = true
        plain.training = false; recomputed.training = false
        let x = Tensor(shape: [2, 1, 64, 64])
        var rng = RandomGenerator(seed: 3)
        for i in 0 ..< x.count { x.data[i] = rng.uniform(-1, 1) }
        XCTAssertEqual(plain.forward(x).toArray(), recomputed.forward(x).toArray())
    }

    /// One step allocates what the ledger plans: after the step, the kept buffers and the
    /// workspace; at the peak of a later step, also the largest block's inside. The step's input
    /// and loss gradient are the test's, counted apart.
    func testAllocationsMatchTheLedger() throws {
        Parallel.setThreads(2)
        for (config, batch) in Self.models {
            let before = EngineAllocations.liveBytes
            let net = try ModelZoo.make(config)
            net.recomputesBlocks = true
            let ledger = MemoryLedger(threads: Parallel.threads)
            ledger.recomputation = net.context.recomputation
            _ = net.root.plan([batch, 1, config.inputHeight, config.inputWidth], ledger)
            let planned = ledger.keptBytes + ledger.workspaceBytes
            let placeholders = 4 * 4 * net.modules().count
            var (_, _, _, tensors) = step(net, seed: 1, batch: batch)
            let stepTensors = 4 * (tensors.0.count + tensors.1.count)
            let live = EngineAllocations.liveBytes - before - stepTensors
            XCTAssertEqual(Double(live), Double(planned), accuracy: Double(placeholders),
                           "\(config.name): \(live) bytes live after a step, the ledger plans \(planned)")
            tensors = (Tensor(shape: [0]), Tensor(shape: [0]))
            EngineAllocations.resetPeak()
            let second = step(net, seed: 2, batch: batch)
            let peak = EngineAllocations.peakBytes - before - stepTensors
            XCTAssertEqual(Double(peak), Double(planned + ledger.largestBlockBytes), accuracy: Double(2 * placeholders),
                           "\(config.name): peak \(peak) bytes; planned \(planned) + \(ledger.largestBlock)'s inside \(ledger.largestBlockBytes)")
            withExtendedLifetime((net, second)) {}
        }
    }

    /// What recomputation saves, from the ledgers (what the layers keep, plus, when recomputing,
    /// the largest block's peak inside), at the sizes the issue names: at least half, on the U-Net,
    /// ResNet-50 and MobileNetV2.
    func testRecomputationSaving() throws {
        for (config, least) in [(ModelConfig(name: "resnet50", outputs: 136, inputHeight: 224, inputWidth: 224), 0.5),
                                (ModelConfig(name: "mobilenet-pip", outputs: PIPLayout.outputs(keypoints: 68), inputHeight: 128,
                                             inputWidth: 128, width: 32), 0.5),
                                (ModelConfig(name: "unet", outputs: 68, inputHeight: 224, inputWidth: 224, width: 32), 0.5)] {
            let net = try ModelZoo.make(config)
            let plain = MemoryLedger(threads: 2), recomputed = MemoryLedger(threads: 2)
            recomputed.recomputation = Recomputation(blocks: net.blocks)
            _ = net.root.plan([8, 1, config.inputHeight, config.inputWidth], plain)
            _ = net.root.plan([8, 1, config.inputHeight, config.inputWidth], recomputed)
            let with = recomputed.keptBytes + recomputed.largestBlockBytes
            XCTAssertGreaterThanOrEqual(1 - Double(with) / Double(plain.keptBytes), least,
                                        "\(config.name): \(with) bytes with recomputation, \(plain.keptBytes) without")
        }
    }
}
