import Foundation
import SwiftMPI
import Training

/// `mpirun -np N fkp bench train ...`: what a data-parallel step costs. Each round measures, in
/// this order and with the same network and input:
/// 1. rank 0 alone (the other ranks sleep in a polled barrier, using no CPU): the 1-rank figure;
/// 2. every rank at once without the allreduce: the machine's own ceiling (shared memory
///    bandwidth, caches, turbo) for N independent processes;
/// 3. every rank with the real step: forward, loss, backward, gradient averaging (GradientSync)
///    after backward, AdamW;
/// 4. the same with the allreduce overlapped with backward (what `fkp train` does by default).
/// Alternating them in one run lets them see the same machine; medians over rounds are reported.
/// Weak-scaling efficiency = (4) / (N × (1)); (4) / (2) is the part lost to communicating.
struct DistributedBench {
    let loop: BenchLoop
    let world: Communicator
    let model: String
    let threads: Int
    let bucketBytes: Int
    let progressInterval: Double?

    /// Global images/s and rank 0's per-step compute and (exposed) allreduce seconds.
    struct Measurement { var rate = 0.0, compute = 0.0, exchange = 0.0 }

    func run(steps: Int, rounds: Int) throws {
        let sync = try GradientSync(communicator: world, bucketBytes: bucketBytes, progressInterval: progressInterval)
        let n = world.size, batch = loop.batch
        for overlap in [false, true, false] { try loop.step(sync: sync, overlap: overlap) }   // warm-up: buffers, caches, connections
        var alone: [Double] = [], independent: [Double] = [], after: [Measurement] = [], overlapped: [Measurement] = []
        for _ in 0 ..< rounds {
            try world.barrier()
            if world.rank == 0 {
                let start = loop.now()
                for _ in 0 ..< steps { try loop.step() }
                alone.append(Double(batch * steps) / (loop.now() - start))
            }
            try sleepingBarrier()
            independent.append(try measure(steps: steps, sync: nil, overlap: false).rate)
            after.append(try measure(steps: steps, sync: sync, overlap: false))
            overlapped.append(try measure(steps: steps, sync: sync, overlap: true))
        }
        guard world.rank == 0 else { return }
        let a = median(alone), b = median(independent)
        let plain = Measurement(rate: median(after.map(\.rate)), compute: median(after.map(\.compute)), exchange: median(after.map(\.exchange)))
        let over = Measurement(rate: median(overlapped.map(\.rate)), compute: median(overlapped.map(\.compute)),
                               exchange: median(overlapped.map(\.exchange)))
        let gradientMB = Double(loop.network.store.parameterCount * 4) / 1e6
        print("model \(model), batch \(batch) per rank, \(n) ranks x \(threads) threads, \(rounds) rounds x \(steps) steps (medians):")
        print(String(format: "  1 rank alone:               %9.2f images/s (%.1f ms/step)", a, 1000 * Double(batch) / a))
        print(String(format: "  %d ranks, no allreduce:      %9.2f images/s (machine ceiling: %.1f %% of %d x alone)", n, b, 100 * b / (Double(n) * a), n))
        print(String(format: "  %d ranks, allreduce after:   %9.2f images/s; step %.1f ms = compute %.1f + allreduce %.1f (%.1f MB of gradients, %d buckets)",
                     n, plain.rate, 1000 * (plain.compute + plain.exchange), 1000 * plain.compute, 1000 * plain.exchange, gradientMB,
                     (loop.network.store.parameterCount + sync.bucketElements - 1) / sync.bucketElements))
        print(String(format: "  %d ranks, overlapped:        %9.2f images/s; step %.1f ms = compute %.1f + exposed allreduce %.1f (%.0f %% of it hidden)",
                     n, over.rate, 1000 * (over.compute + over.exchange), 1000 * over.compute, 1000 * over.exchange,
                     100 * (1 - over.exchange / max(plain.exchange, 1e-12))))
        print(String(format: "weak-scaling efficiency: %.1f %% of %d x alone, %.1f %% of the no-allreduce ceiling", 100 * over.rate / (Double(n) * a), n, 100 * over.rate / b))
        print(String(format: "images/s: %.2f", over.rate))
    }

    /// All ranks at once for `steps` steps; global images/s is the sum of the ranks' rates.
    private func measure(steps: Int, sync: GradientSync?, overlap: Bool) throws -> Measurement {
        try world.barrier()
        var exchange = 0.0
        let start = loop.now()
        for _ in 0 ..< steps { exchange += try loop.step(sync: sync, overlap: overlap).communication }
        let seconds = loop.now() - start
        return Measurement(rate: try world.allreduce(Double(loop.batch * steps) / seconds, op: .sum),
                           compute: (seconds - exchange) / Double(steps), exchange: exchange / Double(steps))
    }

    /// A barrier the waiting ranks reach without spinning: MPI's own barrier busy-polls a core,
    /// which would slow down rank 0's 1-rank measurement on a machine with no core to spare.
    private func sleepingBarrier() throws {
        let token = UnsafeMutableBufferPointer<Int32>.allocate(capacity: 1)
        token.initialize(repeating: 0)
        defer { token.deallocate() }
        let request = try world.iallreduce(token, op: .sum)
        while !(try request.test()) { usleep(1000) }
    }

    private func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}
