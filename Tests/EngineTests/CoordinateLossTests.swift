import Engine
import Foundation
import TestSupport
import XCTest

final class WingLossTests: XCTestCase {
    func randomArray(_ count: Int, seed: UInt64, low: Float, high: Float) -> [Float] {
        var rng = RandomGenerator(seed: seed)
        return (0 ..< count).map { _ in rng.uniform(low, high) }
    }

    /// Against Scripts/make_layer_fixtures.py's plain torch expression (torch.where of the two pieces).
    func testMatchesPyTorch() {
        for f in Fixtures.load("coordinate_losses") {
            XCTAssertEqual(f.string("kind"), "WingLoss")
            let loss = WingLoss(width: f.float("width"), curvature: f.float("curvature"))
            let prediction = Tensor(shape: f.shape("prediction"), values: f.array("prediction"))
            let value = f.array("target").withUnsafeBufferPointer { loss.forward(prediction, $0.baseAddress!) }
            Fixtures.assertClose([value], f.array("loss"), "\(f.name).loss", tolerance: 1e-5)
            Fixtures.assertClose(loss.gradient.toArray(), f.array("gradient"), "\(f.name).gradient", tolerance: 1e-6)
        }
    }

    /// The formula written out in Double, the defaults, continuity at |x| = w, and the subgradient 0 at x = 0.
    func testValuesAgainstTheFormula() {
        let (w, eps) = (WingLoss.defaultWidth, WingLoss.defaultCurvature)
        XCTAssertEqual(w, 10 / 128); XCTAssertEqual(eps, 2 / 128)
        let count = 200
        let t = randomArray(count, seed: 71, low: 0, high: 1)
        let p = zip(t, randomArray(count, seed: 72, low: -0.3, high: 0.3)).map { $0 + $1 }
        let loss = WingLoss()
        let value = t.withUnsafeBufferPointer { loss.forward(Tensor(shape: [4, 50], values: p), $0.baseAddress!) }
        let (wd, ed) = (Double(w), Double(eps))
        let c = wd - wd * Foundation.log(1 + wd / ed)
        let expected = zip(p, t).map { pv, tv -> Double in
            let a = abs(Double(pv) - Double(tv))
            return a < wd ? wd * Foundation.log(1 + a / ed) : a - c
        }.reduce(0, +) / Double(count)
        XCTAssertEqual(Double(value), expected, accuracy: 1e-6)
        // Both sides of the join give the same value.
        let inside = wd * Foundation.log(1 + wd / ed), outside = wd - c
        XCTAssertEqual(inside, outside, accuracy: 1e-12)
        // Prediction = target: loss 0, gradient 0.
        let same = t.withUnsafeBufferPointer { loss.forward(Tensor(shape: [4, 50], values: t), $0.baseAddress!) }
        XCTAssertEqual(same, 0)
        XCTAssertEqual(loss.gradient.toArray(), [Float](repeating: 0, count: count))
    }

    func testGradientMatchesFiniteDifferences() {
        let count = 120
        let t = randomArray(count, seed: 73, low: 0, high: 1)
        // Errors on both sides of w, none within 2·step of the kinks at 0 and ±w.
        var p = zip(t, randomArray(count, seed: 74, low: -0.25, high: 0.25)).map { $0 + $1 }
        let w = WingLoss.defaultWidth
        for i in 0 ..< count {
            let d = p[i] - t[i]
            if abs(d) < 0.004 || abs(abs(d) - w) < 0.004 { p[i] = t[i] + (d < 0 ? -1 : 1) * (w + 0.02) }
        }
        let result = GradCheck.checkLoss(WingLoss(), prediction: Tensor(shape: [2, 60], values: p), target: t,
                                         samples: 80, eps: 1e-3, floor: 2e-3)
        XCTAssertLessThan(result.maxInputError, 2e-2, "\(result)")
    }

    /// Block sums added in order: the same value whatever the thread count.
    func testThreadCountIndependent() {
        let count = 300_000
        let t = randomArray(count, seed: 75, low: 0, high: 1)
        let p = zip(t, randomArray(count, seed: 76, low: -0.3, high: 0.3)).map { $0 + $1 }
        var values: [Float] = []
        defer { Parallel.setThreads(1) }
        for threads in [1, 2, 4] {
            Parallel.setThreads(threads)
            let loss = WingLoss()
            values.append(t.withUnsafeBufferPointer { loss.forward(Tensor(shape: [count], values: p), $0.baseAddress!) })
        }
        XCTAssertEqual(Set(values).count, 1, "\(values)")
    }
}
