import Foundation
import SwiftMPI

func selftestMain(_ arguments: [String]) -> Int32 {
    do {
        // The progress thread calls MPI beside the main thread.
        try MPI.initialize(threadLevel: arguments.first == "progress" ? .multiple : .funneled)
    } catch {
        fputs("swiftmpi-selftest: \(error)\n", stderr)
        return 1
    }
    let world = MPI.world
    switch arguments.first {
    case "bench":
        return runBench(world, Array(arguments.dropFirst()))
    case "progress":
        return runProgress(world)
    case "abort":
        return runAbort(world, code: Int32(arguments.dropFirst().first ?? "") ?? 3)
    case nil, "check":
        return runChecks(world)
    case let other?:
        fputs("swiftmpi-selftest: unknown mode '\(other)' (use check, bench, progress or abort CODE)\n", stderr)
        return 2
    }
}

private func runChecks(_ world: Communicator) -> Int32 {
    let report = Report(world: world)
    // Where each rank runs (the multi-host tests read this): host name and a first allreduce.
    let sum = (try? world.allreduce(Float(world.rank + 1))) ?? .nan
    fputs("rank \(world.rank)/\(world.size) host \(world.processorName) sum \(sum)\n", stdout)
    fflush(stdout)
    report.run("world") {
        let env = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"].flatMap { Int($0) }
        let ok = world.rank >= 0 && world.rank < world.size && world.size == (env ?? 1)
            && !world.processorName.isEmpty
        return (ok, "rank \(world.rank) size \(world.size) launcher says \(env.map(String.init) ?? "-")")
    }
    checkAllreduce(report)
    checkCollectives(report)
    checkSlices(report)
    checkErrors(report)
    // Every rank learns whether any rank failed, so the job's exit status is the same everywhere.
    let failedRanks = (try? world.allreduce(Int32(report.failures > 0 ? 1 : 0))) ?? 1
    let summary = "rank \(world.rank) summary \(report.checks) checks, \(report.failures) failed here, "
        + "\(failedRanks) rank(s) with failures\n"
    fputs(summary, stdout)
    fflush(stdout)
    return failedRanks == 0 ? 0 : 1
}

/// The last rank aborts while the others wait in a barrier: MPI_Abort must end them all.
private func runAbort(_ world: Communicator, code: Int32) -> Int32 {
    if world.rank == world.size - 1 {
        fputs("rank \(world.rank) aborting with \(code)\n", stdout)
        fflush(stdout)
        world.abort(code: code)
    }
    _ = try? world.barrier()
    fputs("rank \(world.rank) passed a barrier the aborting rank never reached\n", stdout)
    return 0
}
