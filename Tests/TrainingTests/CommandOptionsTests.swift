import Checkpoints
import Foundation
import TestSupport
import Training
import XCTest

/// Options shared by the commands: one `--input-size` syntax (WxH or N), one `--threads`, and
/// `train --resume` naming every configuration option it ignores.
final class CommandOptionsTests: XCTestCase {
    let fkp = TestPaths.product("fkp").path
    let quick = ["train", "--data", "synthetic:32", "--batch", "8", "--epochs", "1", "--steps-per-epoch", "1",
                 "--threads", "1", "--quiet", "--no-pictures"]

    func run(_ args: [String]) throws -> ProcessResult { try ProcessRunner.run(fkp, args, timeout: 120) }

    func testInputSizeTakesWxHOrN() throws {
        let dir = TestPaths.temporaryDirectory("inputsize")
        defer { try? FileManager.default.removeItem(at: dir) }
        let square = try run(quick + ["--model", "unet", "--width", "4", "--input-size", "32", "--out", dir.path])
        XCTAssertEqual(square.status, 0, square.output)
        let contents = try TrainingCheckpoint.contents(of: try CheckpointFile.read(try XCTUnwrap(CheckpointFile.list(in: dir).last)), path: "x")
        XCTAssertEqual([contents.model.inputWidth, contents.model.inputHeight], [32, 32])
        for bad in ["0", "32x", "x32", "32x0", "axb", "32x32x32"] {
            let r = try run(quick + ["--input-size", bad, "--out", dir.path])
            XCTAssertNotEqual(r.status, 0, bad)
            XCTAssertTrue(r.output.contains("--input-size"), r.output)
        }
        let bench = try run(["bench", "train", "--model", "nosenet", "--batch", "2", "--input-size", "80x60", "--threads", "1",
                             "--warmup", "1", "--steps", "1", "--seconds", "0"])
        XCTAssertEqual(bench.status, 0, bench.output)
        XCTAssertTrue(bench.output.contains("images/s:"), bench.output)
        let zero = try run(["bench", "train", "--model", "nosenet", "--threads", "0"])
        XCTAssertTrue(zero.output.contains("--threads must be at least 1"), zero.output)
    }

    func testResumeWarnsAboutEveryIgnoredOption() throws {
        let dir = TestPaths.temporaryDirectory("resumewarn")
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertEqual(try run(quick + ["--out", dir.path]).status, 0)
        let r = try run(quick + ["--out", dir.path, "--resume", "auto", "--epochs", "2", "--lr", "0.5", "--batch", "4"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("warning: --lr is ignored: a resumed run keeps its checkpoint's configuration"), r.output)
        XCTAssertTrue(r.output.contains("warning: --batch is ignored"), r.output)
        XCTAssertFalse(r.output.contains("--epochs is ignored"), r.output)
        // --epochs did take effect: a second epoch was trained.
        XCTAssertEqual(MetricsLog.read(dir).map(\.epoch), [1, 2])
    }
}
