import FaceData
import Foundation
import TestSupport
import XCTest

/// Occlusion, blur, gamma and box jitter (RecipeAugmentation.swift): off by default without a
/// single extra random draw, and each doing to pixels and keypoints what it says.
final class RecipeAugmentationTests: XCTestCase {
    func dottedRecord() -> FaceRecord {
        let points = syntheticFace68(x: 60, y: 50, size: 100)
        return FaceRecord(image: dottedImage(width: 220, height: 200, points: points), keypoints: points,
                          box: Box(x: 60, y: 50, width: 100, height: 100), source: "dots")
    }

    func pipeline(width: Int = 96, height: Int = 96, enlargement: Float = 0.4,
                  _ configure: (inout AugmentationParameters) -> Void = { _ in }) throws -> SamplePipeline {
        var options = LoaderOptions()
        options.width = width; options.height = height; options.enlargement = enlargement
        options.augment = true
        configure(&options.augmentation)
        return try SamplePipeline(markup: .ibug68, options: options)
    }

    var allOn: AugmentationParameters {
        var p = AugmentationParameters()
        p.occlusionProbability = 1; p.blurProbability = 1; p.gammaRange = 0.3; p.boxJitter = 0.1
        return p
    }

    /// Off: the generator advances exactly as many draws as the seed's eight, and the result has
    /// no recipe effect. On: the seed's eight come out the same, the recipe's follow.
    func testOffDrawsNothingAndOnKeepsTheSeedDraws() {
        for n in 0 ..< 50 {
            var a = SplitMix64(4, 0, UInt64(n)), b = a
            let off = Augmentation.draw(AugmentationParameters(), rng: &a)
            for _ in 0 ..< 8 { _ = b.next() }
            XCTAssertEqual(a.state, b.state)
            XCTAssertEqual(off.boxJitter, .none); XCTAssertNil(off.occlusion)
            XCTAssertEqual(off.blurSigma, 0); XCTAssertEqual(off.gamma, 1)
            XCTAssertFalse(off.hasPixelEffects)

            var c = SplitMix64(4, 0, UInt64(n))
            var on = Augmentation.draw(allOn, rng: &c)
            XCTAssertNotEqual(c.state, a.state)
            XCTAssertNotNil(on.occlusion); XCTAssertGreaterThan(on.blurSigma, -1)
            on.boxJitter = .none; on.occlusion = nil; on.blurSigma = 0; on.gamma = 1
            XCTAssertEqual(on, off, "draw \(n): the seed's draws changed")
        }
    }

    func testDrawsStayInTheirRanges() {
        var p = allOn
        p.occlusionProbability = 0.5; p.blurProbability = 0.5
        var occluded = 0, blurred = 0, noisy = 0
        var minGamma: Float = 2, maxGamma: Float = 0, maxShift: Float = 0
        for n in 0 ..< 400 {
            var rng = SplitMix64(5, 0, UInt64(n))
            let a = Augmentation.draw(p, rng: &rng)
            if let o = a.occlusion {
                occluded += 1
                if o.noiseSeed != nil { noisy += 1 }
                XCTAssertTrue(o.width >= 0.1 && o.width <= 0.4 && o.height >= 0.1 && o.height <= 0.4, "\(o)")
                XCTAssertTrue((0 ... 1).contains(o.grey) && (0 ... 1).contains(o.centreX) && (0 ... 1).contains(o.centreY))
            }
            if a.blurSigma > 0 { blurred += 1 }
            XCTAssertLessThanOrEqual(a.blurSigma, 1.5)
            minGamma = min(minGamma, a.gamma); maxGamma = max(maxGamma, a.gamma)
            XCTAssertTrue(abs(a.boxJitter.shiftX) <= 0.1 && abs(a.boxJitter.shiftY) <= 0.1 && abs(a.boxJitter.scale - 1) <= 0.1)
            maxShift = max(maxShift, abs(a.boxJitter.shiftX))
        }
        XCTAssertTrue((150 ... 250).contains(occluded), "\(occluded)"); XCTAssertTrue((150 ... 250).contains(blurred), "\(blurred)")
        XCTAssertTrue(noisy > occluded / 4 && noisy < 3 * occluded / 4, "\(noisy) of \(occluded)")
        XCTAssertTrue(minGamma >= 1 / 1.3 - 1e-5 && minGamma < 0.8 && maxGamma <= 1.3 + 1e-5 && maxGamma > 1.25, "\(minGamma) \(maxGamma)")
        XCTAssertGreaterThan(maxShift, 0.09)
    }

