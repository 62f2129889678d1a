import Engine
import Models
import XCTest

/// The layers' memory accounting (`Module.planMemory`, which `fkp train --plan` adds up) against
/// what one real training step allocates, counted independently where the engine allocates
/// (`EngineAllocations`: tensors, the workspace, max-pool indices). Every model, small sizes, two
/// threads (convolutions give each worker its own scratch).
final class MemoryLedgerTests: XCTestCase {
    override func tearDown() { Parallel.setThreads(1) }

    /// Builds `config`, plans a step of `batch`, runs forward and backward, and compares.
    func check(_ config: ModelConfig, batch: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        Parallel.setThreads(2)
        let before = EngineAllocations.liveBytes
        let net = try ModelZoo.make(config)
        let ledger = MemoryLedger(threads: Parallel.threads)
        let outputShape = net.root.planMemory([batch, 1, config.inputHeight, config.inputWidth], ledger)

        let x = Tensor(shape: [batch, 1, config.inputHeight, config.inputWidth])
        var rng = RandomGenerator(seed: 7)
        for i in 0 ..< x.count { x.data[i] = rng.uniform(-1, 1) }
        let y = net.forward(x)
        XCTAssertEqual(y.shape, outputShape, "\(config.name): planned output shape", file: file, line: line)
        let dy = Tensor(shape: y.shape)
        for i in 0 ..< dy.count { dy.data[i] = rng.uniform(-1, 1) }
        net.backward(dy)
        let allocated = EngineAllocations.liveBytes - before - 4 * (x.count + dy.count)

        // Tensors are created with a 4-byte placeholder; the ones a step never grows (a first
        // layer's skipped input gradient, a fused ReLU's) keep it, and the ledger does not list them.
        let placeholders = 4 * 4 * net.modules().count
        let planned = ledger.keptBytes + ledger.workspaceBytes
        XCTAssertEqual(Double(allocated), Double(planned), accuracy: Double(placeholders),
                       "\(config.name): one step allocated \(allocated) bytes, the ledger plans \(planned) "
                       + "(\(ledger.keptBytes) kept + \(ledger.workspaceBytes) workspace)", file: file, line: line)
        XCTAssertGreaterThan(ledger.bytes(.output), 0, file: file, line: line)
        XCTAssertGreaterThan(ledger.bytes(.gradient), 0, file: file, line: line)
        withExtendedLifetime((net, x, dy)) {}
    }

    func testNoseNet() throws { try check(ModelConfig(name: "nosenet", outputs: 2, inputHeight: 60, inputWidth: 80), batch: 3) }
    /// With its dropout (a mask kept for backward).
    func testFaceNet() throws { try check(ModelConfig(name: "facenet", outputs: 136, inputHeight: 120, inputWidth: 160), batch: 2) }
    func testResNet18() throws {
        try check(ModelConfig(name: "resnet18", outputs: 136, inputHeight: 64, inputWidth: 64, width: 16), batch: 2)
    }
    func testResNet50() throws {
        try check(ModelConfig(name: "resnet50", outputs: 136, inputHeight: 64, inputWidth: 64, width: 8), batch: 2)
    }
    /// Direct 3×3 convolutions, transposed convolutions and concatenations.
    func testUNet() throws { try check(ModelConfig(name: "unet", outputs: 5, inputHeight: 64, inputWidth: 64, width: 16), batch: 2) }
    func testMobileNetPFLD() throws {
        try check(ModelConfig(name: "mobilenet-pfld", outputs: 136, inputHeight: 64, inputWidth: 64, width: 8), batch: 2)
    }
    func testMobileNetPIP() throws {
        try check(ModelConfig(name: "mobilenet-pip", outputs: PIPLayout.outputs(keypoints: 68), inputHeight: 64, inputWidth: 64,
                              width: 16), batch: 2)
    }

    /// Activations are per sample: doubling the batch doubles everything the layers keep but
    /// their per-channel batch statistics.
    func testKeptBytesScaleWithTheBatch() throws {
        let net = try ModelZoo.make(ModelConfig(name: "unet", outputs: 5, inputHeight: 32, inputWidth: 32, width: 8))
        let one = MemoryLedger(threads: 1), two = MemoryLedger(threads: 1)
        _ = net.root.planMemory([3, 1, 32, 32], one)
        _ = net.root.planMemory([6, 1, 32, 32], two)
        XCTAssertEqual(two.bytes(.output), 2 * one.bytes(.output))
        XCTAssertEqual(two.bytes(.gradient), 2 * one.bytes(.gradient))
        XCTAssertEqual(two.bytes(.saved) - one.bytes(.saved), one.bytes(.saved) - statistics(net))
    }

    /// Bytes of every BatchNorm's saved mean and 1/std (fixed, not per sample).
    func statistics(_ net: Network) -> Int {
        net.modules().compactMap { $0 as? BatchNorm2d }.map { 2 * $0.channels * 4 }.reduce(0, +)
    }
}
