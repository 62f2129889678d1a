import Engine
import Models
import XCTest

/// Every model's evaluation forward with its BatchNorms (and ResNet's residual Adds) in the
/// convolutions' epilogues gives exactly the bits of the separate passes (ConvEpilogue.swift),
/// after training steps have moved the weights and running statistics; and every BatchNorm that
/// follows a Conv2d is folded.
final class InferenceEpilogueTests: XCTestCase {
    override func tearDown() { ConvEpilogue.enabled = true; Parallel.setThreads(1) }

    func check(_ config: ModelConfig, batch: Int, folded expected: Int) throws {
        let net = try ModelZoo.make(config, dropout: 0)
        let norms = net.modules().compactMap { $0 as? BatchNorm2d }
        XCTAssertEqual(norms.filter(\.isFoldedIntoConvolution).count, expected, "\(config.name): folded BatchNorms of \(norms.count)")
        var rng = RandomGenerator(seed: 8)
        let x = Tensor(shape: [batch, 1, config.inputHeight, config.inputWidth])
        for i in 0 ..< x.count { x.data[i] = rng.uniform(-1, 1) }
        let loss = MSELoss(), optimizer = AdamW(store: net.store, learningRate: 1e-2, weightDecay: 0.01)
        for _ in 0 ..< 2 {
            net.store.zeroGrads()
            let y = net.forward(x)
            let target = (0 ..< y.count).map { Float($0 % 7) / 7 }
            _ = target.withUnsafeBufferPointer { loss.forward(y, $0.baseAddress!) }
            net.backward(loss.gradient)
            optimizer.step()
        }
        net.training = false
        func predict(fused: Bool, threads: Int) -> [Float] {
            ConvEpilogue.enabled = fused
            Parallel.setThreads(threads)
            let y = net.forward(x)
            return Array(UnsafeBufferPointer(start: y.data, count: y.count))
        }
        let separate = predict(fused: false, threads: 1)
        for threads in [1, 2] {
            let fused = predict(fused: true, threads: threads)
            XCTAssert(fused.elementsEqual(separate) { $0.bitPattern == $1.bitPattern },
                      "\(config.name), \(threads) threads: fused inference differs from separate passes")
        }
    }

    func testResNet50() throws {
        try check(ModelConfig(name: "resnet50", outputs: 136, inputHeight: 64, inputWidth: 64, width: 8, seed: 3), batch: 2, folded: 53)
    }
    func testResNet18() throws {
        try check(ModelConfig(name: "resnet18", outputs: 136, inputHeight: 64, inputWidth: 64, width: 16, seed: 3), batch: 2, folded: 20)
    }
    func testUNet() throws {
        try check(ModelConfig(name: "unet", outputs: 5, inputHeight: 64, inputWidth: 64, width: 8, seed: 4), batch: 2, folded: 18)
    }
    func testMobileNetPIP() throws {
        try check(ModelConfig(name: "mobilenet-pip", outputs: PIPLayout.outputs(keypoints: 68), inputHeight: 64, inputWidth: 64,
                              width: 8, seed: 6), batch: 2, folded: 52)
    }
}
