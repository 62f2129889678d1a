import FaceData
import Foundation
import TestSupport
import XCTest

/// Rotation and scale ranges as 300-W recipes use them (±30°, ±25 %), defaults as before.
final class AugmentationRangeTests: XCTestCase {
    var recipe: AugmentationParameters {
        var p = AugmentationParameters()
        p.maxRotationDegrees = 30; p.maxZoomOut = 0.25; p.maxZoomIn = 0.25
        return p
    }

    func testRecipeDrawsCoverRotationAndScaleBothWays() {
        var maxRotation: Float = 0, smallest: Float = 2, largest: Float = 0
        for n in 0 ..< 400 {
            var rng = SplitMix64(3, 0, UInt64(n))
            let a = Augmentation.draw(recipe, rng: &rng)
            let scale = 1 - a.zoomOut
            XCTAssertTrue(abs(a.rotationDegrees) <= 30 && scale >= 0.75 && scale <= 1.25, "\(a)")
            maxRotation = max(maxRotation, abs(a.rotationDegrees))
            smallest = min(smallest, scale); largest = max(largest, scale)
        }
        XCTAssertGreaterThan(maxRotation, 28)
        XCTAssertLessThan(smallest, 0.77); XCTAssertGreaterThan(largest, 1.23)
    }

    /// The default ranges draw exactly what they drew before the zoom-in range existed.
    func testDefaultDrawsAreUnchanged() {
        let p = AugmentationParameters()
        XCTAssertEqual(p.maxZoomIn, 0); XCTAssertEqual(p.maxRotationDegrees, 22); XCTAssertEqual(p.maxZoomOut, 0.2)
        for n in 0 ..< 50 {
            var a = SplitMix64(1, 0, UInt64(n)), b = a
            let drawn = Augmentation.draw(p, rng: &a)
            // The seed's formula, written out.
            let before = Augmentation(flip: b.unit() < p.flipProbability, shearX: b.symmetric(p.maxShearX),
                                      shiftX: b.symmetric(p.maxShift), shiftY: b.symmetric(p.maxShift),
                                      zoomOut: b.unit() * p.maxZoomOut, rotationDegrees: b.symmetric(p.maxRotationDegrees),
                                      brightness: b.symmetric(p.maxBrightness), contrast: 1 + b.symmetric(p.maxContrast))
            XCTAssertEqual(drawn, before)
        }
    }

    /// An enlarging, strongly rotated draw still puts every keypoint on its dot, and maps back.
    func testKeypointsStayOnTheirDotsUnderRecipeRanges() throws {
        var options = LoaderOptions()
        options.width = 128; options.height = 128
        // A loose crop (face ≈ 56 % of it), so ×1.25 and 30° keep the face inside.
        options.enlargement = 0.8
        options.augment = true
        options.augmentation = recipe
        options.augmentation.maxBrightness = 0; options.augmentation.maxContrast = 0
        let pipeline = try SamplePipeline(markup: .ibug68, options: options)
        let points = syntheticFace68(x: 60, y: 50, size: 100)
        let record = FaceRecord(image: dottedImage(width: 220, height: 200, points: points), keypoints: points,
                                box: Box(x: 60, y: 50, width: 100, height: 100), source: "dots")
        // A fixed extreme draw (±30°, ×1.25) and random ones.
        var draws = [Augmentation(flip: true, zoomOut: -0.25, rotationDegrees: 30), Augmentation(zoomOut: 0.25, rotationDegrees: -30)]
        var enlarged = 0
        for n in 0 ..< 12 {
            var rng = SplitMix64(9, 0, UInt64(n))
            let a = pipeline.drawAugmentation(for: record, rng: &rng)
            if a.zoomOut < 0 { enlarged += 1 }
            draws.append(a)
        }
        XCTAssertGreaterThan(enlarged, 0)
        for (n, augmentation) in draws.enumerated() {
            let sample = pipeline.sample(record, augmentation: augmentation)
            for k in 0 ..< 68 {
                let x = sample.keypoints[2 * k], y = sample.keypoints[2 * k + 1]
                XCTAssertTrue(x >= 0 && y >= 0 && x <= 127 && y <= 127, "draw \(n) point \(k) left the frame")
                XCTAssertGreaterThan(sample.image.sample(x, y), 0.6, "draw \(n) point \(k) is off its dot")
            }
            let normalised = sample.keypoints.map { $0 / 128 }
            let back = pipeline.sourceKeypoints(normalised: normalised, info: sample.info)
            for k in 0 ..< 136 { XCTAssertEqual(back[k], record.keypoints[k], accuracy: 1e-3) }
        }
        // ×1.25 about the crop centre: the face's extent grows by exactly that factor.
        let plain = pipeline.sample(record), big = pipeline.sample(record, augmentation: Augmentation(zoomOut: -0.25))
        func width(_ s: PreparedSample) -> Float {
            let xs = stride(from: 0, to: 136, by: 2).map { s.keypoints[$0] }
            return xs.max()! - xs.min()!
        }
        XCTAssertEqual(width(big) / width(plain), 1.25, accuracy: 1e-4)
    }
}
