import Foundation
import SwiftMPI

/// `progress`: whether a ProgressThread moves a non-blocking allreduce forward while the caller
/// makes no MPI call. Every rank starts an in-place MPI_Iallreduce of 32 MiB, sleeps for a second
/// (as a rank does while it computes a layer), then tests the request once: done with the thread;
/// without it (printed for comparison, not checked) Open MPI has moved only what the first call
/// started. Exit 0 when the thread's run completed on every rank.
func runProgress(_ world: Communicator) -> Int32 {
    let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: 8 << 20)
    defer { buffer.deallocate() }
    buffer.initialize(repeating: 1)
    do {
        let thread = try ProgressThread(interval: 0.001)
        var completed: [Bool] = []
        for withThread in [false, true] {
            try world.barrier()
            let request = try world.iallreduce(buffer)
            if withThread { thread.resume() }
            Thread.sleep(forTimeInterval: 1)
            if withThread { thread.pause() }
            completed.append(try request.test())
            try request.wait()
        }
        let sumsRight = buffer.allSatisfy { $0 == Float(world.size * world.size) }
        fputs("rank \(world.rank) progress: complete after 1 s without a progress thread \(completed[0] ? "yes" : "no"), "
              + "with one \(completed[1] ? "yes" : "no"); sums \(sumsRight ? "right" : "wrong")\n", stdout)
        fflush(stdout)
        let failed = try world.allreduce(Int32(completed[1] && sumsRight ? 0 : 1))
        return failed == 0 ? 0 : 1
    } catch {
        fputs("swiftmpi-selftest progress: \(error)\n", stderr)
        return 1
    }
}