    /// The rectangle changes the pixels inside it (one grey, or noise) and nothing else; the
    /// keypoints are those of the unoccluded sample.
    func testOcclusionCoversItsRectangleOnly() throws {
        let pipeline = try pipeline()
        let record = dottedRecord()
        let plain = pipeline.sample(record)
        for noise in [false, true] {
            let o = Occlusion(centreX: 0.4, centreY: 0.55, width: 0.3, height: 0.2, grey: 0.7, noiseSeed: noise ? 99 : nil)
            let sample = pipeline.sample(record, augmentation: Augmentation(occlusion: o))
            XCTAssertEqual(sample.keypoints, plain.keypoints)
            let r = o.pixelRect(cropWidth: 96, cropHeight: 96)
            XCTAssertEqual([r.x0, r.y0, r.x1, r.y1], [24, 43, 53, 62])
            var inside: [Float] = []
            for y in 0 ..< 96 { for x in 0 ..< 96 {
                let i = y * 96 + x, v = sample.image.pixels[i]
                if x >= r.x0 && x < r.x1 && y >= r.y0 && y < r.y1 { inside.append(v) } else { XCTAssertEqual(v, plain.image.pixels[i]) }
            }}
            XCTAssertEqual(inside.count, 29 * 19)
            if noise {
                let mean = inside.reduce(0, +) / Float(inside.count)
                XCTAssertEqual(mean, 0.5, accuracy: 0.05)
                XCTAssertGreaterThan(Set(inside).count, inside.count / 2)
            } else {
                XCTAssertTrue(inside.allSatisfy { abs($0 - 0.7) < 1e-6 })
            }
        }
    }

    /// Blur keeps the image's mean (symmetric borders), smooths it, and leaves a flat image flat.
    func testBlurPreservesTheMean() throws {
        let pipeline = try pipeline(width: 80, height: 64)
        let record = dottedRecord()
        let plain = pipeline.sample(record)
        func mean(_ v: [Float]) -> Double { v.reduce(0.0) { $0 + Double($1) } / Double(v.count) }
        func roughness(_ v: [Float]) -> Double { zip(v, v.dropFirst()).reduce(0.0) { $0 + Double(abs($1.0 - $1.1)) } }
        for sigma: Float in [0.5, 1.5, 4] {
            let blurred = pipeline.sample(record, augmentation: Augmentation(blurSigma: sigma))
            XCTAssertEqual(mean(blurred.image.pixels), mean(plain.image.pixels), accuracy: 1e-5, "σ \(sigma)")
            XCTAssertLessThan(roughness(blurred.image.pixels), 0.9 * roughness(plain.image.pixels), "σ \(sigma)")
            XCTAssertEqual(blurred.keypoints, plain.keypoints)
        }
        var flat = [Float](repeating: 0.3, count: 30 * 20)
        flat.withUnsafeMutableBufferPointer { Augmentation(blurSigma: 2).applyPixelEffects(to: $0.baseAddress!, width: 30, height: 20) }
        XCTAssertTrue(flat.allSatisfy { abs($0 - 0.3) < 1e-6 })
        // A single bright pixel in a corner: its mass stays in the image.
        var spot = [Float](repeating: 0, count: 30 * 20)
        spot[0] = 1
        spot.withUnsafeMutableBufferPointer { Augmentation(blurSigma: 2).applyPixelEffects(to: $0.baseAddress!, width: 30, height: 20) }
        XCTAssertEqual(spot.reduce(0, +), 1, accuracy: 1e-5)
    }

