import Engine
import FaceData
import Foundation
import TestSupport
import Training
import XCTest

/// The 300-W recipe's pieces: the multistep schedule, the new options in checkpoints, the presets.
final class RecipeTests: XCTestCase {
    func testMultistepParsesPrintsAndRejects() {
        XCTAssertEqual(TrainConfig.Schedule("multistep:40,55:0.1"), .multistep(epochs: [40, 55], gamma: 0.1))
        for text in ["multistep:40,55:0.1", "multistep:3:0.5"] { XCTAssertEqual(TrainConfig.Schedule(text)?.description, text) }
        for bad in ["multistep", "multistep:40", "multistep::0.1", "multistep:55,40:0.1", "multistep:40,40:0.1",
                    "multistep:0,5:0.1", "multistep:4,x:0.1", "multistep:4,:0.1", "multistep:4:nan"] {
            XCTAssertNil(TrainConfig.Schedule(bad), bad)
        }
    }

    /// Drops by gamma at the start of epochs 40 and 55 (steps counted from 0), as MultiStepLR.
    func testMultistepRatesDropAtTheEpochs() {
        let rates = TrainConfig.Schedule.multistep(epochs: [40, 55], gamma: 0.1).rates(totalSteps: 600, warmupSteps: 0, stepsPerEpoch: 10)
        XCTAssertEqual(rates.rate(base: 2e-3, step: 0), 2e-3)
        XCTAssertEqual(rates.rate(base: 2e-3, step: 399), 2e-3)
        XCTAssertEqual(rates.rate(base: 2e-3, step: 400), 2e-4, accuracy: 1e-10)
        XCTAssertEqual(rates.rate(base: 2e-3, step: 549), 2e-4, accuracy: 1e-10)
        XCTAssertEqual(rates.rate(base: 2e-3, step: 550), 2e-5, accuracy: 1e-11)
        // With warmup the epochs stay where they are on the run's step count.
        let warm = TrainConfig.Schedule.multistep(epochs: [40, 55], gamma: 0.1).rates(totalSteps: 600, warmupSteps: 30, stepsPerEpoch: 10)
        XCTAssertEqual(warm.rate(base: 1, step: 14), 0.5)
        XCTAssertEqual(warm.rate(base: 1, step: 399), 1)
        XCTAssertEqual(warm.rate(base: 1, step: 400), 0.1, accuracy: 1e-7)
        XCTAssertEqual(warm.rate(base: 1, step: 550), 0.01, accuracy: 1e-8)
    }

    /// The new options are stored with the config; JSON written before them still decodes.
    func testNewOptionsRoundTripAndOldJSONDecodes() throws {
        let config = try XCTUnwrap(Preset.named("unet-ibug-recipe-fast")).config
        let text = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        for fragment in [#""flipTest":true"#, #""schedule":"multistep:18,23:0.1""#,
                         #""augmentRotation":30"#, #""augmentScale":0.25"#] {
            XCTAssertTrue(text.contains(fragment), "\(fragment) not in \(text)")
        }
        XCTAssertEqual(try JSONDecoder().decode(TrainConfig.self, from: Data(text.utf8)), config)
        let plain = String(decoding: try JSONEncoder().encode(TrainConfig()), as: UTF8.self)
        for key in ["flipTest", "heatmapDecoding", "augmentRotation", "augmentScale"] { XCTAssertFalse(plain.contains(key), plain) }
    }

