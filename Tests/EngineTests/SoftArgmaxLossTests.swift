import Engine
import TestSupport
import XCTest

final class SoftArgmaxLossTests: XCTestCase {
    /// Gaussian targets at random positions, random logits: analytic gradient vs central differences.
    func testGradientMatchesFiniteDifferences() {
        let (n, k, h, w) = (2, 3, 9, 11)
        var rng = RandomGenerator(seed: 5)
        var target = [Float](repeating: 0, count: n * k * h * w)
        for plane in 0 ..< n * k {
            let cx = rng.uniform(1, Float(w - 2)), cy = rng.uniform(1, Float(h - 2))
            for y in 0 ..< h { for x in 0 ..< w {
                let d2 = (Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy)
                target[plane * h * w + y * w + x] = expf(-d2 / 4)
            }}
        }
        // One plane without target mass (landmark off the crop) is ignored.
        for i in 0 ..< h * w { target[4 * h * w + i] = 0 }
        let prediction = GradCheck.randomTensor([n, k, h, w], seed: 9, range: 2)
        let loss = SoftArgmaxHeatmapLoss(sigma: 1.5, coordinateWeight: 2)
        let result = GradCheck.checkLoss(loss, prediction: prediction, target: target)
        XCTAssertLessThan(result.maxInputError, 2e-2, "\(result)")
        XCTAssertEqual(loss.gradient.data[4 * h * w], 0)
    }

    /// A plane whose logits equal the log of its target has zero coordinate error, so only the
    /// cross-entropy remains, and moving the peak away raises the loss.
    func testLossPrefersTheRightPosition() {
        let (h, w) = (15, 15)
        func gaussian(_ cx: Float, _ cy: Float) -> [Float] {
            (0 ..< h * w).map { i in
                let x = Float(i % w), y = Float(i / w)
                return expf(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / 8)
            }
        }
        let target = gaussian(7, 7)
        let loss = SoftArgmaxHeatmapLoss(sigma: 2)
        let right = loss.forward(Tensor(shape: [1, 1, h, w], values: target.map { logf(max($0, 1e-30)) }), target)
        let wrong = loss.forward(Tensor(shape: [1, 1, h, w], values: gaussian(10, 5).map { logf(max($0, 1e-30)) }), target)
        XCTAssertLessThan(right, wrong)
    }
}