    /// γ = 1 is the identity (bit for bit), other γ map v ↦ v^γ.
    func testGammaOneIsIdentity() throws {
        let pipeline = try pipeline()
        let record = dottedRecord()
        let plain = pipeline.sample(record)
        let one = pipeline.sample(record, augmentation: Augmentation(gamma: 1))
        XCTAssertEqual(one.image.pixels.map(\.bitPattern), plain.image.pixels.map(\.bitPattern))
        let two = pipeline.sample(record, augmentation: Augmentation(gamma: 2))
        for (a, b) in zip(two.image.pixels, plain.image.pixels) { XCTAssertEqual(a, b * b, accuracy: 2e-6) }
        XCTAssertEqual(two.keypoints, plain.keypoints)
        // Darker for γ > 1, brighter for γ < 1.
        let half = pipeline.sample(record, augmentation: Augmentation(gamma: 0.5))
        XCTAssertGreaterThan(half.image.pixels.reduce(0, +), plain.image.pixels.reduce(0, +))
    }

    /// Jitter builds the crop from the moved box: pixels and keypoints move together (every point
    /// still on its dot), by the amount the moved box implies, and map back to the source exactly.
    func testBoxJitterMovesKeypointsWithTheCrop() throws {
        let pipeline = try pipeline()
        let record = dottedRecord()
        let plain = pipeline.sample(record)
        let jitter = BoxJitter(shiftX: 0.1, shiftY: -0.05, scale: 1.1)
        let sample = pipeline.sample(record, augmentation: Augmentation(boxJitter: jitter))
        // The crop of a record whose box is the moved one.
        var moved = record
        moved.box = Box(x: 60 + 10 - 5, y: 50 - 5 - 5, width: 110, height: 110)
        let expected = pipeline.sample(moved)
        for k in 0 ..< 136 { XCTAssertEqual(sample.keypoints[k], expected.keypoints[k], accuracy: 1e-3) }
        for (a, b) in zip(sample.image.pixels, expected.image.pixels) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        // The box moved right by 10 px of 100 · 1.4 → 96 crop pixels: the face moves left in the crop,
        // and scales by 1/1.1 about the crop centre.
        let c: Float = 47.5, s: Float = 96 / 140
        for k in 0 ..< 68 {
            let px = plain.keypoints[2 * k], py = plain.keypoints[2 * k + 1]
            XCTAssertEqual(sample.keypoints[2 * k], (px - c - 10 * s) / 1.1 + c, accuracy: 1e-3)
            XCTAssertEqual(sample.keypoints[2 * k + 1], (py - c + 5 * s) / 1.1 + c, accuracy: 1e-3)
            XCTAssertGreaterThan(sample.image.sample(sample.keypoints[2 * k], sample.keypoints[2 * k + 1]), 0.6, "point \(k) off its dot")
        }
        let back = pipeline.sourceKeypoints(normalised: sample.keypoints.map { $0 / 96 }, info: sample.info)
        for k in 0 ..< 136 { XCTAssertEqual(back[k], record.keypoints[k], accuracy: 1e-3) }
        // No box (the whole image is the crop): nothing to jitter.
        let boxless = FaceRecord(image: record.image, keypoints: record.keypoints, box: nil, source: "whole")
        XCTAssertEqual(pipeline.cropTransform(for: boxless, boxJitter: jitter), pipeline.cropTransform(for: boxless))
    }

    /// Everything on through the loader's own draw: keypoints stay on their dots and map back.
    func testAllOnThroughDrawAugmentation() throws {
        let pipeline = try pipeline(enlargement: 0.6) { $0 = self.allOn; $0.maxBrightness = 0; $0.maxContrast = 0; $0.blurMaxSigma = 0.7 }
        let record = dottedRecord()
        var jittered = 0
        for n in 0 ..< 12 {
            var rng = SplitMix64(6, 0, UInt64(n))
            let a = pipeline.drawAugmentation(for: record, rng: &rng)
            if a.boxJitter != .none { jittered += 1 }
            var clean = a
            clean.occlusion = nil
            let sample = pipeline.sample(record, augmentation: clean)
            for k in 0 ..< 68 {
                let x = sample.keypoints[2 * k], y = sample.keypoints[2 * k + 1]
                XCTAssertTrue(x >= 0 && y >= 0 && x <= 95 && y <= 95, "draw \(n) point \(k) left the frame")
                XCTAssertGreaterThan(sample.image.sample(x, y), 0.3, "draw \(n) point \(k) is off its dot")
            }
            let back = pipeline.sourceKeypoints(normalised: sample.keypoints.map { $0 / 96 }, info: sample.info)
            for k in 0 ..< 136 { XCTAssertEqual(back[k], record.keypoints[k], accuracy: 1e-3) }
        }
        XCTAssertGreaterThan(jittered, 8)
    }

