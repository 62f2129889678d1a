import Checkpoints
import Foundation
import TestSupport
import Training
import XCTest

/// `--memory-budget` and `--recompute blocks` through `fkp train`: sizes, the choice against the
/// plan, the refusal, and runs whose weights equal those of the same split without recomputation.
final class MemoryBudgetTests: XCTestCase {
    let fkp = TestPaths.product("fkp").path

    func testSizes() {
        XCTAssertEqual(MemoryBudget.parse("6G"), 6 << 30)
        XCTAssertEqual(MemoryBudget.parse("6GiB"), 6 << 30)
        XCTAssertEqual(MemoryBudget.parse("512m"), 512 << 20)
        XCTAssertEqual(MemoryBudget.parse("1.5G"), 3 << 29)
        XCTAssertEqual(MemoryBudget.parse("2048MB"), 2 << 30)
        XCTAssertEqual(MemoryBudget.parse("4096"), 4096)
        for bad in ["", "six", "-1G", "0", "G", "1e30T", "nanG"] { XCTAssertNil(MemoryBudget.parse(bad), bad) }
    }

    /// U-Net 96² width 16 on synthetic faces, 2 ranks × batch 8 (global batch 16), 2 steps.
    func common(_ out: URL) -> [String] {
        ["train", "--model", "unet", "--input-size", "96", "--width", "16", "--data", "synthetic:40", "--epochs", "1",
         "--steps-per-epoch", "2", "--threads", "1", "--no-pictures", "--no-tensorboard", "--out", out.path]
    }

    /// The predicted peak (rank 0) that `fkp train --plan` prints for these options, in MiB.
    func plannedPeak(_ options: [String]) throws -> Double {
        let r = try ProcessRunner.mpirun(ranks: 2, product: "fkp", common(TestPaths.temporaryDirectory("budget-plan")) + options + ["--plan"],
                                         timeout: 120)
        XCTAssertEqual(r.status, 0, r.output)
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.contains("predicted peak") }, r.output)
        return try XCTUnwrap(Double(line.split(separator: " ").dropFirst(2).first ?? ""), String(line))
    }

    /// A budget just above the plan of batch 4 × accumulate 2 with recomputation, below that of
    /// batch 4 without it and of batch 8 either way: fkp must choose exactly that, train, and end
    /// with the weights, BatchNorm statistics and moments of the same split without recomputation.
    func testBudgetChoosesTheLargestMicroBatchThatFitsAndChangesNoBit() throws {
        let fit = try plannedPeak(["--batch", "4", "--accumulate", "2", "--recompute", "blocks"])
        for larger in [["--batch", "4", "--accumulate", "2", "--recompute", "none"], ["--batch", "8", "--recompute", "blocks"]] {
            XCTAssertGreaterThan(try plannedPeak(larger), fit + 1, "\(larger)")
        }
        let budgeted = TestPaths.temporaryDirectory("budget"), plain = TestPaths.temporaryDirectory("budget-plain")
        defer { for d in [budgeted, plain] { try? FileManager.default.removeItem(at: d) } }
        let r = try ProcessRunner.mpirun(ranks: 2, product: "fkp", common(budgeted) + ["--batch", "8", "--memory-budget", String(format: "%.1fM", fit + 0.1)],
                                         timeout: 240)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssert(r.stdout.contains("batch 4 × accumulate 2 per rank, recompute blocks"), r.output)
        XCTAssert(r.stdout.contains("ranks 2 × batch 4 × accumulate 2 = global batch 16"), r.output)
        let p = try ProcessRunner.mpirun(ranks: 2, product: "fkp", common(plain) + ["--batch", "4", "--accumulate", "2", "--recompute", "none"],
                                         timeout: 240)
        XCTAssertEqual(p.status, 0, p.output)
        let a = try CheckpointFile.read(try XCTUnwrap(CheckpointFile.list(in: budgeted).last))
        let b = try CheckpointFile.read(try XCTUnwrap(CheckpointFile.list(in: plain).last))
        XCTAssertEqual(a.order.sorted(), b.order.sorted())
        XCTAssert(a.order.contains { $0.hasSuffix("running_var") } && a.order.contains { $0.hasPrefix("optimizer.exp_avg.") })
        for name in a.order {
            XCTAssert(a.floats(name)?.map(\.bitPattern) == b.floats(name)?.map(\.bitPattern), "\(name) differs with recomputation")
        }
    }

    /// Too small even for one sample with recomputation: one line naming the budget and the
    /// smallest planned peak, a non-zero exit, nothing trained.
    func testBudgetTooSmallIsRefused() throws {
        let out = TestPaths.temporaryDirectory("budget-small")
        defer { try? FileManager.default.removeItem(at: out) }
        let r = try ProcessRunner.run(fkp, common(out) + ["--batch", "8", "--memory-budget", "64M"], timeout: 120)
        XCTAssertNotEqual(r.status, 0)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.output)
        XCTAssert(r.stderr.contains("--memory-budget 64.0 MiB is too small: one sample per step needs")
                  && r.stderr.contains("even with --recompute blocks"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("latest").path))
        let bad = try ProcessRunner.run(fkp, common(out) + ["--memory-budget", "lots"], timeout: 60)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssert(bad.stderr.contains("--memory-budget 'lots'"), bad.output)
    }
}
