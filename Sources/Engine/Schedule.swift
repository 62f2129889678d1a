import Foundation

/// Learning-rate schedules: the rate for a step (0-based: the step about to be taken) from the base rate.
/// Codable, so a checkpoint can record the schedule it was trained with.
///
/// `.warmup(steps: w, then: s)` rises linearly, base·(step + 1)/w for step < w, then follows `s`
/// with its step count starting after the warmup (`s` sees step − w), so e.g. a cosine's
/// `totalSteps` counts the steps after warmup.
public indirect enum LearningRateSchedule: Codable, Equatable, Sendable {
    case constant
    /// base · gamma^⌊step / every⌋ (torch.optim.lr_scheduler.StepLR).
    case step(every: Int, gamma: Float)
    /// base · gamma^(milestones passed): the rate drops by gamma at each listed step
    /// (torch.optim.lr_scheduler.MultiStepLR; mmpose's 300-W recipe drops at epochs 40 and 55).
    case multistep(milestones: [Int], gamma: Float)
    /// From base down to base·minFactor along a half cosine over totalSteps, then flat
    /// (CosineAnnealingLR with eta_min = base·minFactor).
    case cosine(totalSteps: Int, minFactor: Float)
    case warmup(steps: Int, then: LearningRateSchedule)

    /// This schedule preceded by `steps` of linear warmup (itself when steps ≤ 0).
    public func withWarmup(_ steps: Int) -> LearningRateSchedule { steps > 0 ? .warmup(steps: steps, then: self) : self }

    public func rate(base: Float, step: Int) -> Float {
        switch self {
        case .constant:
            return base
        case let .step(every, gamma):
            return base * Float(Foundation.pow(Double(gamma), Double(max(step, 0) / max(every, 1))))
        case let .multistep(milestones, gamma):
            let passed = milestones.filter { step >= $0 }.count
            return base * Float(Foundation.pow(Double(gamma), Double(passed)))
        case let .cosine(totalSteps, minFactor):
            let progress = Double(min(max(step, 0), totalSteps)) / Double(max(totalSteps, 1))
            let factor = Double(minFactor) + (1 - Double(minFactor)) * 0.5 * (1 + Foundation.cos(Double.pi * progress))
            return base * Float(factor)
        case let .warmup(steps, then):
            if step < steps { return then.rate(base: base, step: 0) * Float(step + 1) / Float(steps) }
            return then.rate(base: base, step: step - steps)
        }
    }
}
