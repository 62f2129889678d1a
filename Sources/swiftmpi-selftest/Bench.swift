import Foundation
import SwiftMPI

/// `bench [--reps N] [--warmup W] [--sizes BYTES,...] [--nonblocking]`: times the wrapper's in-place
/// Float allreduce exactly as Scripts/bench/allreduce.c times MPI_Allreduce (barrier, then one call,
/// timed on each rank; rank 0 prints the median), so the two can be compared line for line.
/// `--nonblocking` times an in-place MPI_Iallreduce and its wait instead: what fkp's gradient
/// buckets do (GradientSync), which Open MPI serves from another component (libnbc) than the
/// blocking call (tuned), with its own choice of algorithm.
func runBench(_ world: Communicator, _ arguments: [String]) -> Int32 {
    var reps = 20, warmup = 3, nonblocking = false
    var sizes = [1 << 10, 1 << 20, 16 << 20, 100 << 20]
    var index = 0
    while index < arguments.count {
        let value = index + 1 < arguments.count ? arguments[index + 1] : ""
        switch arguments[index] {
        case "--reps": reps = Int(value) ?? 0
        case "--warmup": warmup = Int(value) ?? -1
        case "--sizes": sizes = value.split(separator: ",").compactMap { Int($0) }
        case "--nonblocking": nonblocking = true; index += 1; continue
        default:
            fputs("swiftmpi-selftest bench: unknown option '\(arguments[index])'\n", stderr)
            return 2
        }
        index += 2
    }
    guard reps > 0, warmup >= 0, !sizes.isEmpty, sizes.allSatisfy({ $0 >= 4 }) else {
        fputs("swiftmpi-selftest bench: need --reps > 0, --warmup >= 0, --sizes of at least 4 bytes\n", stderr)
        return 2
    }
    let capacity = sizes.max()! / MemoryLayout<Float>.stride
    let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: capacity)
    defer { buffer.deallocate() }
    // Zeros stay zeros under repeated sums: no overflow to inf, no denormals, same work as any data.
    buffer.initialize(repeating: 0)
    do {
        for bytes in sizes {
            let slice = UnsafeMutableBufferPointer(rebasing: buffer[0 ..< bytes / MemoryLayout<Float>.stride])
            let median = try timeAllreduce(world, slice, reps: reps, warmup: warmup, nonblocking: nonblocking)
            if world.isRoot {
                let call = nonblocking ? "iallreduce" : "allreduce"
                print(String(format: "swift \(call) bytes %d ranks %d reps %d median_ms %.4f",
                             bytes, world.size, reps, median * 1e3))
            }
        }
    } catch {
        fputs("swiftmpi-selftest bench: \(error)\n", stderr)
        return 1
    }
    return 0
}

private func timeAllreduce(_ world: Communicator, _ buffer: UnsafeMutableBufferPointer<Float>,
                           reps: Int, warmup: Int, nonblocking: Bool) throws -> Double {
    let reduce = nonblocking ? { try world.iallreduce(buffer).wait() } : { try world.allreduce(buffer) }
    for _ in 0 ..< warmup { try reduce() }
    var times = [Double](repeating: 0, count: reps)
    for rep in 0 ..< reps {
        try world.barrier()
        let start = MPI.time
        try reduce()
        times[rep] = MPI.time - start
    }
    times.sort()
    return reps % 2 == 1 ? times[reps / 2] : (times[reps / 2 - 1] + times[reps / 2]) / 2
}
