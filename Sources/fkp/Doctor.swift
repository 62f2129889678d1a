import ArgumentParser
import COpenBLAS
import Engine
import Foundation
import SwiftMPI

/// `fkp doctor`: the first command on a new cluster. Under `mpirun -np N --hostfile H fkp doctor`
/// every rank measures itself, rank 0 prints one table for the whole job (rows gathered through
/// the wrapper, so the output is not interleaved), and the exit status is non-zero on every rank
/// if any check failed anywhere. Without mpirun it checks a world of one.
struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check MPI, OpenBLAS and the interconnect on this machine or cluster (run under mpirun).")

    @Flag(help: "Skip the 100 MiB allreduce (faster; for tests).")
    var quick = false

    @Option(help: "Timed repetitions per allreduce size (the median is reported).")
    var reps = 5

    @Option(help: "Matrix size n of the n×n×n sgemm timed on each rank.")
    var gemmSize = 1024

    func validate() throws {
        guard reps > 0 else { throw ValidationError("--reps must be positive") }
        guard gemmSize > 0 && gemmSize <= 8192 else { throw ValidationError("--gemm-size must be in 1...8192") }
    }

    func run() throws {
        let level = try MPI.initialize(threadLevel: .funneled)
        let world = MPI.world
        let rows = try gatherRankRows(world)
        var checks: [(String, Bool)] = []
        checks.append(("broadcast from rank \(world.size - 1)", try everyRank(world, checkBroadcast(world))))
        checks.append(("allreduce (sum of ranks = \(world.size * (world.size - 1) / 2))",
                       try everyRank(world, checkAllreduce(world))))
        checks.append(("gather to rank 0", try everyRank(world, checkGather(world))))
        var sizes = [1 << 20, 16 << 20]
        if !quick { sizes.append(100 << 20) }
        var bandwidth: [(bytes: Int, seconds: Double)] = []
        for bytes in sizes { bandwidth.append((bytes, try timeAllreduce(world, bytes: bytes, reps: reps))) }

        if world.isRoot {
            printReport(world, level: level, rows: rows, checks: checks, bandwidth: bandwidth)
        }
        if checks.contains(where: { !$0.1 }) { throw ExitCode.failure }
    }

    // MARK: - Per-rank facts

    struct RankRow {
        var host: String, blasThreads: Int, blasCore: String, cores: Int, sgemmGflops: Double
    }

    /// Every rank measures itself; every rank receives all rows (strings via allgather(String)).
    private func gatherRankRows(_ world: Communicator) throws -> [RankRow] {
        let hosts = try world.allgather(world.processorName)
        let coreNames = try world.allgather(String(cString: openblas_get_corename()))
        let threads = try world.allgather(Int64(openblas_get_num_threads()))
        let cores = try world.allgather(Int64(ProcessInfo.processInfo.activeProcessorCount))
        let gflops = try world.allgather(sgemmGflops(n: gemmSize))
        return (0 ..< world.size).map {
            RankRow(host: hosts[$0], blasThreads: Int(threads[$0]), blasCore: coreNames[$0],
                    cores: Int(cores[$0]), sgemmGflops: gflops[$0])
        }
    }

    /// Best of three timed n³ sgemms after one warm-up (best, not median: it measures the core).
    private func sgemmGflops(n: Int) -> Double {
        var a = [Float](repeating: 0, count: n * n), b = a, c = a
        for i in 0 ..< n * n { a[i] = Float(i % 7) * 0.25; b[i] = Float(i % 5) * 0.5 }
        var best = Double.infinity
        for rep in 0 ..< 4 {
            let start = MPI.time
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n),
                        1, a, Int32(n), b, Int32(n), 0, &c, Int32(n))
            if rep > 0 { best = min(best, MPI.time - start) }
        }
        return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
    }

    // MARK: - Checks (each rank checks its own result; `everyRank` combines them)

    /// True only if `ok` is true on every rank (so every rank reports, and exits, the same way).
    private func everyRank(_ world: Communicator, _ ok: Bool) throws -> Bool {
        try world.allreduce(Int32(ok ? 1 : 0), op: .min) == 1
    }

    private func checkBroadcast(_ world: Communicator) throws -> Bool {
        let root = world.size - 1
        var data = (0 ..< 4096).map { Double(world.rank == root ? $0 * 3 + 1 : -1) }
        try world.broadcast(&data, root: root)
        let text = try world.broadcast(world.rank == root ? "from \(root)" : "", root: root)
        return text == "from \(root)" && data.indices.allSatisfy { data[$0] == Double($0 * 3 + 1) }
    }

    private func checkAllreduce(_ world: Communicator) throws -> Bool {
        var data = [Float](repeating: Float(world.rank), count: 1 << 18)
        try world.allreduce(&data)
        let want = Float(world.size * (world.size - 1) / 2)
        return try world.allreduce(Int64(world.rank)) == Int64(want) && data.allSatisfy { $0 == want }
    }

    private func checkGather(_ world: Communicator) throws -> Bool {
        let gathered = try world.gather([Int64(world.rank), Int64(world.rank * world.rank)], root: 0)
        guard world.isRoot else { return gathered == nil }
        return gathered == (0 ..< world.size).flatMap { [Int64($0), Int64($0 * $0)] }
    }

    // MARK: - Bandwidth

    /// Median over `reps` of the slowest rank's time for one in-place Float allreduce of `bytes`.
    private func timeAllreduce(_ world: Communicator, bytes: Int, reps: Int) throws -> Double {
        // Zeros stay zeros under repeated sums (no overflow, no denormals): every rep does the same work.
        var data = [Float](repeating: 0, count: bytes / MemoryLayout<Float>.stride)
        try world.allreduce(&data)  // warm-up: page faults, shared-memory segments, connections
        var times: [Double] = []
        for _ in 0 ..< reps {
            try world.barrier()
            let start = MPI.time
            try world.allreduce(&data)
            times.append(try world.allreduce(MPI.time - start, op: .max))
        }
        times.sort()
        return times[times.count / 2]
    }

    // MARK: - Report (rank 0)

    private func printReport(_ world: Communicator, level: ThreadLevel, rows: [RankRow], checks: [(String, Bool)],
                             bandwidth: [(bytes: Int, seconds: Double)]) {
        print("fkp doctor")
        print("world size: \(world.size)")
        print("MPI: \(MPI.libraryVersion.split(separator: "\n").first ?? ""); thread level \(level); "
              + (MPI.launchedByProcessManager ? "launched by a process manager" : "singleton (no mpirun)"))
        // What main.swift asked for unless the user set it (rank 0's environment; mpirun gives all the same).
        let algorithm = getenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm").map { String(cString: $0) } ?? "unset"
        print("gradient allreduce (libnbc iallreduce algorithm): \(algorithm == "1" ? "ring (1)" : algorithm)")
        print("")
        print(pad("rank", 5) + pad("host", 24) + pad("cores", 6) + pad("blas threads", 13) + pad("blas core", 14)
              + "sgemm \(gemmSize)³ GFLOP/s")
        for (rank, row) in rows.enumerated() {
            print(pad("\(rank)", 5) + pad(row.host, 24) + pad("\(row.cores)", 6) + pad("\(row.blasThreads)", 13)
                  + pad(row.blasCore, 14) + String(format: "%.1f", row.sgemmGflops))
        }
        if getenv(BLASCore.replacedVariable) != nil { print("blas core (rank 0): \(BLASCore.description)") }
        let perHost = Dictionary(grouping: rows, by: \.host)
        print("hosts: \(perHost.count) (\(perHost.keys.sorted().map { "\($0) × \(perHost[$0]!.count)" }.joined(separator: ", ")))")
        for (host, ranks) in perHost.sorted(by: { $0.key < $1.key }) {
            let threads = ranks.reduce(0) { $0 + $1.blasThreads }
            if threads > ranks[0].cores {
                print("warning: \(host) runs \(ranks.count) rank(s) with \(threads) OpenBLAS threads in all on "
                      + "\(ranks[0].cores) cores; set OPENBLAS_NUM_THREADS (mpirun -x OPENBLAS_NUM_THREADS=...)")
            }
        }
        print("")
        for (name, ok) in checks { print("check \(name): \(ok ? "ok" : "FAILED")") }
        print("")
        print("allreduce bandwidth (float sum in place, median of \(reps), slowest rank):")
        print(pad("size", 10) + pad("ms", 10) + "algbw GB/s")
        for (bytes, seconds) in bandwidth {
            print(pad("\(bytes >> 20) MiB", 10) + pad(String(format: "%.3f", seconds * 1e3), 10)
                  + String(format: "%.2f", Double(bytes) / seconds / 1e9))
        }
        if world.size == 1 { print("(a world of one rank: allreduce moves no data; run under mpirun to measure)") }
        print("")
        let failed = checks.filter { !$0.1 }.map(\.0)
        print(failed.isEmpty ? "result: all checks passed" : "result: FAILED: \(failed.joined(separator: "; "))")
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
