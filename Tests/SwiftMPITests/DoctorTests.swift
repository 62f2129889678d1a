import TestSupport
import XCTest

/// `fkp doctor --quick`, alone (a world of one) and as a real two-rank job.
final class DoctorTests: XCTestCase {
    func testDoctorAloneReportsAWorldOfOne() throws {
        let result = try ProcessRunner.run(TestPaths.product("fkp").path, ["doctor", "--quick"], timeout: 120)
        XCTAssertEqual(result.status, 0, result.output)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("world size: 1"), result.output)
        XCTAssertTrue(lines.contains("result: all checks passed"), result.output)
        XCTAssertTrue(result.stdout.contains("singleton (no mpirun)"), result.output)
        XCTAssertFalse(result.stdout.contains("100 MiB"), "--quick skips 100 MiB\n\(result.output)")
    }

    func testDoctorUnderMpirunTwoRanks() throws {
        let result = try ProcessRunner.mpirun(ranks: 2, product: "fkp", ["doctor", "--quick"], timeout: 120)
        XCTAssertEqual(result.status, 0, result.output)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("world size: 2"), result.output)
        XCTAssertEqual(lines.filter { $0.hasPrefix("world size:") }.count, 1, "only rank 0 prints\n\(result.output)")
        // fkp asks for libnbc's ring for its non-blocking allreduce (docs/SCALING.md, section 3).
        XCTAssertTrue(lines.contains("gradient allreduce (libnbc iallreduce algorithm): ring (1)"), result.output)
        var environment = ProcessRunner.cleanEnvironment()
        environment["OMPI_MCA_coll_libnbc_iallreduce_algorithm"] = "2"
        let chosen = try ProcessRunner.run(TestPaths.product("fkp").path, ["doctor", "--quick"], environment: environment, timeout: 120)
        XCTAssertTrue(chosen.stdout.contains("gradient allreduce (libnbc iallreduce algorithm): 2"), "a user's choice wins\n\(chosen.output)")
        for check in ["check broadcast from rank 1: ok", "check allreduce (sum of ranks = 1): ok",
                      "check gather to rank 0: ok", "result: all checks passed"] {
            XCTAssertTrue(lines.contains(check), "missing '\(check)'\n\(result.output)")
        }
        // One table row per rank, each with a positive sgemm rate.
        // Rows: rank, host, cores, BLAS threads, BLAS core, GFLOP/s.
        let rows = lines.filter { line in
            let words = line.split(separator: " ")
            return words.count == 6 && Int(words[0]) != nil && Int(words[2]) != nil
        }
        XCTAssertEqual(rows.count, 2, result.output)
        for row in rows {
            let gflops = row.split(separator: " ").last.flatMap { Double($0) } ?? 0
            XCTAssertGreaterThan(gflops, 1, row)
        }
        XCTAssertTrue(lines.contains { $0.hasPrefix("16 MiB") }, result.output)
    }

    func testDoctorRejectsBadOptionsWithOneLine() throws {
        let result = try ProcessRunner.run(TestPaths.product("fkp").path, ["doctor", "--reps", "0"], timeout: 60)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--reps must be positive"), result.output)
    }
}
