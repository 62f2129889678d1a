import Engine
import Foundation
import XCTest

/// A diverged model must never look finite to the trainer: one NaN or infinite logit, in a plane
/// with a target or in one without, makes every loss NaN (the trainer then stops at that step).
final class NonFiniteLossTests: XCTestCase {
    let (n, k, h, w) = (2, 3, 6, 5)

    func losses() -> [(String, Loss)] {
        [("MSELoss", MSELoss()), ("L1Loss", L1Loss()), ("HeatmapMSELoss", HeatmapMSELoss(positiveWeight: 10)),
         ("SpatialSoftmaxCrossEntropy", SpatialSoftmaxCrossEntropy()), ("SoftArgmaxHeatmapLoss", SoftArgmaxHeatmapLoss(sigma: 2))]
    }

    /// Gaussian targets in every plane except plane 1 (a landmark off the crop: no target mass).
    func targets() -> [Float] {
        var t = [Float](repeating: 0, count: n * k * h * w)
        for plane in 0 ..< n * k where plane != 1 {
            let (cx, cy) = (Float(plane % w), Float(plane % h))
            for y in 0 ..< h { for x in 0 ..< w {
                let d2 = (Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy)
                t[plane * h * w + y * w + x] = Foundation.exp(-d2 / 2)
            }}
        }
        return t
    }

    func loss(_ loss: Loss, poisonAt index: Int?, with value: Float) -> Float {
        let prediction = Tensor(shape: [n, k, h, w])
        for i in 0 ..< prediction.count { prediction.data[i] = Float(i % 7) * 0.1 - 0.3 }
        if let index { prediction.data[index] = value }
        return targets().withUnsafeBufferPointer { loss.forward(prediction, $0.baseAddress!) }
    }

    func testFiniteLogitsGiveFiniteLossesWithASkippedPlane() {
        for (name, l) in losses() { XCTAssertTrue(loss(l, poisonAt: nil, with: 0).isFinite, name) }
    }

    func testANonFiniteLogitMakesEveryLossNaN() {
        let size = h * w
        // Plane 0 has a target, plane 1 has none (skipped by the heatmap losses), plane 5 is the last.
        for (where_, index) in [("a plane with a target", 3), ("a skipped plane", size + 2), ("the last plane", n * k * size - 1)] {
            for value in [Float.nan, .infinity, -.infinity] {
                for (name, l) in losses() {
                    let result = loss(l, poisonAt: index, with: value)
                    XCTAssertFalse(result.isFinite, "\(name) with \(value) in \(where_) gave \(result)")
                }
            }
        }
    }

    func testSkippedPlanesStillDoNotCountInTheMean() {
        // Heatmap losses average over the planes with a target: 5 of 6 here.
        let l = SpatialSoftmaxCrossEntropy()
        let value = loss(l, poisonAt: nil, with: 0)
        let skipped = l.gradient.data + h * w
        XCTAssertEqual((0 ..< h * w).map { skipped[$0] }, [Float](repeating: 0, count: h * w))
        XCTAssertTrue(value > 0 && value.isFinite)
    }
}
