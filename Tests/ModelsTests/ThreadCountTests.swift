import Engine
import Models
import XCTest

/// The engine's goal: the same bits for any thread count. Every model runs two AdamW training steps
/// (forward, loss, backward, update) from the same weights and input at 1, 2 and 3 threads, and the
/// predictions, gradients, weights and BatchNorm buffers must be identical, not merely close.
final class ThreadCountTests: XCTestCase {
    override func tearDown() { Parallel.setThreads(1) }

    struct StepResult: Equatable {
        var prediction: [Float], grads: [Float], values: [Float], state: [Float]
    }

    func step(_ config: ModelConfig, batch: Int, threads: Int) throws -> StepResult {
        Parallel.setThreads(threads)
        let net = try ModelZoo.make(config, dropout: 0)
        var rng = RandomGenerator(seed: 5)
        let x = Tensor(shape: [batch, 1, config.inputHeight, config.inputWidth])
        for i in 0 ..< x.count { x.data[i] = rng.uniform(-1, 1) }
        let loss = MSELoss(), optimizer = AdamW(store: net.store, learningRate: 1e-3, weightDecay: 0.01)
        var prediction: [Float] = []
        for _ in 0 ..< 2 {
            net.store.zeroGrads()
            let y = net.forward(x)
            prediction = Array(UnsafeBufferPointer(start: y.data, count: y.count))
            let target = (0 ..< y.count).map { Float($0 % 7) / 7 }
            _ = target.withUnsafeBufferPointer { loss.forward(y, $0.baseAddress!) }
            net.backward(loss.gradient)
            optimizer.step()
        }
        return StepResult(prediction: prediction, grads: Array(net.store.grads), values: Array(net.store.values),
                          state: Array(net.store.state))
    }

    func check(_ config: ModelConfig, batch: Int) throws {
        let one = try step(config, batch: batch, threads: 1)
        for threads in [2, 3] {
            let other = try step(config, batch: batch, threads: threads)
            XCTAssert(one.prediction == other.prediction, "\(config.name): predictions differ at \(threads) threads")
            XCTAssert(one.grads == other.grads, "\(config.name): gradients differ at \(threads) threads")
            XCTAssert(one.values == other.values, "\(config.name): weights differ at \(threads) threads")
            XCTAssert(one.state == other.state, "\(config.name): buffers differ at \(threads) threads")
        }
    }

    func testNoseNet() throws { try check(ModelConfig(name: "nosenet", outputs: 2, inputHeight: 60, inputWidth: 80, seed: 1), batch: 8) }
    func testFaceNet() throws { try check(ModelConfig(name: "facenet", outputs: 136, inputHeight: 120, inputWidth: 160, seed: 2), batch: 4) }
    func testResNet18() throws {
        try check(ModelConfig(name: "resnet18", outputs: 136, inputHeight: 64, inputWidth: 64, width: 16, seed: 3), batch: 4)
    }
    func testMobileNetPFLD() throws {
        try check(ModelConfig(name: "mobilenet-pfld", outputs: 136, inputHeight: 112, inputWidth: 112, width: 8, seed: 5), batch: 4)
    }
    func testUNet() throws { try check(ModelConfig(name: "unet", outputs: 5, inputHeight: 64, inputWidth: 64, width: 8, seed: 4), batch: 2) }
}
