import Foundation
import SwiftMPI

/// Broadcast, gathers, barrier and the non-blocking allreduce.
func checkCollectives(_ report: Report) {
    let world = report.world
    let lastRank = world.size - 1  // a non-zero root whenever there is more than one rank

    report.run("broadcast-double-root\(lastRank)") {
        var data = (0 ..< 11).map { Double(sample(rank: world.rank, index: $0)) + 0.25 }
        try world.broadcast(&data, root: lastRank)
        let want = (0 ..< 11).map { Double(sample(rank: lastRank, index: $0)) + 0.25 }
        return (data == want, "got \(data.prefix(3)) want \(want.prefix(3))")
    }
    report.run("broadcast-scalar-root\(lastRank)") {
        let got = try world.broadcast(Int32(100 + world.rank), root: lastRank)
        return (got == Int32(100 + lastRank), "got \(got)")
    }
    report.run("broadcast-string-root\(lastRank)") {
        // Only the root knows the length; the others pass something else entirely.
        let message = world.rank == lastRank ? "héllo from \(lastRank) " + String(repeating: "z", count: 300) : "?"
        let got = try world.broadcast(message, root: lastRank)
        let want = "héllo from \(lastRank) " + String(repeating: "z", count: 300)
        return (got == want, "got \(got.prefix(20))")
    }
    report.run("allgather-int32") {
        let mine = (0 ..< 3).map { Int32(world.rank * 10 + $0) }
        let got = try world.allgather(mine)
        let want = (0 ..< world.size).flatMap { r in (0 ..< 3).map { Int32(r * 10 + $0) } }
        return (got == want, "got \(got) want \(want)")
    }
    report.run("allgather-string") {
        // Different lengths per rank (rank 0 has the shortest).
        let got = try world.allgather("rank-\(world.rank)" + String(repeating: "x", count: world.rank * 3))
        let want = (0 ..< world.size).map { "rank-\($0)" + String(repeating: "x", count: $0 * 3) }
        return (got == want, "got \(got)")
    }
    report.run("gather-float-root\(lastRank)") {
        let got = try world.gather([Float(world.rank) * 1.5, -Float(world.rank)], root: lastRank)
        if world.rank != lastRank { return (got == nil, "non-root received \(String(describing: got))") }
        let want = (0 ..< world.size).flatMap { [Float($0) * 1.5, -Float($0)] }
        return (got == want, "got \(String(describing: got)) want \(want)")
    }
    report.run("iallreduce-wait") {
        var data = [Double](repeating: Double(world.rank + 1), count: 1000)
        try data.withUnsafeMutableBufferPointer { buffer in
            let request = try world.iallreduce(buffer)
            try request.wait()
        }
        let want = Double(world.size * (world.size + 1) / 2)
        return (data.allSatisfy { $0 == want }, "got \(data[0]) want \(want)")
    }
    report.run("iallreduce-test-poll") {
        var data = [Float](repeating: Float(world.rank + 1), count: 1 << 21)
        var polls = 0
        var complete = false
        try data.withUnsafeMutableBufferPointer { buffer in
            let request = try world.iallreduce(buffer, op: .max)
            while try !request.test() { polls += 1 }
            complete = request.isComplete
        }
        let want = Float(world.size)
        return (complete && data.allSatisfy { $0 == want }, "got \(data[0]) want \(want) after \(polls) polls")
    }
    checkBarrier(report)
}

/// Rank r arrives r × 80 ms late; nobody may leave the barrier before the last one arrived.
/// (All ranks of the self-test share one machine, hence one clock.)
private func checkBarrier(_ report: Report) {
    let world = report.world
    report.run("barrier") {
        try world.barrier()
        usleep(UInt32(world.rank * 80_000))
        let arrived = Date().timeIntervalSince1970
        try world.barrier()
        let left = Date().timeIntervalSince1970
        let lastArrival = try world.allgather(arrived).max()!
        return (left >= lastArrival, "left \(left) before last arrival \(lastArrival)")
    }
}
