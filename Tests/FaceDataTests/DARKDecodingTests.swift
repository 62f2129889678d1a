import FaceData
import Foundation
import XCTest

/// Distribution-aware decoding (DARK) keeps sub-pixel precision on small heatmaps.
final class DARKDecodingTests: XCTestCase {
    /// Mean and max decoding errors (px) of Gaussians at random sub-pixel positions on a side×side grid.
    func errors(side: Int, sigma: Float, count: Int, noise: Float,
                decode: (UnsafePointer<Float>) -> (x: Float, y: Float)) -> (mean: Float, max: Float) {
        var rng = SplitMix64(seed: 15)
        var plane = [Float](repeating: 0, count: side * side)
        var total: Float = 0, worst: Float = 0
        for _ in 0 ..< count {
            // Away from the border, where DARK's differences need 2 px on each side.
            let x = 4 + rng.unit() * Float(side - 9), y = 4 + rng.unit() * Float(side - 9)
            for i in 0 ..< plane.count { plane[i] = noise * rng.unit() }
            plane.withUnsafeMutableBufferPointer { Heatmaps.render(x: x, y: y, sigma: sigma, into: $0.baseAddress!, width: side, height: side) }
            if noise > 0 { for i in 0 ..< plane.count { plane[i] += noise * rng.unit() } }
            let p = plane.withUnsafeBufferPointer { decode($0.baseAddress!) }
            let e = ((p.x - x) * (p.x - x) + (p.y - y) * (p.y - y)).squareRoot()
            total += e; worst = max(worst, e)
        }
        return (total / Float(count), worst)
    }

    func testDARKBeatsArgmaxOnSigma2Gaussians() {
        let side = 56, sigma: Float = 2
        for noise: Float in [0, 0.02] {
            let argmax = errors(side: side, sigma: sigma, count: 200, noise: noise) { plane in
                var best = 0
                for i in 1 ..< side * side where plane[i] > plane[best] { best = i }
                return (Float(best % side), Float(best / side))
            }
            let parabola = errors(side: side, sigma: sigma, count: 200, noise: noise) {
                let d = Heatmaps.decode($0, width: side, height: side); return (d.x, d.y)
            }
            let dark = errors(side: side, sigma: sigma, count: 200, noise: noise) {
                Heatmaps.decodeDARK($0, width: side, height: side, blurSigma: sigma)
            }
            print(String(format: "DARK decoding, 56x56, sigma 2, noise %.2f: mean error argmax %.4f px, log-parabola %.4f px, DARK %.4f px (max %.3f / %.3f / %.3f)",
                         noise, argmax.mean, parabola.mean, dark.mean, argmax.max, parabola.max, dark.max))
            XCTAssertLessThan(dark.mean, argmax.mean / 4, "noise \(noise)")
            XCTAssertLessThan(dark.max, 0.5, "noise \(noise)")
        }
        // Clean Gaussians: the smoothed log is a quadratic, so the Taylor step is (almost) exact.
        let clean = errors(side: side, sigma: sigma, count: 200, noise: 0) {
            Heatmaps.decodeDARK($0, width: side, height: side, blurSigma: sigma)
        }
        XCTAssertLessThan(clean.mean, 0.05)
    }

    /// A logit plane (a softmax model's output) decodes like the Gaussian it is the log of.
    func testDARKOnLogitsMatchesTheGaussian() {
        let side = 32
        var plane = [Float](repeating: 0, count: side * side)
        plane.withUnsafeMutableBufferPointer { Heatmaps.render(x: 13.3, y: 17.8, sigma: 2, into: $0.baseAddress!, width: side, height: side) }
        let logits = plane.map { logf(max($0, 1e-30)) + 3 }
        let a = plane.withUnsafeBufferPointer { Heatmaps.decodeDARK($0.baseAddress!, width: side, height: side, blurSigma: 2) }
        let b = logits.withUnsafeBufferPointer { Heatmaps.decodeDARK($0.baseAddress!, width: side, height: side, blurSigma: 2, logits: true) }
        XCTAssertEqual(a.x, b.x, accuracy: 1e-3); XCTAssertEqual(a.y, b.y, accuracy: 1e-3)
        XCTAssertEqual(b.x, 13.3, accuracy: 0.05); XCTAssertEqual(b.y, 17.8, accuracy: 0.05)
    }

    /// Near the border the differences would leave the plane: the argmax comes back.
    func testBorderPeaksFallBackToTheArgmax() {
        let side = 20
        var plane = [Float](repeating: 0, count: side * side)
        plane.withUnsafeMutableBufferPointer { Heatmaps.render(x: 1.2, y: 10.4, sigma: 2, into: $0.baseAddress!, width: side, height: side) }
        let p = plane.withUnsafeBufferPointer { Heatmaps.decodeDARK($0.baseAddress!, width: side, height: side, blurSigma: 2) }
        XCTAssertEqual(p.x, 1); XCTAssertEqual(p.y, 10)
    }
}
