import Checkpoints
import Foundation
import TestSupport
import Training
import XCTest

/// Graceful preemption end to end: a real SIGTERM to one rank of a real 2-rank mpirun job.
final class PreemptionTests: XCTestCase {
    let fkp = TestPaths.product("fkp").path
    /// 128 training faces / global batch 16 = 8 steps per epoch, 16 in all; dropout and
    /// augmentation on, so their random streams must resume exactly too.
    func common(_ out: URL) -> [String] {
        ["train", "--data", "synthetic:160", "--batch", "8", "--epochs", "2", "--threads", "1", "--quiet", "--no-pictures",
         "--checkpoint-every", "3", "--keep", "20", "--out", out.path]
    }

    /// TERM to rank 1 mid-epoch: every rank stops at the same step boundary, rank 0 writes a
    /// checkpoint at that step, the job exits 75; `--resume auto` then ends with the same weights,
    /// optimizer state and losses as a run that was never interrupted. A temporary file left by
    /// an earlier killed write is removed at start.
    func testTermOnOneRankCheckpointsAndResumesToTheSameWeights() throws {
        let straight = TestPaths.temporaryDirectory("preempt-straight"), stopped = TestPaths.temporaryDirectory("preempt-stopped")
        defer { try? FileManager.default.removeItem(at: straight); try? FileManager.default.removeItem(at: stopped) }
        let full = try ProcessRunner.mpirun(ranks: 2, product: "fkp", common(straight))
        XCTAssertEqual(full.status, 0, full.output)

        let stale = stopped.appendingPathComponent("." + CheckpointFile.name(step: 3) + ".tmp-4242")
        try Data(repeating: 7, count: 1000).write(to: stale)
        let job = try BackgroundProcess.mpirun(ranks: 2, [fkp] + common(stopped))
        job.waitFor(stopped.appendingPathComponent(CheckpointFile.name(step: 3)))
        let ranks = job.children()
        XCTAssertEqual(ranks.count, 2, "mpirun's children: \(ranks)")
        if let rank = ranks.last { kill(rank, SIGTERM) }
        let result = job.wait(timeout: 120)
        XCTAssertEqual(result.status, Preemption.exitStatus, result.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale.path), "the stale temporary file was not removed")

        let written = CheckpointFile.list(in: stopped)
        let last = try XCTUnwrap(written.last)
        let position = try TrainingCheckpoint.contents(of: try CheckpointFile.read(last), path: last.path).position
        XCTAssertGreaterThan(position.step, 3, "stopped before the first step checkpoint? \(written)")
        XCTAssertLessThan(position.step, 16, "the run finished before the signal arrived: \(written)")
        XCTAssertEqual(try CheckpointFile.resolve(stopped.path), last)

        let resumed = try ProcessRunner.mpirun(ranks: 2, product: "fkp", common(stopped) + ["--resume", "auto"])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        let a = try CheckpointFile.read(CheckpointFile.list(in: straight).last!)
        let b = try CheckpointFile.read(CheckpointFile.list(in: stopped).last!)
        XCTAssertEqual(a.metadata["step"], "16")
        XCTAssertEqual(b.metadata["step"], "16")
        XCTAssertEqual(a.order.sorted(), b.order.sorted())
        for name in a.order { XCTAssertEqual(a.floats(name), b.floats(name), "\(name) differs after TERM and resume") }
        XCTAssertEqual(try epochLosses(straight), try epochLosses(stopped))
    }

    func testSignalListsParse() throws {
        XCTAssertEqual(try Preemption.parse("TERM,USR1,INT"), [SIGTERM, SIGUSR1, SIGINT])
        XCTAssertEqual(try Preemption.parse("sigusr2, hup"), [SIGUSR2, SIGHUP])
        XCTAssertEqual(try Preemption.parse("none"), [])
        XCTAssertThrowsError(try Preemption.parse("TERM,KILL"))
    }

    private func epochLosses(_ dir: URL) throws -> [String] {
        try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n").map { line in
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return "\(o["train_loss"]!) \(o["val_loss"]!)"
        }
    }
}

/// A process started in the background (`mpirun`, a batch script), so a test can signal it or its
/// children while they run.
final class BackgroundProcess {
    let process = Process()
    let output: URL

    init(_ executable: String, _ arguments: [String], environment: [String: String] = ProcessRunner.cleanEnvironment()) throws {
        output = TestPaths.temporaryDirectory("background").appendingPathComponent("output")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// `mpirun -np ranks` on this machine (oversubscribed, no ssh), as `ProcessRunner.mpirun` starts it.
    static func mpirun(ranks: Int, _ arguments: [String]) throws -> BackgroundProcess {
        try BackgroundProcess("/usr/bin/mpirun", ["--oversubscribe", "--bind-to", "none", "-np", String(ranks), "--mca", "plm", "isolated",
                                                  "-x", "OPENBLAS_NUM_THREADS"] + arguments)
    }

    var isRunning: Bool { process.isRunning }
    var pid: pid_t { process.processIdentifier }

    /// Waits (at most `timeout` seconds) until `file` exists or the process has ended.
    func waitFor(_ file: URL, timeout: TimeInterval = 120) {
        let deadline = Date().addingTimeInterval(timeout)
        while !FileManager.default.fileExists(atPath: file.path) && process.isRunning && Date() < deadline { usleep(5_000) }
    }

    /// The direct children (for mpirun with `plm isolated`: the ranks).
    func children() -> [pid_t] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { task -> [pid_t] in
            let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? ""
            return text.split(separator: " ").compactMap { pid_t($0) }
        }.sorted()
    }

    func wait(timeout: TimeInterval) -> (status: Int32, output: String) {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: output.deletingLastPathComponent())
        return (process.terminationStatus, text)
    }
}
