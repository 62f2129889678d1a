import Checkpoints
import Foundation
import TestSupport
import Training
import XCTest

/// `--shard-optimizer` (ZeRO stage 1) on 2 ranks against plain data parallelism: the same weights
/// and optimizer state bit for bit (with 2 ranks each gradient element is one a + b either way), and
/// checkpoints that resume unsharded, sharded and on one rank.
final class ShardedOptimizerTests: XCTestCase {
    let fkp = TestPaths.product("fkp").path

    /// nosenet on 32 synthetic faces, 2 epochs of 4 steps, global batch 8, no dropout (its masks
    /// are drawn per rank, which would make a resume on one rank differ for another reason).
    func common(_ out: URL) -> [String] {
        ["train", "--model", "nosenet", "--data", "synthetic:32", "--val-split", "0", "--batch", "4", "--epochs", "2",
         "--steps-per-epoch", "4", "--no-dropout", "--threads", "1", "--quiet", "--no-pictures", "--checkpoint-every", "3",
         "--keep", "20", "--out", out.path]
    }

    func train(ranks: Int = 2, _ args: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = ranks == 1 ? try ProcessRunner.run(fkp, args, timeout: 240)
            : try ProcessRunner.mpirun(ranks: ranks, product: "fkp", args, timeout: 240)
        XCTAssertEqual(r.status, 0, r.output, file: file, line: line)
    }

    func last(_ dir: URL) throws -> SafeTensors {
        try CheckpointFile.read(try XCTUnwrap(CheckpointFile.list(in: dir).last))
    }

    /// Every tensor of the two checkpoints (weights, BatchNorm buffers, AdamW moments), bit for bit.
    func assertIdentical(_ a: SafeTensors, _ b: SafeTensors, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.metadata["step"], b.metadata["step"], what, file: file, line: line)
        XCTAssertEqual(a.order.sorted(), b.order.sorted(), what, file: file, line: line)
        XCTAssertTrue(a.order.contains { $0.hasPrefix("optimizer.exp_avg_sq.") }, "no optimizer state saved", file: file, line: line)
        for name in a.order {
            let x = a.floats(name)!, y = b.floats(name) ?? []
            let differing = x.count != y.count ? [] : x.indices.filter { x[$0].bitPattern != y[$0].bitPattern }
            XCTAssertTrue(x.count == y.count && differing.isEmpty,
                          "\(what): \(name) differs in \(differing.count) of \(x.count) elements, first at \(differing.first.map { "\($0): \(x[$0]) against \(y[$0])" } ?? "-")",
                          file: file, line: line)
        }
    }

    func testShardedWeightsAreBitIdenticalToPlainDataParallelism() throws {
        let plain = TestPaths.temporaryDirectory("zero-plain"), sharded = TestPaths.temporaryDirectory("zero-sharded")
        defer { for d in [plain, sharded] { try? FileManager.default.removeItem(at: d) } }
        try train(common(plain) + ["--no-shard-optimizer"])
        // Small buckets: the slices are reduce-scattered and gathered in many pieces, one of them
        // split between the ranks' slices.
        try train(common(sharded) + ["--shard-optimizer", "--bucket-mb", "0.0625"])
        let a = try last(plain), b = try last(sharded)
        XCTAssertEqual(a.metadata["step"], "8")
        assertIdentical(a, b, "sharded against plain")
    }

    /// Stopped at step 3 (a checkpoint mid-epoch), then resumed the other way: sharded → unsharded and
    /// unsharded → sharded end bit-identical to an uninterrupted plain run; sharded → one rank
    /// (batch 4 × accumulate 2: the sums are added in another order) within float rounding.
    func testShardedCheckpointsResumeUnshardedAndOnOneRank() throws {
        let straight = TestPaths.temporaryDirectory("zero-straight")
        let toPlain = TestPaths.temporaryDirectory("zero-to-plain"), toSharded = TestPaths.temporaryDirectory("zero-to-sharded")
        let toOne = TestPaths.temporaryDirectory("zero-to-one")
        defer { for d in [straight, toPlain, toSharded, toOne] { try? FileManager.default.removeItem(at: d) } }
        try train(common(straight))
        let reference = try last(straight)

        try train(common(toPlain) + ["--shard-optimizer", "--stop-after-steps", "3"])
        try train(common(toPlain) + ["--resume", "auto"])
        assertIdentical(reference, try last(toPlain), "sharded, resumed unsharded")

        try train(common(toSharded) + ["--stop-after-steps", "3"])
        try train(common(toSharded) + ["--shard-optimizer", "--resume", "auto"])
        assertIdentical(reference, try last(toSharded), "unsharded, resumed sharded")

        try train(common(toOne) + ["--shard-optimizer", "--stop-after-steps", "3"])
        try train(ranks: 1, common(toOne) + ["--resume", "auto"])
        let one = try last(toOne)
        XCTAssertEqual(one.metadata["step"], "8")
        XCTAssertEqual(one.metadata["world_size"], "1")
        var maxDiff: Float = 0, maxValue: Float = 0
        for name in reference.order {
            for (u, v) in zip(reference.floats(name)!, try XCTUnwrap(one.floats(name), name)) {
                maxDiff = max(maxDiff, abs(u - v)); maxValue = max(maxValue, abs(u))
            }
        }
        XCTAssertLessThan(maxDiff, 1e-5 * max(1, maxValue), "max |Δ| \(maxDiff) over weights and optimizer state")
    }
}
