import Engine
import Foundation
import Models
import XCTest

/// A real training run on a tiny task: nosenet learns where a bright blob sits in a dark, noisy
/// image (target: the blob centre, scaled to [-1, 1]). Mean-prediction MSE is about 0.2; a
/// network that localises the blob gets far below.
final class ConvergenceTests: XCTestCase {
    /// One batch: images NCHW [n, 1, h, w] and targets [n, 2] (x, y in [-1, 1]).
    static func blobBatch(_ n: Int, h: Int, w: Int, rng: inout RandomGenerator) -> (Tensor, [Float]) {
        let images = Tensor(shape: [n, 1, h, w])
        var targets: [Float] = []
        for i in 0 ..< n {
            let cx = rng.uniform(0.15, 0.85) * Float(w), cy = rng.uniform(0.15, 0.85) * Float(h)
            targets += [2 * cx / Float(w) - 1, 2 * cy / Float(h) - 1]
            let img = images.data + i * h * w
            for y in 0 ..< h {
                for x in 0 ..< w {
                    let d2 = (Float(x) + 0.5 - cx) * (Float(x) + 0.5 - cx) + (Float(y) + 0.5 - cy) * (Float(y) + 0.5 - cy)
                    img[y * w + x] = expf(-d2 / 8) + 0.1 * rng.uniform(-1, 1)
                }
            }
        }
        return (images, targets)
    }

    func testNoseNetLearnsBlobPosition() throws {
        let (h, w) = (32, 48)
        let net = try ModelZoo.make(ModelConfig(name: "nosenet", outputs: 2, inputHeight: h, inputWidth: w, seed: 3))
        let optimizer = AdamW(store: net.store, learningRate: 2e-3, weightDecay: 0.01)
        let loss = MSELoss()
        var rng = RandomGenerator(seed: 11)
        let (testImages, testTargets) = Self.blobBatch(64, h: h, w: w, rng: &rng)
        func testLoss() -> Float {
            net.training = false
            defer { net.training = true }
            let y = net.forward(testImages)
            return testTargets.withUnsafeBufferPointer { loss.forward(y, $0.baseAddress!) }
        }
        let before = testLoss()
        let start = Date()
        for _ in 0 ..< 200 {
            let (x, t) = Self.blobBatch(8, h: h, w: w, rng: &rng)
            net.store.zeroGrads()
            let y = net.forward(x)
            _ = t.withUnsafeBufferPointer { loss.forward(y, $0.baseAddress!) }
            net.backward(loss.gradient)
            optimizer.step()
        }
        let after = testLoss()
        print(String(format: "nosenet blob task: held-out MSE %.4f → %.4f after 200 steps (%.1f s)", before, after, Date().timeIntervalSince(start)))
        XCTAssertGreaterThan(before, 0.05, "the task should not start solved")
        XCTAssertLessThan(after, 0.01, "held-out MSE \(after) after 200 AdamW steps (started at \(before))")
    }
}
