import Checkpoints
import Engine
import FaceData
import Foundation
import TestSupport
import Training
import XCTest

/// The recipe options (loss, weight average, occlusion, blur, gamma, box jitter): off and absent
/// from the JSON by default, so old checkpoints decode and old presets are unchanged.
final class RecipeOptionsTests: XCTestCase {
    func testDefaultsAreOffAndOldJSONDecodes() throws {
        let plain = String(decoding: try JSONEncoder().encode(TrainConfig()), as: UTF8.self)
        for key in ["regressionLoss", "ema", "augmentOcclusion", "augmentBlur", "augmentGamma", "boxJitter"] {
            XCTAssertFalse(plain.contains("\"\(key)\""), plain)
        }
        // A config without the keys (as every checkpoint before them) decodes to nil: off.
        let old = try JSONDecoder().decode(TrainConfig.self, from: Data(plain.utf8))
        XCTAssertEqual(old, TrainConfig())
        XCTAssertNil(old.regressionLoss); XCTAssertNil(old.emaDecay)
        XCTAssertTrue(old.head.makeLoss() is MSELoss)
        for preset in Preset.all {
            XCTAssertNil(preset.config.regressionLoss, preset.name); XCTAssertNil(preset.config.ema, preset.name)
            let a = preset.config.augmentation
            XCTAssertEqual([a.occlusionProbability, a.blurProbability, a.gammaRange, a.boxJitter], [0, 0, 0, 0], preset.name)
        }
    }

    func testValuesRoundTripAndReachTheAugmentation() throws {
        var config = TrainConfig()
        config.regressionLoss = .wing; config.ema = 0.999
        config.augmentOcclusion = 0.3; config.augmentBlur = 0.2; config.augmentGamma = 0.25; config.boxJitter = 0.05
        let text = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        for fragment in [#""regressionLoss":"wing""#, #""ema":0.999"#, #""augmentOcclusion":0.3"#, #""boxJitter":0.05"#] {
            XCTAssertTrue(text.contains(fragment), "\(fragment) not in \(text)")
        }
        XCTAssertEqual(try JSONDecoder().decode(TrainConfig.self, from: Data(text.utf8)), config)
        let a = config.augmentation
        XCTAssertEqual(a.occlusionProbability, 0.3); XCTAssertEqual(a.blurProbability, 0.2)
        XCTAssertEqual(a.gammaRange, 0.25); XCTAssertEqual(a.boxJitter, 0.05)
        XCTAssertEqual(config.emaDecay, 0.999)
        XCTAssertTrue(config.head.makeLoss() is WingLoss)
        config.regressionLoss = .l1
        XCTAssertTrue(config.head.makeLoss() is L1Loss)
        config.ema = 0
        XCTAssertNil(config.emaDecay)
        let bad = text.replacingOccurrences(of: #""regressionLoss":"wing""#, with: #""regressionLoss":"huber""#)
        XCTAssertThrowsError(try JSONDecoder().decode(TrainConfig.self, from: Data(bad.utf8)))
    }

    /// The command line stores the options in the checkpoint's config, and rejects bad values.
    func testCommandLineOptions() throws {
        let fkp = TestPaths.product("fkp").path
        let dir = TestPaths.temporaryDirectory("recipeoptions")
        defer { try? FileManager.default.removeItem(at: dir) }
        let quick = ["train", "--data", "synthetic:24", "--batch", "4", "--epochs", "1", "--steps-per-epoch", "1",
                     "--threads", "1", "--quiet", "--no-pictures", "--out", dir.path]
        let r = try ProcessRunner.run(fkp, quick + ["--loss", "wing", "--ema", "0.99", "--occlusion", "0.5", "--blur", "0.5",
                                                    "--gamma", "0.3", "--box-jitter", "0.05"], timeout: 240)
        XCTAssertEqual(r.status, 0, r.output)
        let checkpoint = try XCTUnwrap(CheckpointFile.list(in: dir).last, r.output)
        let file = try CheckpointFile.read(checkpoint)
        let config = try JSONDecoder().decode(TrainConfig.self, from: Data(try XCTUnwrap(file.metadata["config"]).utf8))
        XCTAssertEqual(config.regressionLoss, .wing); XCTAssertEqual(config.ema, 0.99)
        XCTAssertEqual(config.augmentOcclusion, 0.5); XCTAssertEqual(config.augmentBlur, 0.5)
        XCTAssertEqual(config.augmentGamma, 0.3); XCTAssertEqual(config.boxJitter, 0.05)
        for bad in [["--loss", "huber"], ["--ema", "1"], ["--ema=-0.1"], ["--occlusion", "1.5"], ["--blur=-1"],
                    ["--gamma=-0.2"], ["--box-jitter", "0.5"], ["--model", "unet", "--loss", "wing"]] {
            let e = try ProcessRunner.run(fkp, quick + bad, timeout: 60)
            XCTAssertNotEqual(e.status, 0, "\(bad) accepted: \(e.output)")
            XCTAssertTrue(e.stderr.lowercased().contains("error"), "\(bad): \(e.stderr)")
            XCTAssertFalse(e.stderr.contains("Missing value"), "\(bad): \(e.stderr)")
        }
    }
}
