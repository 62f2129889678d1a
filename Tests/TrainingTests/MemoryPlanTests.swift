import Foundation
import Models
import TestSupport
import Training
import XCTest

/// `fkp train --plan`: the plan's figures against numbers worked out here independently, and the
/// command (prints and exits without training, on one rank and under mpirun). Whether the predicted
/// peak meets the measured one is Scripts/check-memory-plan's (it trains every model).
final class MemoryPlanTests: XCTestCase {
    let fkp = TestPaths.product("fkp").path

    func plan(_ edit: (inout TrainConfig) -> Void = { _ in }, worldSize: Int = 1, shardOptimizer: Bool = false) throws -> MemoryPlan {
        var config = TrainConfig()
        config.model = "nosenet"
        (config.inputWidth, config.inputHeight) = (80, 60)
        config.data = "synthetic:20"
        config.batch = 4
        edit(&config)
        var options = RunOptions(outDirectory: TestPaths.temporaryDirectory("plan"))
        options.threads = 1
        options.shardOptimizer = shardOptimizer
        return try MemoryPlan.forRun(config: config, options: options, worldSize: worldSize, rank: 0)
    }

    func bytes(_ plan: MemoryPlan, _ name: String) throws -> Int {
        try XCTUnwrap((plan.resident + plan.transients).first { $0.name == name }, "no \(name) in the plan").bytes
    }

    /// nosenet at 80×60 for the 68 synthetic keypoints, its weights counted from the layer shapes:
    /// three 3×3 convolutions with bias (1→16, 16→32, 32→32), Linear(32·7·10 → 64), Linear(64 → 136).
    func testParametersGradientsAndOptimizerStateAreThePlainWeightCounts() throws {
        let weights = (16 * 9 + 16) + (32 * 16 * 9 + 32) + (32 * 32 * 9 + 32) + (2240 * 64 + 64) + (64 * 136 + 136)
        let plain = try plan()
        XCTAssertEqual(try bytes(plain, "parameters"), 4 * weights)
        XCTAssertEqual(try bytes(plain, "gradients"), 4 * weights)
        XCTAssertEqual(try bytes(plain, "optimizer state"), 2 * 4 * weights, "AdamW's two moments")
        let averaged = try plan { $0.ema = 0.999 }
        XCTAssertEqual(try bytes(averaged, "optimizer state"), 3 * 4 * weights, "the moments and the --ema copy")
    }

    /// The activations of nosenet at 80×60 per sample, from the layer shapes: the 80×60 input;
    /// each stage's convolution output (fused ReLU) and its 2×2 max-pool's output and Int32
    /// indices; the flattened [2240] copy and the two Linear outputs (64, 136) with the ReLU's (64).
    /// Gradients: every layer's input gradient except the first convolution's, and the loss's.
    func testActivationsArePerSampleLayerOutputs() throws {
        let (a, b, c) = (80 * 60, 40 * 30, 20 * 15)
        let outputs = a + (16 * a + 16 * b * 2) + (32 * b + 32 * c * 2) + (32 * c + 32 * 70 * 2) + 2240 + 64 + 64 + 136
        let gradients = (16 * a) + (16 * b + 32 * b) + (32 * c + 32 * c) + 32 * 70 + 2240 + 64 + 64 + 136
        for batch in [4, 8] {
            let p = try plan { $0.batch = batch }
            XCTAssertEqual(try bytes(p, "activations"), 4 * batch * outputs, "batch \(batch)")
            XCTAssertEqual(try bytes(p, "activation gradients"), 4 * batch * gradients, "batch \(batch)")
        }
    }

    /// `--shard-optimizer`: the moments of the largest slice (⌈weights / ranks⌉), nothing saved on
    /// one rank, and rank 0's checkpoint write gathers one full moment.
    func testShardedOptimizerStateIsOneSlicePerRank() throws {
        let weights = (16 * 9 + 16) + (32 * 16 * 9 + 32) + (32 * 32 * 9 + 32) + (2240 * 64 + 64) + (64 * 136 + 136)
        let plain = try plan(worldSize: 3), sharded = try plan(worldSize: 3, shardOptimizer: true)
        XCTAssertEqual(try bytes(sharded, "optimizer state"), 2 * 4 * ((weights + 2) / 3))
        XCTAssertEqual(try bytes(plan(shardOptimizer: true), "optimizer state"), 2 * 4 * weights, "one rank has nothing to share")
        XCTAssertEqual(try bytes(sharded, "checkpoint write"), try bytes(plain, "checkpoint write") + 4 * weights)
        XCTAssertLessThan(sharded.peakBytes(rankZero: false), plain.peakBytes(rankZero: false))
    }

    /// More ranks: each rank caches only its shard, and the gradient allreduce appears; the peak
    /// of the other ranks has no checkpoint write.
    func testRanksShareTheDataAndAddTheAllreduce() throws {
        let one = try plan(), two = try plan(worldSize: 2)
        XCTAssertNil(one.transients.first { $0.name == "gradient allreduce" })
        XCTAssertEqual(try bytes(two, "gradient allreduce"), try bytes(two, "gradients"))
        XCTAssertLessThan(try bytes(two, "loader cache"), try bytes(one, "loader cache"))
        XCTAssertLessThan(two.peakBytes(rankZero: false), two.peakBytes(rankZero: true))
    }

    func testPlanCommandPrintsThePlanAndTrainsNothing() throws {
        let parent = TestPaths.temporaryDirectory("plan-run"), dir = parent.appendingPathComponent("run")
        defer { try? FileManager.default.removeItem(at: parent) }
        let r = try ProcessRunner.run(fkp, ["train", "--plan", "--model", "unet", "--input-size", "32", "--width", "8", "--batch", "2",
                                            "--accumulate", "2", "--data", "synthetic:16", "--threads", "1", "--out", dir.path],
                                      timeout: 120)
        XCTAssertEqual(r.status, 0, r.output)
        for label in ["parameters", "gradients", "optimizer state", "activations", "activation gradients", "workspace",
                      "batches in flight", "loader cache", "process baseline", "checkpoint write", "predicted peak", "accumulate 2"] {
            XCTAssert(r.stdout.contains(label), "no \(label) in:\n\(r.output)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path), "--plan must not start a run")
    }

    func testPlanUnderMPIIsPerRank() throws {
        let r = try ProcessRunner.mpirun(ranks: 2, product: "fkp", ["train", "--plan", "--model", "nosenet", "--data", "synthetic:16",
                                                                    "--threads", "1"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssert(r.stdout.contains("(2 ranks)") && r.stdout.contains("gradient allreduce") && r.stdout.contains("ranks 1 to 1"), r.output)
        XCTAssertEqual(r.stdout.components(separatedBy: "memory plan").count, 2, "rank 0 prints the plan once")
    }

    /// The training log's last line: the measured peak, the plan's, and the difference.
    func testTrainingLogPrintsThePlanBesideThePeak() throws {
        let dir = TestPaths.temporaryDirectory("plan-log")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try ProcessRunner.run(fkp, ["train", "--model", "nosenet", "--input-size", "80x60", "--data", "synthetic:24", "--batch", "4",
                                            "--epochs", "1", "--steps-per-epoch", "2", "--threads", "1", "--no-pictures",
                                            "--no-tensorboard", "--out", dir.path], timeout: 120)
        XCTAssertEqual(r.status, 0, r.output)
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.contains("peak RSS") }, r.output)
        XCTAssertNotNil(line.range(of: #"peak RSS \d+ MiB \(rank 0; plan \d+ MiB, [-+]\d+\.\d %\)"#, options: .regularExpression), String(line))
    }
}
