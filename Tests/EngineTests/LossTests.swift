import Engine
import Foundation
import TestSupport
import XCTest

final class LossTests: XCTestCase {
    let shape = [2, 3, 4, 5]

    func randomArray(_ count: Int, seed: UInt64, low: Float = -1, high: Float = 1) -> [Float] {
        var rng = RandomGenerator(seed: seed)
        return (0 ..< count).map { _ in rng.uniform(low, high) }
    }

    /// Gaussian-blob targets per plane (as the heatmap generator makes), values in [0, 1].
    func heatmapTargets(planes: Int, h: Int, w: Int, seed: UInt64) -> [Float] {
        var rng = RandomGenerator(seed: seed)
        var t: [Float] = []
        for _ in 0 ..< planes {
            let cy = rng.uniform(0, Float(h - 1)), cx = rng.uniform(0, Float(w - 1))
            for y in 0 ..< h { for x in 0 ..< w {
                let d2 = (Float(y) - cy) * (Float(y) - cy) + (Float(x) - cx) * (Float(x) - cx)
                t.append(Foundation.exp(-d2 / 2))
            }}
        }
        return t
    }

    func testElementwiseLossValuesAgainstDirectFormulas() {
        let count = 120
        let p = randomArray(count, seed: 61), t = randomArray(count, seed: 62, low: 0, high: 1)
        let prediction = Tensor(shape: shape, values: p)
        let mse = t.withUnsafeBufferPointer { MSELoss().forward(prediction, $0.baseAddress!) }
        let l1 = t.withUnsafeBufferPointer { L1Loss().forward(prediction, $0.baseAddress!) }
        let diffs = zip(p, t).map { Double($0 - $1) }
        XCTAssertEqual(Double(mse), diffs.map { $0 * $0 }.reduce(0, +) / Double(count), accuracy: 1e-6)
        XCTAssertEqual(Double(l1), diffs.map(abs).reduce(0, +) / Double(count), accuracy: 1e-6)
        // Foreground weighting: weight 1 is plain MSE; weight 5 counts pixels with t > 0.1 five times.
        let plain = t.withUnsafeBufferPointer { HeatmapMSELoss(positiveWeight: 1).forward(prediction, $0.baseAddress!) }
        XCTAssertEqual(plain, mse, accuracy: 1e-7)
        let weighted = t.withUnsafeBufferPointer { HeatmapMSELoss(positiveWeight: 5).forward(prediction, $0.baseAddress!) }
        let expected = zip(diffs, t).map { ($1 > 0.1 ? 5 : 1) * $0 * $0 }.reduce(0, +) / Double(count)
        XCTAssertEqual(Double(weighted), expected, accuracy: 1e-6)
        // L1's subgradient at p = t is 0, like torch.sign.
        let l1Loss = L1Loss()
        _ = p.withUnsafeBufferPointer { l1Loss.forward(prediction, $0.baseAddress!) }
        XCTAssertEqual(l1Loss.gradient.toArray(), [Float](repeating: 0, count: count))
    }

    func testSpatialSoftmaxCrossEntropyAgainstDirectFormula() {
        let (planes, size) = (6, 20)
        let p = randomArray(planes * size, seed: 63, low: -3, high: 3)
        var t = heatmapTargets(planes: planes, h: 4, w: 5, seed: 64)
        for i in size ..< 2 * size { t[i] = 0 }   // plane 1 has no landmark: ignored
        let loss = SpatialSoftmaxCrossEntropy()
        let value = t.withUnsafeBufferPointer { loss.forward(Tensor(shape: shape, values: p), $0.baseAddress!) }
        var total = 0.0
        for plane in 0 ..< planes where plane != 1 {
            let pp = p[plane * size ..< (plane + 1) * size].map(Double.init)
            let tp = t[plane * size ..< (plane + 1) * size].map(Double.init)
            let mass = tp.reduce(0, +)
            let lse = Foundation.log(pp.map { Foundation.exp($0) }.reduce(0, +))
            total += zip(pp, tp).map { -($1 / mass) * ($0 - lse) }.reduce(0, +)
        }
        XCTAssertEqual(Double(value), total / 5, accuracy: 1e-5)
        XCTAssertEqual(Array(loss.gradient.toArray()[size ..< 2 * size]), [Float](repeating: 0, count: size))
        // The gradient of each plane sums to zero (softmax and normalised target both sum to 1).
        for plane in 0 ..< planes {
            XCTAssertEqual(loss.gradient.toArray()[plane * size ..< (plane + 1) * size].reduce(0, +), 0, accuracy: 1e-6)
        }
    }

    func testGradientsMatchFiniteDifferences() {
        let count = 120
        let p = randomArray(count, seed: 65)
        let targets = heatmapTargets(planes: 6, h: 4, w: 5, seed: 66)
        // L1 has a kink at p = t: keep every prediction at least 0.05 away from its target.
        let l1Prediction = zip(p, targets).map { pv, tv in abs(pv - tv) < 0.05 ? tv + 0.1 : pv }
        let cases: [(String, Loss, [Float])] = [
            ("MSELoss", MSELoss(), p), ("L1Loss", L1Loss(), l1Prediction),
            ("HeatmapMSELoss", HeatmapMSELoss(positiveWeight: 10), p),
            ("SpatialSoftmaxCrossEntropy", SpatialSoftmaxCrossEntropy(), p.map { $0 * 3 }),
        ]
        for (name, loss, prediction) in cases {
            // Float losses: a larger step and an absolute floor at the gradient's scale (1/count).
            let result = GradCheck.checkLoss(loss, prediction: Tensor(shape: shape, values: prediction), target: targets,
                                             samples: 60, eps: 1e-2, floor: 2e-3)
            XCTAssertLessThan(result.maxInputError, 2e-2, "\(name): \(result)")
        }
    }
}
