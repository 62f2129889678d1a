import Foundation
import Synchronization

/// Graceful preemption: a cluster that wants its nodes back (Slurm before a time limit or for a
/// higher-priority job, Kubernetes draining a node) sends a signal and waits a grace period before
/// killing. The handler only records the signal (an atomic store, async-signal-safe); the trainer
/// looks at the record at each step boundary, all ranks agree on it in the step's existing loss
/// allreduce, and the run writes a checkpoint at that step and exits with `exitStatus`.
public enum Preemption {
    /// EX_TEMPFAIL (sysexits.h): "temporary failure, the user is invited to retry". Distinct from
    /// failure (1) and from death by a signal (128 + N), so a batch script can tell "checkpointed,
    /// requeue me" from "broken, do not requeue".
    public static let exitStatus: Int32 = 75

    /// The signals handled by default (`--preempt-signals TERM,USR1,INT`).
    public static let defaultSignals: [Int32] = [SIGTERM, SIGUSR1, SIGINT]

    /// Installs the handler for `signals`. A second signal of a handled kind ends the process at
    /// once (the default action is restored after the first), so an impatient Ctrl-C still works.
    public static func install(_ signals: [Int32]) {
        _ = caughtSignal.load(ordering: .relaxed)   // initialise the global before any handler can run
        for signalNumber in signals {
            signal(signalNumber) { number in
                caughtSignal.store(number, ordering: .relaxed)
                signal(number, SIG_DFL)
            }
        }
    }

    /// The signal caught on this rank since start, or 0.
    public static var pendingSignal: Int32 { caughtSignal.load(ordering: .relaxed) }

    /// Parses `TERM,USR1,INT` (with or without SIG, or numbers); "none" handles none.
    public static func parse(_ text: String) throws -> [Int32] {
        if text.lowercased() == "none" { return [] }
        let names: [String: Int32] = ["TERM": SIGTERM, "USR1": SIGUSR1, "USR2": SIGUSR2, "INT": SIGINT,
                                      "HUP": SIGHUP, "QUIT": SIGQUIT, "XCPU": SIGXCPU]
        return try text.split(separator: ",").map { part in
            var name = part.trimmingCharacters(in: .whitespaces).uppercased()
            if name.hasPrefix("SIG") { name.removeFirst(3) }
            if let number = names[name] ?? Int32(name).flatMap({ n in names.values.contains(n) ? n : nil }) { return number }
            throw TrainingFailure("--preempt-signals: unknown signal '\(part)' (use names from \(names.keys.sorted().joined(separator: ", ")), or none)")
        }
    }

    /// "SIGTERM" for 15 and so on.
    public static func name(_ number: Int32) -> String {
        let names: [Int32: String] = [SIGTERM: "SIGTERM", SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2", SIGINT: "SIGINT",
                                      SIGHUP: "SIGHUP", SIGQUIT: "SIGQUIT", SIGXCPU: "SIGXCPU"]
        return names[number] ?? "signal \(number)"
    }
}

/// Written by the signal handler, read at step boundaries.
private let caughtSignal = Atomic<Int32>(0)
