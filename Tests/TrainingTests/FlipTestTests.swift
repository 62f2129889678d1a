import Checkpoints
import Engine
import FaceData
import Foundation
import Models
import TestSupport
import Training
import XCTest

/// Flip-test averaging: the mirror mapping, its exactness on a mirror-equivariant model, and
/// `fkp eval --flip-test` on a tiny checkpoint.
final class FlipTestTests: XCTestCase {
    func testMirrorRowsReversesEveryRowAndIsItsOwnInverse() {
        let t = Tensor(shape: [2, 1, 3, 4])
        for i in 0 ..< t.count { t.data[i] = Float(i) }
        FlipTest.mirrorRows(t)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: t.data, count: 8)), [3, 2, 1, 0, 7, 6, 5, 4])
        FlipTest.mirrorRows(t)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: t.data, count: t.count)), (0 ..< 24).map(Float.init))
    }

    func testUnmirrorComposesToIdentity() throws {
        let pipeline = try SamplePipeline(markup: .ibug68, options: LoaderOptions())
        var rng = SplitMix64(seed: 5)
        let points = (0 ..< 136).map { _ in rng.unit() }
        let once = FlipTest.unmirror(points, flippedPosition: pipeline.flippedPosition, width: 96)
        let twice = FlipTest.unmirror(once, flippedPosition: pipeline.flippedPosition, width: 96)
        for i in 0 ..< 136 { XCTAssertEqual(twice[i], points[i], accuracy: 1e-6) }
        // x → W − 1 − x in pixels, and the left outer eye corner takes the right one's mirror.
        XCTAssertEqual(once[2 * 36] * 96, 95 - points[2 * 45] * 96, accuracy: 1e-4)
        XCTAssertEqual(once[2 * 36 + 1], points[2 * 45 + 1])
    }

    /// A subset without a point's mirror partner cannot be flip-tested: a clear error, not a wrong average.
    func testSubsetsWithoutMirrorPartnersAreRejected() throws {
        var options = LoaderOptions()
        options.keypointSubset = [36, 30]
        XCTAssertThrowsError(try FlipTest.check(SamplePipeline(markup: .ibug68, options: options))) { error in
            XCTAssertTrue("\(error)".contains("lacks 45, the mirror of 36"), "\(error)")
        }
        options.keypointSubset = [45, 30, 36]
        let closed = try SamplePipeline(markup: .ibug68, options: options)
        XCTAssertNoThrow(try FlipTest.check(closed))
        XCTAssertEqual(closed.flippedPosition, [2, 1, 0])
    }

    /// A convolution whose left/right keypoint channels are each other's mirror (and whose
    /// self-symmetric channel is mirror-symmetric) is exactly mirror-equivariant: its prediction
    /// on the mirrored image, mapped back, is its plain prediction, so the flip-averaged one is too.
    func testFlipAverageEqualsPlainOnAMirrorEquivariantModel() throws {
        let (h, w, k) = (20, 24, 3)
        let flippedPosition = [1, 0, 2]  // channels 0 and 1 are a left/right pair, 2 sits on the axis
        let store = ParameterStore()
        let conv = Conv2d(store, "c", 1, k, kernel: 5, padding: 2, rng: .init(seed: 3))
        store.allocate()
        let weight = store.value(conv.weight), bias = store.value(conv.bias!)
        // A strong tap left of centre: channel 0 peaks 2 px right of the blob, its mirror 2 px left.
        weight[2 * 5 + 0] += 6
        for r in 0 ..< 5 {
            for c in 0 ..< 5 {
                weight[25 + r * 5 + c] = weight[r * 5 + 4 - c]
                let mean = (weight[50 + r * 5 + c] + weight[50 + r * 5 + 4 - c]) / 2
                weight[50 + r * 5 + c] = mean; weight[50 + r * 5 + 4 - c] = mean
            }
        }
        bias[1] = bias[0]
        var config = TrainConfig()
        config.model = "unet"
        for decoding in [TrainConfig.HeatmapDecoding.auto, .dark] {
            for loss in [TrainConfig.HeatmapLoss.softargmax, .mse] {
                config.heatmapDecoding = decoding; config.heatmapLoss = loss; config.heatmapSigma = 2
                let predict: (Tensor) -> [[Float]] = { x in
                    let y = conv.forward(x, Context(training: false))
                    return [config.head.decode(y, sample: 0, keypoints: k)]
                }
                for seed in 1 ... 4 {
                    // A bright blob off the axis on a noisy background: peaked, asymmetric maps.
                    let input = GradCheck.randomTensor([1, 1, h, w], seed: UInt64(seed), range: 0.1)
                    Heatmaps.render(x: 5 + Float(seed) * 2.7, y: 6 + Float(seed) * 1.9, sigma: 2, into: input.data, width: w, height: h)
                    let before = Array(UnsafeBufferPointer(start: input.data, count: input.count))
                    let plain = predict(input)
                    let mirrored = FlipTest.mirroredPredictions(input: input, flippedPosition: flippedPosition, predict: predict)
                    XCTAssertEqual(Array(UnsafeBufferPointer(start: input.data, count: input.count)), before, "input restored")
                    let averaged = FlipTest.average(plain, mirrored)
                    for i in 0 ..< 2 * k {
                        XCTAssertEqual(averaged[0][i], plain[0][i], accuracy: 1e-4, "\(decoding) \(loss) seed \(seed) value \(i)")
                    }
                    // Without the left/right relabelling the mapping would be wrong: the test can fail.
                    let unrelabelled = FlipTest.mirroredPredictions(input: input, flippedPosition: [0, 1, 2], predict: predict)
                    XCTAssertGreaterThan(abs(unrelabelled[0][0] - plain[0][0]), 2.0 / Float(w), "seed \(seed)")
                }
            }
        }
    }

    /// A tiny heatmap run validating with the flip test and DARK, then `fkp eval --flip-test`.
    func testEvalWithFlipTestOnATinyCheckpoint() throws {
        let fkp = TestPaths.product("fkp").path
        let dir = TestPaths.temporaryDirectory("fliptest")
        defer { try? FileManager.default.removeItem(at: dir) }
        let train = try ProcessRunner.run(fkp, ["train", "--model", "unet", "--width", "4", "--input-size", "32x32",
                                                "--data", "synthetic:40", "--batch", "8", "--epochs", "1", "--steps-per-epoch", "2",
                                                "--flip-test", "--heatmap-decoding", "dark", "--augment-rotation", "30",
                                                "--augment-scale", "0.25", "--schedule", "multistep:1:0.1",
                                                "--threads", "1", "--quiet", "--no-pictures", "--out", dir.path], timeout: 240)
        XCTAssertEqual(train.status, 0, train.output)
        let checkpoint = try XCTUnwrap(CheckpointFile.list(in: dir).last, train.output)
        let contents = try TrainingCheckpoint.contents(of: try CheckpointFile.read(checkpoint), path: checkpoint.path)
        XCTAssertEqual(contents.config.flipTest, true)
        XCTAssertEqual(contents.config.heatmapDecoding, .dark)
        XCTAssertEqual(contents.config.augmentRotation, 30)
        XCTAssertEqual(contents.config.schedule, .multistep(epochs: [1], gamma: 0.1))
        let metrics = try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        XCTAssertTrue(metrics.contains("\"val_nme\""), metrics)

        func nme(_ extra: [String]) throws -> String {
            let r = try ProcessRunner.run(fkp, ["eval", "--checkpoint", checkpoint.path, "--data", "synthetic:40",
                                                "--validation-only", "--threads", "1"] + extra, timeout: 120)
            XCTAssertEqual(r.status, 0, r.output)
            return try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasPrefix("nme: ") }.map(String.init), r.output)
        }
        // The checkpoint validates with the flip test and DARK: --flip-test on it changes nothing;
        // the plain image alone, or the loss's own decoder, scores differently.
        let flipped = try nme(["--flip-test"])
        XCTAssertEqual(try nme([]), flipped)
        XCTAssertNotEqual(try nme(["--no-flip-test"]), flipped)
        XCTAssertNotEqual(try nme(["--heatmap-decoding", "auto"]), flipped)
    }
}
