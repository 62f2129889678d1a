import Foundation
import TestSupport
import XCTest

/// deploy/slurm/train.sbatch under a real Slurm: Scripts/test-slurm installs slurm-wlm and munge
/// when missing, starts munged, slurmctld and slurmd (this machine as one node of 2 CPUs), runs the
/// sbatch script with srun and with mpirun against a plain mpirun run, preempts it with USR1, cancels
/// it with TERM and lets its time limit requeue it (1.5 to 3.5 minutes on 2 cores). Root only, as in CI:
/// elsewhere it cannot install packages or start the daemons, and the test skips.
final class SlurmTests: XCTestCase {
    func testSbatchScriptOnARealSlurmCluster() throws {
        guard getuid() == 0 else { throw XCTSkip("Scripts/test-slurm needs root (apt-get, munged, slurmctld, slurmd)") }
        let script = TestPaths.repoRoot.appendingPathComponent("Scripts/test-slurm").path
        let started = Date()
        let result = try ProcessRunner.run("/bin/bash", [script, TestPaths.product("fkp").path], timeout: 1200)
        print("\(result.output)SlurmTests: Scripts/test-slurm took \(Int(Date().timeIntervalSince(started))) s")
        XCTAssertEqual(result.status, 0, result.output)
        let passes = result.stdout.split(separator: "\n").filter { $0.hasPrefix("PASS ") }
        XCTAssertEqual(passes.count, 5, "five checks should pass:\n\(result.output)")
    }
}
