import Checkpoints
import Foundation
import TestSupport
import Training
import XCTest

/// What every rank holds besides the weights: BatchNorm buffers (rank 0's, broadcast after every
/// step), and the run folder's leftovers and thread defaults.
final class DataParallelStateTests: XCTestCase {
    let fkp = TestPaths.product("fkp").path

    /// A small U-Net (BatchNorm in every block) on 2 ranks, once with a checkpoint after every step
    /// and once with one at the end only: the same weights and buffers, bit for bit. And the epoch's
    /// validation (each rank scores its own shard) saw the saved model: scoring the final checkpoint
    /// on one rank gives the same pixel error.
    func testCheckpointCadenceDoesNotChangeTheModel() throws {
        let every = TestPaths.temporaryDirectory("bn-every"), once = TestPaths.temporaryDirectory("bn-once")
        defer { try? FileManager.default.removeItem(at: every); try? FileManager.default.removeItem(at: once) }
        let common = ["train", "--model", "unet", "--width", "4", "--input-size", "32x32", "--data", "synthetic:40",
                      "--batch", "4", "--epochs", "2", "--steps-per-epoch", "3", "--threads", "1", "--quiet", "--no-pictures", "--keep", "1"]
        let a = try ProcessRunner.mpirun(ranks: 2, product: "fkp", common + ["--out", every.path, "--checkpoint-every", "1"])
        XCTAssertEqual(a.status, 0, a.output)
        let b = try ProcessRunner.mpirun(ranks: 2, product: "fkp", common + ["--out", once.path, "--checkpoint-every", "2e"])
        XCTAssertEqual(b.status, 0, b.output)
        let x = try CheckpointFile.read(try XCTUnwrap(CheckpointFile.list(in: every).last))
        let y = try CheckpointFile.read(try XCTUnwrap(CheckpointFile.list(in: once).last))
        XCTAssertEqual(x.metadata["step"], "6")
        XCTAssertEqual(y.metadata["step"], "6")
        let buffers = x.order.filter { $0.hasSuffix("running_var") }
        XCTAssertFalse(buffers.isEmpty, "the model should have BatchNorm buffers")
        XCTAssertTrue(buffers.contains { x.floats($0)!.contains { $0 != 1 } }, "the running statistics never moved")
        XCTAssertEqual(x.order.sorted(), y.order.sorted())
        for name in x.order { XCTAssertEqual(x.floats(name), y.floats(name), "\(name) depends on how often the run checkpointed") }

        let metrics = try String(contentsOf: once.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        let last = try JSONSerialization.jsonObject(with: Data(metrics.last!.utf8)) as! [String: Any]
        let validated = try XCTUnwrap(last["val_pixel_error"] as? Double)
        let eval = try ProcessRunner.run(fkp, ["eval", "--checkpoint", CheckpointFile.list(in: once).last!.path,
                                               "--data", "synthetic:40", "--validation-only", "--threads", "1"])
        XCTAssertEqual(eval.status, 0, eval.output)
        let line = try XCTUnwrap(eval.stdout.split(separator: "\n").first { $0.hasPrefix("mean pixel error: ") })
        let scored = try XCTUnwrap(Double(line.dropFirst("mean pixel error: ".count)))
        XCTAssertEqual(scored, validated, accuracy: 2e-3, "validation on 2 ranks did not score the saved model")
    }

    /// The allreduce overlapped with backward gives the same bits as the allreduce after it, on
    /// models with plain, residual and skip-connected backward passes; small buckets (40 to 45 per
    /// model) make many of them start while backward runs, so a bucket started before its gradients were final
    /// would show.
    func testOverlappedAllreduceGivesTheSameBits() throws {
        for model in [["--model", "facenet", "--bucket-mb", "0.0625"], ["--model", "unet", "--width", "4", "--input-size", "32x32", "--bucket-mb", "0.0625"],
                      ["--model", "resnet18", "--width", "8", "--input-size", "32x32", "--bucket-mb", "0.0625"]] {
            var results: [SafeTensors] = []
            for overlap in ["--overlap", "--no-overlap"] {
                let dir = TestPaths.temporaryDirectory("overlap")
                defer { try? FileManager.default.removeItem(at: dir) }
                let r = try ProcessRunner.mpirun(ranks: 2, product: "fkp", ["train"] + model + [
                    "--data", "synthetic:24", "--batch", "2", "--epochs", "1", "--steps-per-epoch", "3", "--val-split", "0",
                    "--threads", "1", "--quiet", "--no-pictures", overlap, "--out", dir.path])
                XCTAssertEqual(r.status, 0, r.output)
                results.append(try CheckpointFile.read(try XCTUnwrap(CheckpointFile.list(in: dir).last)))
            }
            for name in results[0].order {
                XCTAssertEqual(results[0].floats(name), results[1].floats(name), "\(model[1]): \(name) differs with overlap")
            }
        }
    }

    /// User + system CPU seconds of a process so far (Linux /proc/PID/stat, clock ticks of 1/100 s).
    func cpuSeconds(_ pid: pid_t) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / 100
    }