    func testPresetsKeepTheOldOnesAndAddTheRecipe() throws {
        let names = Preset.all.map(\.name)
        XCTAssertEqual(Array(names.prefix(8)), ["default", "nose-imm", "facenet-imm", "facenet-imm-b16", "resnet50-ibug",
                                                 "resnet18-ibug-fast", "unet-ibug", "unet-ibug-fast"])
        for old in Preset.all.prefix(8) {
            XCTAssertNil(old.config.flipTest); XCTAssertNil(old.config.heatmapDecoding)
            XCTAssertEqual(old.config.augmentation, AugmentationParameters(), old.name)
        }
        let fast = try XCTUnwrap(Preset.named("unet-ibug-recipe-fast")).config
        func decoder(_ c: TrainConfig) throws -> Heatmaps.Decoding {
            try XCTUnwrap(c.head as? HeatmapHead).decoder(width: 96, height: 96)
        }
        XCTAssertEqual(fast.model, "unet"); XCTAssertEqual(fast.inputWidth, 96); XCTAssertEqual(fast.epochs, 25)
        XCTAssertEqual(fast.augmentation.maxRotationDegrees, 30)
        XCTAssertEqual(fast.augmentation.maxZoomIn, 0.25); XCTAssertEqual(fast.augmentation.maxZoomOut, 0.25)
        XCTAssertEqual(try decoder(fast), .softArgmax(radius: 96))
        var dark = fast
        dark.heatmapDecoding = .dark
        XCTAssertEqual(try decoder(dark), .dark(blurSigma: 2, logits: true))
        dark.heatmapLoss = .mse
        XCTAssertEqual(try decoder(dark), .dark(blurSigma: 2, logits: false))
        XCTAssertEqual(try XCTUnwrap(Preset.named("unet-ibug-recipe")).config.schedule, .multistep(epochs: [40, 55], gamma: 0.1))
        // `fkp presets` lists them with their recipe.
        let r = try ProcessRunner.run(TestPaths.product("fkp").path, ["presets"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.output)
        for fragment in ["unet-ibug-recipe:", "unet-ibug-recipe-fast:", "schedule multistep:18,23:0.1", "rotation ±30.0°",
                         "scale ±25%", "flip-test"] {
            XCTAssertTrue(r.stdout.contains(fragment), "\(fragment) not in \(r.stdout)")
        }
    }

    /// The framed presets are the recipe ones with `--reframe` (the hour preset also with its
    /// 45-epoch schedule), and nothing else changed; the flag reaches the loader's parameters and
    /// `fkp presets` shows it.
    func testFramedPresetsAreTheRecipeWithReframing() throws {
        for (framed, recipe) in [("unet-ibug-framed", "unet-ibug-recipe"), ("unet-ibug-framed-fast", "unet-ibug-recipe-fast")] {
            var config = try XCTUnwrap(Preset.named(framed)).config
            XCTAssertTrue(config.augmentation.reframe, framed)
            let base = try XCTUnwrap(Preset.named(recipe)).config
            if framed == "unet-ibug-framed-fast" {
                XCTAssertEqual(config.epochs, 45)
                XCTAssertEqual(config.schedule, .multistep(epochs: [34, 42], gamma: 0.1))
                config.epochs = base.epochs; config.schedule = base.schedule
            }
            config.reframe = nil; config.preset = recipe
            XCTAssertEqual(config, base, framed)
        }
        XCTAssertFalse(try XCTUnwrap(Preset.named("unet-ibug-recipe-fast")).config.augmentation.reframe)
        let r = try ProcessRunner.run(TestPaths.product("fkp").path, ["presets"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stdout.contains("unet-ibug-framed-fast:"), r.stdout)
        XCTAssertTrue(r.stdout.contains(" reframe"), r.stdout)
    }

    /// `--warmup-steps N`: the rate rises linearly over N optimizer steps, then the schedule runs
    /// (the metrics' lr is the rate of each epoch's last step).
    func testWarmupStepsOptionRampsTheRate() throws {
        let dir = TestPaths.temporaryDirectory("warmup")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try ProcessRunner.run(TestPaths.product("fkp").path,
                                      ["train", "--data", "synthetic:40", "--batch", "8", "--epochs", "3", "--steps-per-epoch", "2",
                                       "--lr", "1e-3", "--schedule", "cosine", "--warmup-steps", "4", "--threads", "1", "--quiet",
                                       "--no-pictures", "--out", dir.path], timeout: 240)
        XCTAssertEqual(r.status, 0, r.output)
        let rates = try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n").map { line in
            try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["lr"] as? Double)
        }
        XCTAssertEqual(rates.count, 3)
        XCTAssertEqual(rates[0], 1e-3 * 2 / 4, accuracy: 1e-9)   // step 2 of 4
        XCTAssertEqual(rates[1], 1e-3, accuracy: 1e-9)           // the warm-up's last step
        XCTAssertLessThan(rates[2], 1e-3)                         // the cosine after it
        let bad = try ProcessRunner.run(TestPaths.product("fkp").path, ["train", "--warmup-steps=-1"], timeout: 60)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--warmup-steps must be 0 or more"), bad.output)
    }
}
