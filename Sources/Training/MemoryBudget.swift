import Foundation

/// `fkp train --memory-budget SIZE`: the micro-batch, gradient accumulation and recomputation that
/// fit SIZE bytes per rank and keep the requested global batch, chosen from the memory plan.
///
/// Each rank takes `batch × accumulate` samples per step (the global batch over the ranks). The
/// budget splits them into `accumulate'` micro-batches of `batch'` (a divisor, so the step sees
/// exactly the same samples) and chooses the largest micro-batch whose planned peak fits, first
/// without recomputation, then with `--recompute blocks`; at the same micro-batch, no
/// recomputation wins (it costs one more forward).
///
/// Why the largest micro-batch, even at the price of recomputation: it is the one way the math can
/// change. Gradients are the same for any split (accumulation sums them, and the loss of each
/// micro-batch counts 1/accumulate), but BatchNorm normalises with the statistics of each
/// micro-batch, not of the step's samples, and its running statistics move once per micro-batch.
/// The closer the micro-batch is to the per-rank batch, the closer training is to the run the
/// user asked for; with it equal, the run is bit-identical to one without a budget.
public enum MemoryBudget {
    public struct Choice {
        public var batch: Int, accumulate: Int, recompute: Bool
        public var plan: MemoryPlan

        /// One line for the log: what was chosen and its planned peak against the budget.
        public func summary(budget: Int) -> String {
            "--memory-budget \(MemoryPlan.mebibytes(budget)): batch \(batch) × accumulate \(accumulate) per rank"
                + (recompute ? ", recompute blocks" : ", no recomputation")
                + "; planned peak \(MemoryPlan.mebibytes(plan.peakBytes(rankZero: true)))"
        }
    }

    /// "6G", "6GiB", "512M", "1.5g", "2048MiB", or bytes; K, M, G, T are powers of 1024.
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(suffix: String, shift: Int)] = [("tib", 40), ("gib", 30), ("mib", 20), ("kib", 10), ("tb", 40), ("gb", 30), ("mb", 20),
                                                     ("kb", 10), ("t", 40), ("g", 30), ("m", 20), ("k", 10), ("b", 0), ("", 0)]
        for (suffix, shift) in units where trimmed.hasSuffix(suffix) {
            guard let value = Double(trimmed.dropLast(suffix.count)), value.isFinite, value > 0 else { return nil }
            let bytes = value * Double(1 << shift)
            return bytes < Double(1 << 60) ? Int(bytes) : nil
        }
        return nil
    }

    /// The choice for `budget` bytes per rank; `recompute` nil lets the budget decide, true or false
    /// holds it. Throws, naming the smallest planned peak, when one sample per step does not fit.
    public static func choose(budget: Int, config: TrainConfig, options: RunOptions, recompute: Bool?,
                              planner: MemoryPlan.Planner) throws -> Choice {
        let samples = config.batch * config.accumulate
        let recomputeChoices = recompute.map { [$0] } ?? [false, true]
        var smallest: MemoryPlan?
        for batch in (1 ... samples).reversed() where samples % batch == 0 {
            for recompute in recomputeChoices {
                var config = config, options = options
                (config.batch, config.accumulate, options.recompute) = (batch, samples / batch, recompute)
                let plan = try planner.plan(config, options)
                // Every rank must fit: rank 0's peak (it also writes the checkpoints) is the largest.
                if plan.peakBytes(rankZero: true) <= budget {
                    return Choice(batch: batch, accumulate: samples / batch, recompute: recompute, plan: plan)
                }
                if batch == 1 && (smallest.map { plan.peakBytes(rankZero: true) < $0.peakBytes(rankZero: true) } ?? true) {
                    smallest = plan
                }
            }
        }
        let need = smallest.map { MemoryPlan.mebibytes($0.peakBytes(rankZero: true)) } ?? "more"
        let how = recomputeChoices.contains(true) ? " even with --recompute blocks" : ""
        throw TrainingFailure("--memory-budget \(MemoryPlan.mebibytes(budget)) is too small: one sample per step needs \(need) per rank\(how) "
            + "(see `fkp train --plan --batch 1`); raise the budget, or lower --input-size, --width or --cache-mb")
    }
}