    /// Reframing: whatever the rotation, shear, zoom, shift and flip, the augmented face's box
    /// stands to its keypoints as the labelled box does — for a tight box (the keypoints' extent,
    /// as in ytfaces68) the extent fills the crop as a validation crop's does — and the keypoints
    /// stay on their dots and map back to the source image.
    func testReframeKeepsTheBoxToKeypointRelation() throws {
        let pipeline = try pipeline { $0.maxRotationDegrees = 30; $0.maxZoomOut = 0.25; $0.maxZoomIn = 0.25; $0.reframe = true }
        let dotted = dottedRecord()
        func extent(_ p: [Float]) -> (cx: Float, cy: Float, w: Float, h: Float) {
            let xs = stride(from: 0, to: p.count, by: 2).map { p[$0] }, ys = stride(from: 1, to: p.count, by: 2).map { p[$0] }
            return ((xs.min()! + xs.max()!) / 2, (ys.min()! + ys.max()!) / 2, xs.max()! - xs.min()!, ys.max()! - ys.min()!)
        }
        let e = extent(dotted.keypoints)
        let tight = FaceRecord(image: dotted.image, keypoints: dotted.keypoints, box: Box(x: e.cx - e.w / 2, y: e.cy - e.h / 2, width: e.w, height: e.h), source: "tight")
        // A detector-like box: 20 % of the extent's width right of it, 10 % lower, 1.3 × its size.
        let loose = FaceRecord(image: dotted.image, keypoints: dotted.keypoints,
                               box: Box(x: e.cx + 0.2 * e.w - 0.65 * e.w, y: e.cy + 0.1 * e.h - 0.65 * e.h, width: 1.3 * e.w, height: 1.3 * e.h), source: "loose")
        let centre: Float = 47.5
        var rotated = 0, flipped = 0
        for n in 0 ..< 16 {
            var rng = SplitMix64(9, 0, UInt64(n))
            let a = pipeline.drawAugmentation(for: tight, rng: &rng)
            XCTAssertTrue(a.reframe)
            if abs(a.rotationDegrees) > 10 { rotated += 1 }
            if a.flip { flipped += 1 }
            let t = pipeline.sample(tight, augmentation: a)
            let te = extent(t.keypoints)
            XCTAssertEqual(te.cx, centre, accuracy: 1e-3, "draw \(n)"); XCTAssertEqual(te.cy, centre, accuracy: 1e-3)
            XCTAssertEqual(max(te.w, te.h) * 1.4, 96, accuracy: 1e-3, "draw \(n): the extent does not fill the box")
            for k in 0 ..< 68 {
                XCTAssertGreaterThan(t.image.sample(t.keypoints[2 * k], t.keypoints[2 * k + 1]), 0.6, "draw \(n) point \(k) off its dot")
            }
            let back = pipeline.sourceKeypoints(normalised: t.keypoints.map { $0 / 96 }, info: t.info)
            for k in 0 ..< 136 { XCTAssertEqual(back[k], tight.keypoints[k], accuracy: 1e-3) }
            // The loose box: its centre stays 20 % of the extent right (left when mirrored) and 10 % below.
            let l = extent(pipeline.sample(loose, augmentation: a).keypoints)
            XCTAssertEqual(centre - l.cx, (a.flip ? -0.2 : 0.2) * l.w, accuracy: 1e-2, "draw \(n)")
            XCTAssertEqual(centre - l.cy, 0.1 * l.h, accuracy: 1e-2, "draw \(n)")
            XCTAssertEqual(max(1.3 * l.w, 1.3 * l.h) * 1.4, 96, accuracy: 1e-2, "draw \(n)")
        }
        XCTAssertGreaterThan(rotated, 4); XCTAssertGreaterThan(flipped, 3)
        // The unaugmented crop (validation, prediction) is never reframed.
        XCTAssertFalse(Augmentation.identity.reframe)
        XCTAssertEqual(pipeline.sampleTransform(for: tight, augmentation: .identity), pipeline.cropTransform(for: tight))
    }
}
