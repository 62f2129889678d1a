import Foundation
import TestSupport
import Training
import XCTest

/// A run whose weights blow up (--lr 1e9) stops at the first step whose loss or gradient is not
/// finite, with the advice line and a non-zero exit, for every model family and heatmap loss: it
/// never trains on NaN weights to the epoch's end, and metrics.jsonl gets no line of NaNs.
final class DivergenceTests: XCTestCase {
    let fkp = TestPaths.product("fkp").path

    func diverge(_ model: [String], ranks: Int = 1) throws {
        let dir = TestPaths.temporaryDirectory("diverge")
        defer { try? FileManager.default.removeItem(at: dir) }
        let args = ["train", "--model"] + model + ["--data", "synthetic:96", "--batch", "8", "--epochs", "2", "--lr", "1e9",
                                                   "--threads", "1", "--quiet", "--no-pictures", "--out", dir.path]
        let r = ranks == 1 ? try ProcessRunner.run(fkp, args, timeout: 240)
                           : try ProcessRunner.mpirun(ranks: ranks, product: "fkp", args, timeout: 240)
        let what = model.joined(separator: " ")
        XCTAssertNotEqual(r.status, 0, "\(what): \(r.output)")
        // 96 faces, 77 for training, batch 8: 9 steps in epoch 1 (of 10 per epoch with 2 ranks × 8, 4).
        let stop = r.output.range(of: #"the (loss|gradient norm) became [-a-z]+ at step [1-4] \(epoch 1\); stopping\. .* try a lower --lr"#,
                                  options: .regularExpression)
        XCTAssertNotNil(stop, "\(what): \(r.output)")
        XCTAssertFalse(r.output.contains("EncodingError"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent(MetricsLog.fileName).path), what)
    }

    func testSmallNetsStop() throws {
        try diverge(["nosenet"])
        try diverge(["facenet"])
    }

    func testResNetStops() throws {
        try diverge(["resnet18", "--input-size", "64x64", "--width", "8"])
    }

    func testMobileNetStops() throws {
        try diverge(["mobilenet-pfld", "--input-size", "64", "--width", "4"])
    }

    func testUNetStopsForEveryHeatmapLoss() throws {
        for loss in ["softargmax", "softmax-ce", "mse"] {
            try diverge(["unet", "--input-size", "48x48", "--width", "8", "--heatmap-loss", loss])
        }
    }

    func testEveryRankStops() throws {
        try diverge(["unet", "--input-size", "48x48", "--width", "8"], ranks: 2)
    }
}
