import TestSupport
import XCTest

/// Real multi-rank jobs: `mpirun -np N swiftmpi-selftest` runs every collective with
/// rank-dependent data and prints `rank R check NAME ok|FAIL ...` per check per rank.
final class MPIRunTests: XCTestCase {
    func testSelftestTwoRanks() throws { try runSelftest(ranks: 2) }

    func testSelftestThreeRanksOversubscribed() throws { try runSelftest(ranks: 3) }

    func testSelftestAloneIsAWorldOfOne() throws {
        let result = try ProcessRunner.run(TestPaths.product("swiftmpi-selftest").path, [], timeout: 60)
        XCTAssertEqual(result.status, 0, result.output)
        let checks = parseChecks(result.stdout)
        XCTAssertEqual(Set(checks.map(\.rank)), [0], result.output)
        XCTAssertGreaterThan(checks.count, 40)
        XCTAssertTrue(checks.allSatisfy(\.ok), result.output)
    }

    /// One rank aborts while the others wait in a barrier: the whole job ends with its code.
    func testAbortEndsTheWholeJob() throws {
        let result = try ProcessRunner.mpirun(ranks: 2, product: "swiftmpi-selftest", ["abort", "7"], timeout: 60)
        XCTAssertEqual(result.status, 7, result.output)
        XCTAssertTrue(result.stdout.contains("rank 1 aborting with 7"), result.output)
        XCTAssertFalse(result.stdout.contains("passed a barrier"), result.output)
    }

    /// `bench` prints one median per size for the blocking call, and with `--nonblocking` for the
    /// in-place iallreduce (what fkp's gradient buckets use).
    func testBenchTimesBothCalls() throws {
        for (flags, call) in [([String](), "allreduce"), (["--nonblocking"], "iallreduce")] {
            let result = try ProcessRunner.mpirun(ranks: 2, product: "swiftmpi-selftest",
                                                  ["bench", "--reps", "3", "--warmup", "1", "--sizes", "4096,65536"] + flags,
                                                  timeout: 60)
            XCTAssertEqual(result.status, 0, result.output)
            let lines = result.stdout.split(separator: "\n").filter { $0.hasPrefix("swift ") }
            XCTAssertEqual(lines.map { $0.split(separator: " ").prefix(6).joined(separator: " ") },
                           ["swift \(call) bytes 4096 ranks 2", "swift \(call) bytes 65536 ranks 2"], result.output)
        }
    }

    /// A ProgressThread finishes a 32 MiB MPI_Iallreduce while both ranks sleep without MPI calls
    /// (what lets fkp's gradient buckets move while backward computes a layer).
    func testProgressThreadMovesAnAllreduceWhileTheCallerSleeps() throws {
        let result = try ProcessRunner.mpirun(ranks: 2, product: "swiftmpi-selftest", ["progress"], timeout: 60)
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertEqual(result.stdout.split(separator: "\n").filter { $0.contains("with one yes; sums right") }.count, 2, result.output)
    }

    private func runSelftest(ranks: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try ProcessRunner.mpirun(ranks: ranks, product: "swiftmpi-selftest", [], timeout: 120)
        XCTAssertEqual(result.status, 0, result.output, file: file, line: line)
        let checks = parseChecks(result.stdout)
        let failed = checks.filter { !$0.ok }
        XCTAssertTrue(failed.isEmpty, "failed: \(failed.map { "rank \($0.rank) \($0.name)" })\n\(result.output)",
                      file: file, line: line)
        // Every rank ran the same (complete) list of checks.
        let byRank = Dictionary(grouping: checks, by: \.rank).mapValues { $0.map(\.name) }
        XCTAssertEqual(Set(byRank.keys), Set(0 ..< ranks), result.output, file: file, line: line)
        let names = byRank[0] ?? []
        for (rank, list) in byRank {
            XCTAssertEqual(list, names, "rank \(rank) ran different checks", file: file, line: line)
        }
        XCTAssertEqual(Set(names).count, names.count, "duplicate check names", file: file, line: line)
        for expected in ["allreduce-float-sum-inplace", "allreduce-int64-min-outofplace", "allreduce-double-max-buffer",
                         "broadcast-double-root\(ranks - 1)", "allgather-string", "gather-float-root\(ranks - 1)",
                         "iallreduce-wait", "iallreduce-test-poll", "barrier",
                         "misuse-allgather-rank-dependent-count", "mpi-error-invalid-count",
                         "reduce-scatter-float-uneven", "reduce-scatter-double-max-even", "allgather-inplace-uneven",
                         "gather-slices-root\(ranks - 1)", "misuse-reduce-scatter-counts"] {
            XCTAssertTrue(names.contains(expected), "missing check \(expected)", file: file, line: line)
        }
        for rank in 0 ..< ranks {
            XCTAssertTrue(result.stdout.contains("rank \(rank) summary"), "rank \(rank) printed no summary",
                          file: file, line: line)
        }
    }
}

struct CheckLine { let rank: Int, name: String, ok: Bool }

/// Parses `rank R check NAME ok|FAIL ...` lines.
func parseChecks(_ output: String) -> [CheckLine] {
    output.split(separator: "\n").compactMap { line in
        let words = line.split(separator: " ", omittingEmptySubsequences: true)
        guard words.count >= 5, words[0] == "rank", words[2] == "check", let rank = Int(words[1]),
              words[4] == "ok" || words[4] == "FAIL" else { return nil }
        return CheckLine(rank: rank, name: String(words[3]), ok: words[4] == "ok")
    }
}
