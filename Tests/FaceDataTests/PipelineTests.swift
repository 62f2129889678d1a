import FaceData
import Foundation
import TestSupport
import XCTest

final class AugmentationTests: XCTestCase {
    /// A dotted face: each keypoint marked by a bright dot on a dark background.
    func dottedRecord() -> FaceRecord {
        let points = syntheticFace68(x: 60, y: 50, size: 100)
        return FaceRecord(image: dottedImage(width: 220, height: 200, points: points), keypoints: points,
                          box: Box(x: 60, y: 50, width: 100, height: 100), source: "dots")
    }

    func testKeypointsStayOnTheirDotsUnderAugmentation() throws {
        var options = LoaderOptions()
        options.width = 128; options.height = 112
        options.augment = true
        options.augmentation.maxBrightness = 0; options.augmentation.maxContrast = 0
        let pipeline = try SamplePipeline(markup: .ibug68, options: options)
        let record = dottedRecord()
        var augmented = 0
        for n in 0..<12 {
            var rng = SplitMix64(7, 0, UInt64(n))
            let augmentation = pipeline.drawAugmentation(for: record, rng: &rng)
            if augmentation != .identity { augmented += 1 }
            let sample = pipeline.sample(record, augmentation: augmentation)
            for k in 0..<68 {
                let x = sample.keypoints[2 * k], y = sample.keypoints[2 * k + 1]
                XCTAssertTrue(x >= 0 && y >= 0 && x <= 127 && y <= 111, "draw \(n) point \(k) left the frame")
                XCTAssertGreaterThan(sample.image.sample(x, y), 0.6, "draw \(n) point \(k) is off its dot")
            }
            // Mapping the batch keypoints back gives the original ones (flip labels undone).
            let normalised = (0..<136).map { sample.keypoints[$0] / Float($0 % 2 == 0 ? 128 : 112) }
            let back = pipeline.sourceKeypoints(normalised: normalised, info: sample.info)
            for k in 0..<136 { XCTAssertEqual(back[k], record.keypoints[k], accuracy: 1e-3) }
        }
        XCTAssertGreaterThan(augmented, 8)
    }

    func testFlipTwiceIsIdentityWithLabels() throws {
        var options = LoaderOptions()
        options.width = 96; options.height = 96
        options.enlargement = 0.4
        let pipeline = try SamplePipeline(markup: .ibug68, options: options)
        let record = dottedRecord()
        let once = pipeline.sample(record, augmentation: Augmentation(flip: true))
        // The left outer eye corner (36) of the flipped face sits where the right one (45) was, mirrored.
        let plain = pipeline.sample(record)
        XCTAssertEqual(once.keypoints[2 * 36], 95 - plain.keypoints[2 * 45], accuracy: 1e-3)
        XCTAssertEqual(once.keypoints[2 * 36 + 1], plain.keypoints[2 * 45 + 1], accuracy: 1e-3)
        // Flip the flipped crop again (as a record with an identity crop) and compare with the original crop.
        let flipped = FaceRecord(image: once.image, keypoints: once.keypoints, box: nil, source: "once")
        let twice = pipeline.sample(flipped, augmentation: Augmentation(flip: true))
        for k in 0..<136 { XCTAssertEqual(twice.keypoints[k], plain.keypoints[k], accuracy: 1e-3) }
        for i in 0..<(96 * 96) { XCTAssertEqual(twice.image.pixels[i], plain.image.pixels[i], accuracy: 1e-4) }
        XCTAssertEqual(relabelForFlip(relabelForFlip(record.keypoints, permutation: KeypointMarkup.ibug68.flipPermutation),
                                      permutation: KeypointMarkup.ibug68.flipPermutation), record.keypoints)
    }

    func testFallsBackToUnaugmentedCropWhenKeypointsKeepLeaving() throws {
        var options = LoaderOptions()
        options.augment = true
        options.enlargement = -0.05  // keypoints on the crop border: almost every draw pushes one out
        options.augmentation.maxShift = 0.5
        let pipeline = try SamplePipeline(markup: .ibug68, options: options)
        var rng = SplitMix64(1, 2, 3)
        var fallbacks = 0
        for _ in 0..<20 where pipeline.drawAugmentation(for: dottedRecord(), rng: &rng) == .identity { fallbacks += 1 }
        XCTAssertGreaterThan(fallbacks, 10)
    }

    func testDrawsCoverTheirRanges() {
        let p = AugmentationParameters()
        var flips = 0
        var maxRotation: Float = 0, maxShear: Float = 0, maxZoom: Float = 0
        for n in 0..<400 {
            var rng = SplitMix64(1, 0, UInt64(n))
            let a = Augmentation.draw(p, rng: &rng)
            if a.flip { flips += 1 }
            maxRotation = max(maxRotation, abs(a.rotationDegrees)); maxShear = max(maxShear, abs(a.shearX))
            maxZoom = max(maxZoom, a.zoomOut)
            XCTAssertTrue(abs(a.shiftX) <= 0.1 && abs(a.shiftY) <= 0.1 && a.zoomOut >= 0 && a.zoomOut <= 0.2)
        }
        XCTAssertTrue((150...250).contains(flips), "\(flips) flips of 400")
        XCTAssertTrue(maxRotation > 20 && maxRotation <= 22 && maxShear > 0.07 && maxShear <= 0.08 && maxZoom > 0.18)
    }

