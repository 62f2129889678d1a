import Engine
import Models
import TestSupport
import XCTest

/// mobilenet-pfld at its standard size (×0.25, 112×112, 68 keypoints) and at 96×96: parameter and
/// multiply-accumulate counts against PyTorch's twin (Scripts/torch_models.py: 207,256 parameters;
/// conv_macs 8,034,576 and 5,622,688), and a training step that yields finite outputs and gradients.
final class MobileNetTests: XCTestCase {
    func testStandardSizeAnd96() throws {
        for (side, macs) in [(112, 8_034_576), (96, 5_622_688)] {
            var config = try ModelZoo.defaultConfig("mobilenet-pfld", keypoints: 68)
            XCTAssertEqual(config.width, 8)
            config.inputHeight = side; config.inputWidth = side
            let net = try ModelZoo.make(config)
            XCTAssertEqual(net.parameterCount, 207_256)
            XCTAssertEqual(net.macsPerImage, macs, "\(side)×\(side)")
            let y = net.forward(GradCheck.randomTensor([2, 1, side, side], seed: 1))
            XCTAssertEqual(y.shape, [2, 136])
            XCTAssertTrue(y.toArray().allSatisfy(\.isFinite))
            let dy = Tensor(shape: y.shape, values: [Float](repeating: 0.01, count: y.count))
            net.store.zeroGrads()
            net.backward(dy)
            let grads = Array(net.store.grads)
            XCTAssertTrue(grads.allSatisfy(\.isFinite))
            // Every parameter group gets a gradient (the stem's first weights included).
            for info in net.store.parameters {
                let g = try XCTUnwrap(net.store.gradArray(named: info.name))
                XCTAssertTrue(g.contains { $0 != 0 }, "\(side): no gradient for \(info.name)")
            }
        }
        XCTAssertThrowsError(try ModelZoo.make(ModelConfig(name: "mobilenet-pfld", outputs: 136, inputHeight: 24, inputWidth: 112, width: 8)))
    }

    /// mobilenet-pip (×1, 128², 68 keypoints with 10 neighbours each): PyTorch's twin has 4,226,780
    /// parameters and conv_macs 300,744,704 (230,257,664 at 112²); the output is the 8×8 grid
    /// (7×7 at 112²) of 68·23 channels.
    func testPIPStandardSizeAnd112() throws {
        for (side, macs, grid) in [(128, 300_744_704, 8), (112, 230_257_664, 7)] {
            var config = try ModelZoo.defaultConfig("mobilenet-pip", keypoints: 68)
            config.inputHeight = side; config.inputWidth = side
            let net = try ModelZoo.make(config)
            XCTAssertEqual(net.parameterCount, 4_226_780)
            XCTAssertEqual(net.macsPerImage, macs, "\(side)×\(side)")
            let y = net.forward(GradCheck.randomTensor([2, 1, side, side], seed: 2))
            XCTAssertEqual(y.shape, [2, 68 * 23, grid, grid])
            XCTAssertTrue(y.toArray().allSatisfy(\.isFinite))
        }
        XCTAssertThrowsError(try ModelZoo.make(ModelConfig(name: "mobilenet-pip", outputs: 100, inputHeight: 128, inputWidth: 128, width: 8)))
    }
}
