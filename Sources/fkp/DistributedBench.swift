import Foundation
import SwiftMPI
import Training

/// `mpirun -np N fkp bench train ...`: what a data-parallel step costs. Each round measures, in
/// this order and with the same network and input:
/// 1. rank 0 alone (the other ranks sleep in a polled barrier, using no CPU): the 1-rank figure;
/// 2. every rank at once without the allreduce: the machine's own ceiling (shared memory
///    bandwidth, caches, turbo) for N independent processes;
/// 3. every rank with the real step: forward, loss, backward, gradient averaging (GradientSync),
///    AdamW.
/// Alternating the three in one run lets them see the same machine; medians over rounds are
/// reported. Weak-scaling efficiency = (3) / (N × (1)); (3) / (2) is the part lost to communicating.
struct DistributedBench {
    let loop: BenchLoop
    let world: Communicator
    let model: String
    let threads: Int

    func run(steps: Int, rounds: Int) throws {
        let sync = GradientSync(communicator: world)
        let n = world.size, batch = loop.batch
        for _ in 0 ..< 3 { try loop.step(sync: sync) }   // warm-up: buffers, caches, MPI connections
        var alone: [Double] = [], independent: [Double] = [], parallel: [Double] = []
        var compute: [Double] = [], communication: [Double] = []
        for _ in 0 ..< rounds {
            try world.barrier()
            if world.rank == 0 {
                let start = loop.now()
                for _ in 0 ..< steps { try loop.step() }
                alone.append(Double(batch * steps) / (loop.now() - start))
            }
            try sleepingBarrier()

            try world.barrier()
            var start = loop.now()
            for _ in 0 ..< steps { try loop.step() }
            independent.append(try world.allreduce(Double(batch * steps) / (loop.now() - start), op: .sum))

            try world.barrier()
            var exchange = 0.0
            start = loop.now()
            for _ in 0 ..< steps { exchange += try loop.step(sync: sync).communication }
            let seconds = loop.now() - start
            parallel.append(try world.allreduce(Double(batch * steps) / seconds, op: .sum))
            compute.append((seconds - exchange) / Double(steps))
            communication.append(exchange / Double(steps))
        }
        guard world.rank == 0 else { return }
        let a = median(alone), b = median(independent), c = median(parallel)
        let stepCompute = median(compute), stepExchange = median(communication)
        let gradientMB = Double(loop.network.store.parameterCount * 4) / 1e6
        print("model \(model), batch \(batch) per rank, \(n) ranks x \(threads) threads, \(rounds) rounds x \(steps) steps (medians):")
        print(String(format: "  1 rank alone:               %9.2f images/s (%.1f ms/step)", a, 1000 * Double(batch) / a))
        print(String(format: "  %d ranks, no allreduce:      %9.2f images/s (machine ceiling: %.1f %% of %d x alone)", n, b, 100 * b / (Double(n) * a), n))
        print(String(format: "  %d ranks, data parallel:     %9.2f images/s; step %.1f ms = compute %.1f + allreduce %.1f (%.1f MB of gradients)",
                     n, c, 1000 * (stepCompute + stepExchange), 1000 * stepCompute, 1000 * stepExchange, gradientMB))
        print(String(format: "weak-scaling efficiency: %.1f %% of %d x alone, %.1f %% of the no-allreduce ceiling", 100 * c / (Double(n) * a), n, 100 * c / b))
        print(String(format: "images/s: %.2f", c))
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