    func testSubsetMustBeClosedUnderFlips() {
        var options = LoaderOptions()
        options.keypointSubset = [36]
        options.augment = true
        XCTAssertThrowsError(try SamplePipeline(markup: .ibug68, options: options))
        options.keypointSubset = [45, 36, 30]
        XCTAssertNoThrow(try SamplePipeline(markup: .ibug68, options: options))
        options.keypointSubset = [KeypointMarkup.immNoseTip]
        XCTAssertNoThrow(try SamplePipeline(markup: .imm58, options: options))
    }
}

final class HeatmapTests: XCTestCase {
    func testRenderDecodeRecoversRandomKeypoints() {
        var rng = SplitMix64(seed: 42)
        for (side, sigma) in [(224, Heatmaps.defaultSigma(heatmapWidth: 224)), (56, Heatmaps.defaultSigma(heatmapWidth: 56)), (64, 2)] {
            var plane = [Float](repeating: 0, count: side * side)
            for _ in 0..<50 {
                let x = rng.unit() * Float(side - 1), y = rng.unit() * Float(side - 1)
                for i in 0..<plane.count { plane[i] = 0 }
                plane.withUnsafeMutableBufferPointer { Heatmaps.render(x: x, y: y, sigma: sigma, into: $0.baseAddress!, width: side, height: side) }
                let d = plane.withUnsafeBufferPointer { Heatmaps.decode($0.baseAddress!, width: side, height: side) }
                XCTAssertEqual(d.x, x, accuracy: 0.25, "side \(side)"); XCTAssertEqual(d.y, y, accuracy: 0.25, "side \(side)")
                XCTAssertLessThanOrEqual(d.peak, 1); XCTAssertGreaterThan(d.peak, 0.85)
            }
        }
    }

    func testOnlyTheThreeSigmaWindowIsWritten() {
        var plane = [Float](repeating: -7, count: 100 * 100)
        plane.withUnsafeMutableBufferPointer { Heatmaps.render(x: 50, y: 40, sigma: 2, into: $0.baseAddress!, width: 100, height: 100) }
        XCTAssertEqual(plane[40 * 100 + 50], 1)
        XCTAssertEqual(plane[40 * 100 + 56], expf(-36 / 8), accuracy: 1e-6)
        XCTAssertEqual(plane[40 * 100 + 57], -7)  // outside ±3σ: untouched
        XCTAssertEqual(plane.filter { $0 != -7 }.count, 13 * 13)
    }

    func testBatchHeatmapsDecodeToBatchKeypoints() throws {
        var options = LoaderOptions()
        options.width = 128; options.height = 128
        options.heatmapSize = (64, 64)
        options.augment = true
        let pipeline = try SamplePipeline(markup: .ibug68, options: options)
        let points = syntheticFace68(x: 30, y: 30, size: 60)
        let record = FaceRecord(image: GreyImage(width: 120, height: 120, fill: 0.3), keypoints: points,
                                box: Box(x: 30, y: 30, width: 60, height: 60), source: "flat")
        var rng = SplitMix64(3, 1, 4)
        let sample = pipeline.sample(record, augmentation: pipeline.drawAugmentation(for: record, rng: &rng))
        let decoded = sample.heatmaps.withUnsafeBufferPointer {
            Heatmaps.decodeNormalised($0.baseAddress!, count: 68, width: 64, height: 64, cropWidth: 128, cropHeight: 128)
        }
        for k in 0..<68 {
            XCTAssertEqual(decoded[2 * k] * 128, sample.keypoints[2 * k], accuracy: 0.5, "point \(k)")
            XCTAssertEqual(decoded[2 * k + 1] * 128, sample.keypoints[2 * k + 1], accuracy: 0.5, "point \(k)")
        }
    }
}

final class SamplerTests: XCTestCase {
    /// Batch 1: every rank's i-th sample comes from the permutation's i-th group of `world`
    /// positions (padded by wrapping around), one each.
    func testTrainingShardsSplitEachGroupOfOnePermutation() {
        for (count, world) in [(10, 3), (240, 2), (7, 4), (5, 1)] {
            let samplers = (0..<world).map { DistributedSampler(count: count, rank: $0, worldSize: world, seed: 9) }
            let shards = samplers.map { $0.indices(epoch: 3) }
            let perRank = (count + world - 1) / world
            XCTAssertTrue(shards.allSatisfy { $0.count == perRank })
            XCTAssertEqual(Set(shards.flatMap { $0 }), Set(0..<count))
            let permutation = samplers[0].globalPermutation(epoch: 3)
            XCTAssertEqual(samplers[world - 1].globalPermutation(epoch: 3), permutation)
            for i in 0..<perRank {
                XCTAssertEqual(shards.map { $0[i] }.sorted(), (0..<world).map { permutation[(i * world + $0) % count] }.sorted())
            }
            XCTAssertEqual(Set(samplers.map { $0.batchesPerEpoch(batchSize: 4) }).count, 1)
        }
        let s = DistributedSampler(count: 100, seed: 1)
        XCTAssertNotEqual(s.indices(epoch: 0), s.indices(epoch: 1))
        XCTAssertEqual(s.indices(epoch: 1), DistributedSampler(count: 100, seed: 1).indices(epoch: 1))
        XCTAssertNotEqual(s.indices(epoch: 1), DistributedSampler(count: 100, seed: 2).indices(epoch: 1))
    }

    func testEvaluationVisitsEachSampleOnce() {
        let shards = (0..<3).map { DistributedSampler(count: 10, rank: $0, worldSize: 3, seed: 1, mode: .evaluation).indices(epoch: 5) }
        XCTAssertEqual(shards.map(\.count), [4, 3, 3])
        XCTAssertEqual(shards.flatMap { $0 }.sorted(), Array(0..<10))
        XCTAssertEqual(shards[1], [1, 4, 7])
    }
}
