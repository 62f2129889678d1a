import Checkpoints
import Engine
import Foundation
import TestSupport
import Training
import XCTest

/// `--ema` end to end: validation and `fkp eval` score the moving average, the checkpoint carries
/// it beside the training weights, and a resumed run continues it bit for bit.
final class WeightAverageTrainingTests: XCTestCase {
    let fkp = TestPaths.product("fkp").path
    let common = ["train", "--data", "synthetic:96", "--batch", "8", "--epochs", "2", "--steps-per-epoch", "5", "--ema", "0.9",
                  "--loss", "wing", "--threads", "1", "--quiet", "--no-pictures", "--checkpoint-every", "2", "--keep", "10"]

    func run(_ args: [String]) throws -> ProcessResult { try ProcessRunner.run(fkp, args, timeout: 240) }

    func testEvalScoresTheAverageAndResumeContinuesIt() throws {
        try check(model: [], averaged: ["fc1.weight"])
    }

    /// With BatchNorm the running statistics are averaged too, and stored with the average.
    func testBatchNormStatisticsAreAveragedAndStored() throws {
        try check(model: ["--model", "mobilenet-pfld", "--width", "4", "--input-size", "64"],
                  averaged: ["fc.weight", "features.0.1.running_mean", "features.0.1.running_var"])
    }

    func check(model: [String], averaged names: [String]) throws {
        let common = self.common + model
        let straight = TestPaths.temporaryDirectory("ema-straight"), resumed = TestPaths.temporaryDirectory("ema-resumed")
        defer { try? FileManager.default.removeItem(at: straight); try? FileManager.default.removeItem(at: resumed) }
        let r = try run(common + ["--out", straight.path])
        XCTAssertEqual(r.status, 0, r.output)
        let last = try XCTUnwrap(CheckpointFile.list(in: straight).last)
        let file = try CheckpointFile.read(last)
        for name in names {
            let trained = try XCTUnwrap(file.floats(name)), averaged = try XCTUnwrap(file.floats(WeightAverage.checkpointPrefix + name), name)
            XCTAssertNotEqual(trained, averaged, "\(name): the average is not the training numbers")
        }

        // fkp eval on the validation split reports the NME that validation logged: both score the average.
        let logged = try XCTUnwrap(MetricsLog.read(straight).last?.val_nme)
        let e = try run(["eval", "--checkpoint", last.path, "--data", "synthetic:96", "--validation-only", "--threads", "1"])
        XCTAssertEqual(e.status, 0, e.output)
        let line = try XCTUnwrap(e.output.split(separator: "\n").first { $0.hasPrefix("nme:") })
        let nme = try XCTUnwrap(Double(line.dropFirst(4).trimmingCharacters(in: .whitespaces)))
        XCTAssertEqual(nme, logged, accuracy: 1e-5 * logged)

        // Stopped after 7 steps (checkpoint at 6) and resumed: the same final weights and average.
        XCTAssertEqual(try run(common + ["--out", resumed.path, "--stop-after-steps", "7"]).status, 0)
        let again = try run(common + ["--out", resumed.path, "--resume", "auto"])
        XCTAssertEqual(again.status, 0, again.output)
        let b = try CheckpointFile.read(try XCTUnwrap(CheckpointFile.list(in: resumed).last))
        XCTAssertEqual(file.order.sorted(), b.order.sorted())
        for name in file.order { XCTAssertEqual(file.floats(name), b.floats(name), "\(name) differs after resume") }
    }
}
