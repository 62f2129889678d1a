import ArgumentParser
import SwiftMPI
import Training

/// `--recompute` and `--memory-budget` of `train`: memory for time, and the choice of micro-batch.
struct MemoryOptions: ParsableArguments {
    enum Recompute: String, ExpressibleByArgument, CaseIterable { case none, blocks }

    @Option(help: "Keep every activation for backward (none), or only each block's input and output, running the block's forward again in backward (blocks: the same results, bit for bit, for one more forward). With --memory-budget and no --recompute, the budget chooses.")
    var recompute: Recompute?

    @Option(help: ArgumentHelp("Memory per rank, e.g. 6G or 512M (powers of 1024): train with the largest micro-batch, and --recompute blocks if that makes it larger, whose planned peak fits, keeping batch × accumulate per rank. Refuses when one sample does not fit.", valueName: "size"))
    var memoryBudget: String?

    func validate() throws {
        if let memoryBudget, MemoryBudget.parse(memoryBudget) == nil {
            throw ValidationError("--memory-budget '\(memoryBudget)': use a size such as 6G, 512M or 6GiB")
        }
    }

    /// Sets the run's recomputation and, with a budget, its micro-batch and accumulation (rank 0
    /// prints the choice). Every rank plans rank 0's peak, the largest, so all choose alike.
    func apply(to config: inout TrainConfig, _ options: inout RunOptions, world: Communicator, quiet: Bool) throws {
        options.recompute = recompute == .blocks
        guard let memoryBudget, let budget = MemoryBudget.parse(memoryBudget) else { return }
        let planner = try MemoryPlan.Planner(config: config, options: options, worldSize: world.size, rank: world.rank)
        let choice = try MemoryBudget.choose(budget: budget, config: config, options: options, recompute: recompute.map { $0 == .blocks },
                                             planner: planner)
        (config.batch, config.accumulate, options.recompute) = (choice.batch, choice.accumulate, choice.recompute)
        if world.rank == 0 && !quiet { print(choice.summary(budget: budget)) }
    }
}