    /// A rank that stops (SIGSTOP: a hung read, a swapped-out process) would leave the others in
    /// the allreduce forever; with `--stall-timeout 2` rank 0 names it and aborts the job.
    func testStallWatchdogNamesTheStoppedRankAndAborts() throws {
        let dir = TestPaths.temporaryDirectory("stall")
        defer { try? FileManager.default.removeItem(at: dir) }
        let job = try BackgroundProcess.mpirun(ranks: 2, [fkp, "train", "--data", "synthetic:160", "--batch", "8", "--epochs", "2",
                                                          "--threads", "1", "--quiet", "--no-pictures", "--checkpoint-every", "3",
                                                          "--stall-timeout", "2", "--out", dir.path])
        job.waitFor(dir.appendingPathComponent(CheckpointFile.name(step: 3)))
        let ranks = job.children()
        XCTAssertEqual(ranks.count, 2)
        let stopped = try XCTUnwrap(ranks.last), waiting = try XCTUnwrap(ranks.first)
        kill(stopped, SIGSTOP)
        let started = Date()
        // The waiting rank backs off instead of spinning a core while it waits.
        let cpuBefore = cpuSeconds(waiting)
        Thread.sleep(forTimeInterval: 1.5)
        let cpuWhileWaiting = cpuSeconds(waiting) - cpuBefore
        let result = job.wait(timeout: 60)
        kill(stopped, SIGCONT)
        XCTAssertNotEqual(result.status, 0, result.output)
        XCTAssertLessThan(Date().timeIntervalSince(started), 30, "the job should abort soon after 2 s of stall")
        XCTAssertTrue(result.output.contains("stall: rank 0 has waited"), result.output)
        XCTAssertLessThan(cpuWhileWaiting, 0.5, "rank 0 used \(cpuWhileWaiting) s of CPU in 1.5 s of waiting")
        XCTAssertTrue(result.output.range(of: #"not arrived: rank 1 \(last at step \d+'s [^)]+\)"#, options: .regularExpression) != nil, result.output)
    }

    /// The watchdog covers every collective of the loop, not only the gradients': a rank that stops
    /// before the start broadcast, before a checkpoint, or before the validation metrics is named,
    /// with the place it was last seen, and the job aborts. FKP_TEST_STOP_BEFORE makes rank 1 stop
    /// itself (SIGSTOP) just before the named collective.
    func testStallWatchdogCoversTheStartTheCheckpointAndValidation() throws {
        let cases: [(stopBefore: String, expected: String)] = [
            ("the start broadcast", #"in the start broadcast of the weights; not arrived: rank 1 \(no collective reported\)"#),
            ("step 3's checkpoint", #"in step 3's checkpoint; not arrived: rank 1 \(last at step 3's [^)]+\)"#),
            ("the validation metrics", #"in the validation metrics; not arrived: rank 1 \(last at step \d+'s [^)]+\)"#),
        ]
        for (stopBefore, expected) in cases {
            let dir = TestPaths.temporaryDirectory("stall-where")
            defer { try? FileManager.default.removeItem(at: dir) }
            let job = try BackgroundProcess("/usr/bin/mpirun", ["--oversubscribe", "--bind-to", "none", "-np", "2", "--mca", "plm", "isolated",
                                                                "-x", "OPENBLAS_NUM_THREADS", "-x", "FKP_TEST_STOP_BEFORE=1:\(stopBefore)",
                                                                fkp, "train", "--data", "synthetic:96", "--batch", "8", "--epochs", "1",
                                                                "--threads", "1", "--quiet", "--no-pictures", "--checkpoint-every", "3",
                                                                "--stall-timeout", "2", "--out", dir.path])
            // The stopped rank is continued once the job is over (a stopped process keeps its pid).
            var stopped: Set<pid_t> = []
            let deadline = Date().addingTimeInterval(60)
            while job.isRunning && Date() < deadline {
                for rank in job.children() where processState(rank) == "T" { stopped.insert(rank) }
                usleep(20_000)
            }
            let result = job.wait(timeout: 1)
            for rank in stopped { kill(rank, SIGCONT) }
            XCTAssertNotEqual(result.status, 0, result.output)
            XCTAssertFalse(stopped.isEmpty, "rank 1 never stopped before \(stopBefore)")
            XCTAssertTrue(result.output.contains("stall: rank 0 has waited"), result.output)
            XCTAssertTrue(result.output.range(of: expected, options: .regularExpression) != nil, "\(stopBefore): \(result.output)")
        }
    }

    /// A process's state letter from /proc (R running, S sleeping, T stopped, ...).
    func processState(_ pid: pid_t) -> Character? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ").first?.first
    }

    /// `mpirun -np 2 fkp bench train`: the three measurements and the scaling figures, global
    /// images/s last (what Scripts/bench-ddp-vs-pytorch reads).
    func testDistributedBenchReportsScaling() throws {
        let r = try ProcessRunner.mpirun(ranks: 2, product: "fkp", ["bench", "train", "--model", "nosenet", "--batch", "4",
                                                                    "--steps", "3", "--rounds", "1"])
        XCTAssertEqual(r.status, 0, r.output)
        for needed in ["2 ranks x 1 threads", "1 rank alone:", "2 ranks, no allreduce:", "2 ranks, allreduce after:", "2 ranks, overlapped:", "compute ",
                       "allreduce ", "weak-scaling efficiency: "] {
            XCTAssertTrue(r.stdout.contains(needed), "\(needed) missing in \(r.stdout)")
        }
        let last = try XCTUnwrap(r.stdout.split(separator: "\n").last)
        XCTAssertTrue(last.hasPrefix("images/s: ") && (Double(last.dropFirst(10)) ?? 0) > 0, String(last))
    }

    /// Temporaries of a killed checkpoint write (`.NAME.tmp-PID`) go; checkpoints, `latest` and
    /// other hidden files stay.
    func testStaleTemporaryCheckpointFilesAreRemoved() throws {
        let dir = TestPaths.temporaryDirectory("stale")
        defer { try? FileManager.default.removeItem(at: dir) }
        let stale = ["." + CheckpointFile.name(step: 40) + ".tmp-123", ".latest.tmp-9"]
        let kept = [CheckpointFile.name(step: 20), "latest", ".hidden", "notes.tmp-1", ".x.tmp-", ".y.tmp-12a", ".tmp-5"]
        for name in stale + kept { try Data("x".utf8).write(to: dir.appendingPathComponent(name)) }
        XCTAssertEqual(CheckpointFile.removeStaleTemporaries(in: dir), stale.sorted())
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), kept.sorted())
    }

    func testDefaultThreadsFollowTheEnvironmentAndTheAffinityMask() throws {
        XCTAssertEqual(ThreadBudget.defaultThreads(environment: ["OPENBLAS_NUM_THREADS": "3"]).threads, 3)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let affinity = try XCTUnwrap(ThreadBudget.affinityCores())
        XCTAssertLessThanOrEqual(affinity, cores)
        XCTAssertEqual(ThreadBudget.defaultThreads(environment: [:]).threads, affinity)
        if affinity == cores {
            // Unbound ranks share the node's cores.
            XCTAssertEqual(ThreadBudget.defaultThreads(environment: ["OMPI_COMM_WORLD_LOCAL_SIZE": "2"]).threads, max(1, cores / 2))
        }
        XCTAssertEqual(ThreadBudget.cpuCount(list: "0-3,8,10-11"), 7)
        XCTAssertEqual(ThreadBudget.cpuCount(list: "5"), 1)
        XCTAssertNil(ThreadBudget.cpuCount(list: "3-1"))
        XCTAssertNil(ThreadBudget.cpuCount(list: "x"))

        // A rank pinned to one core (taskset, as mpirun --bind-to core does) trains on one thread.
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset") else { return }
        let dir = TestPaths.temporaryDirectory("threads")
        defer { try? FileManager.default.removeItem(at: dir) }
        var env = ProcessRunner.cleanEnvironment()
        env["OPENBLAS_NUM_THREADS"] = nil
        let r = try ProcessRunner.run("/usr/bin/taskset", ["-c", "0", fkp, "train", "--data", "synthetic:20", "--epochs", "1",
                                                           "--steps-per-epoch", "1", "--batch", "2", "--no-pictures", "--out", dir.path],
                                      environment: env)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stdout.contains("1 threads per rank (the cores this rank is bound to)"), r.stdout)
    }
}
