import Checkpoints
import Foundation
import TestSupport
import Training
import XCTest

/// A checkpoint resumes on another number of ranks with the same global batch, samples and
/// learning-rate schedule: the run ends where an uninterrupted run at that global batch ends, within
/// float rounding (the sums of a step are added in another order). Dropout off: its masks are drawn
/// per rank.
final class ElasticResumeTests: XCTestCase {
    let fkp = TestPaths.product("fkp").path

    /// `samples` faces, no validation split, cosine schedule, no dropout.
    func common(samples: Int, batch: Int, out: URL) -> [String] {
        ["train", "--data", "synthetic:\(samples)", "--val-split", "0", "--batch", String(batch), "--epochs", "2",
         "--no-dropout", "--threads", "1", "--quiet", "--no-pictures", "--checkpoint-every", "5", "--keep", "20", "--out", out.path]
    }

    func train(ranks: Int, _ args: [String]) throws -> ProcessResult {
        ranks == 1 ? try ProcessRunner.run(fkp, args, timeout: 240) : try ProcessRunner.mpirun(ranks: ranks, product: "fkp", args, timeout: 240)
    }

    /// Straight run on `before` ranks (global batch `before` × `batch`) against: `stopAt` steps on
    /// `before` ranks, then resumed on `after` ranks. Returns the resumed run's output.
    func compare(samples: Int, batch: Int, before: Int, after: Int, stopAt: Int, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let straight = TestPaths.temporaryDirectory("elastic-straight"), elastic = TestPaths.temporaryDirectory("elastic")
        defer { try? FileManager.default.removeItem(at: straight); try? FileManager.default.removeItem(at: elastic) }
        let full = try train(ranks: before, common(samples: samples, batch: batch, out: straight))
        XCTAssertEqual(full.status, 0, full.output, file: file, line: line)
        let stopped = try train(ranks: before, common(samples: samples, batch: batch, out: elastic) + ["--stop-after-steps", String(stopAt)])
        XCTAssertEqual(stopped.status, 0, stopped.output, file: file, line: line)
        let resumed = try train(ranks: after, common(samples: samples, batch: batch, out: elastic) + ["--resume", "auto"])
        XCTAssertEqual(resumed.status, 0, resumed.output, file: file, line: line)

        let a = try CheckpointFile.read(CheckpointFile.list(in: straight).last!)
        let b = try CheckpointFile.read(CheckpointFile.list(in: elastic).last!)
        let globalBatch = String(before * batch)
        XCTAssertEqual(a.metadata["step"], b.metadata["step"], file: file, line: line)
        XCTAssertEqual(b.metadata["global_batch"], globalBatch, file: file, line: line)
        XCTAssertEqual(b.metadata["world_size"], String(after), file: file, line: line)
        XCTAssertEqual(a.metadata["learning_rate"], b.metadata["learning_rate"], "the schedule was re-planned", file: file, line: line)
        var maxDiff: Float = 0, maxValue: Float = 0
        for name in a.order {
            let x = a.floats(name)!, y = try XCTUnwrap(b.floats(name), name, file: file, line: line)
            for (u, v) in zip(x, y) { maxDiff = max(maxDiff, abs(u - v)); maxValue = max(maxValue, abs(u)) }
        }
        XCTAssertLessThan(maxDiff, 1e-5 * max(1, maxValue), "max |Δ| \(maxDiff) over weights and optimizer state", file: file, line: line)
        print("elastic resume \(before) -> \(after) ranks: max |Δ| \(maxDiff) over weights and optimizer state (largest value \(maxValue))")
        // The new world's split of the same global batch is what the checkpoint records.
        let config = try JSONSerialization.jsonObject(with: Data(b.metadata["config"]!.utf8)) as! [String: Any]
        let (newBatch, newAccumulate) = (config["batch"] as! Int, config["accumulate"] as! Int)
        XCTAssertEqual(newBatch * newAccumulate * after, before * batch, "batch \(newBatch) × accumulate \(newAccumulate)", file: file, line: line)
        let lossesA = try epochLosses(straight), lossesB = try epochLosses(elastic)
        XCTAssertEqual(lossesA.count, 2, file: file, line: line)
        XCTAssertEqual(lossesB.count, 2, file: file, line: line)
        for (x, y) in zip(lossesA, lossesB) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x)), file: file, line: line) }
        return resumed.output
    }

    /// 2 ranks × batch 4 (global 8), stopped mid-epoch at step 7 (checkpoint at 5), resumed on one
    /// rank: batch 4 × accumulate 2. 80 faces = 10 steps per epoch.
    func testTwoRanksToOne() throws {
        _ = try compare(samples: 80, batch: 4, before: 2, after: 1, stopAt: 7)
    }

    /// 1 rank × batch 6, stopped at step 6 (checkpoint at 5), resumed on 3 ranks × batch 2
    /// (oversubscribed on small machines). 60 faces = 10 steps per epoch.
    func testOneRankToThree() throws {
        _ = try compare(samples: 60, batch: 6, before: 1, after: 3, stopAt: 6)
    }

    func testGlobalBatchSplit() throws {
        XCTAssertEqual(try ElasticBatch.split(globalBatch: 16, worldSize: 1, maxBatch: 8).batch, 8)
        XCTAssertEqual(try ElasticBatch.split(globalBatch: 16, worldSize: 1, maxBatch: 8).accumulate, 2)
        XCTAssertEqual(try ElasticBatch.split(globalBatch: 6, worldSize: 3, maxBatch: 6).batch, 2)
        XCTAssertEqual(try ElasticBatch.split(globalBatch: 6, worldSize: 3, maxBatch: 6).accumulate, 1)
        XCTAssertEqual(try ElasticBatch.split(globalBatch: 12, worldSize: 2, maxBatch: 4).batch, 3)
        XCTAssertEqual(try ElasticBatch.split(globalBatch: 12, worldSize: 2, maxBatch: 4).accumulate, 2)
        XCTAssertThrowsError(try ElasticBatch.split(globalBatch: 16, worldSize: 3, maxBatch: 8)) { error in
            XCTAssertTrue("\(error)".contains("global batch 16 cannot be split evenly over 3 ranks"), "\(error)")
            XCTAssertTrue("\(error)".contains("1, 2, 4, 8, 16"), "\(error)")
        }
        XCTAssertEqual(ElasticBatch.stepsPerEpoch(samples: 80, globalBatch: 8, cap: nil), 10)
        XCTAssertEqual(ElasticBatch.stepsPerEpoch(samples: 81, globalBatch: 8, cap: nil), 11)
        XCTAssertEqual(ElasticBatch.stepsPerEpoch(samples: 81, globalBatch: 8, cap: 4), 4)
    }

    /// A 2-rank checkpoint with global batch 16 cannot continue on 3 ranks: one line, exit 1.
    func testUnsplittableGlobalBatchIsAClearError() throws {
        let dir = TestPaths.temporaryDirectory("elastic-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let args = ["train", "--data", "synthetic:40", "--batch", "8", "--epochs", "1", "--steps-per-epoch", "1",
                    "--threads", "1", "--quiet", "--no-pictures", "--out", dir.path]
        XCTAssertEqual(try ProcessRunner.mpirun(ranks: 2, product: "fkp", args).status, 0)
        let r = try ProcessRunner.mpirun(ranks: 3, product: "fkp", args + ["--resume", "auto", "--epochs", "2"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("fkp: error: the checkpoint's global batch 16 cannot be split evenly over 3 ranks"), r.output)
    }

    /// Format 1 checkpoints (position in batches, no global batch in it) still resume: the sample
    /// position comes from the batch position and the `global_batch` metadata.
    func testFormatOneCheckpointsAreRead() throws {
        let dir = TestPaths.temporaryDirectory("format1")
        defer { try? FileManager.default.removeItem(at: dir) }
        let args = ["train", "--data", "synthetic:60", "--batch", "4", "--epochs", "1", "--threads", "1", "--quiet",
                    "--no-pictures", "--out", dir.path, "--checkpoint-every", "3", "--stop-after-steps", "4"]
        XCTAssertEqual(try ProcessRunner.run(fkp, args).status, 0)
        var file = try CheckpointFile.read(CheckpointFile.list(in: dir).last!)
        var position = try JSONSerialization.jsonObject(with: Data(file.metadata["position"]!.utf8)) as! [String: Any]
        XCTAssertEqual(position["sampleInEpoch"] as? Int, 12)
        position["sampleInEpoch"] = nil
        position["globalBatch"] = nil
        file.metadata["position"] = String(decoding: try JSONSerialization.data(withJSONObject: position), as: UTF8.self)
        file.metadata["format_version"] = "1"
        let contents = try TrainingCheckpoint.contents(of: file, path: "old")
        XCTAssertEqual(contents.position.batchInEpoch, 3)
        XCTAssertEqual(contents.position.globalBatch, 4)
        XCTAssertEqual(contents.position.sampleInEpoch, 12)
        file.metadata["format_version"] = "0"
        XCTAssertThrowsError(try TrainingCheckpoint.contents(of: file, path: "old"))
    }

    private func epochLosses(_ dir: URL) throws -> [Double] {
        try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n").map { line in
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return o["train_loss"] as! Double
        }
    }
}
