import Foundation
import SwiftMPI

/// Collects check results and prints one line per check per rank: `rank R check NAME ok|FAIL detail`.
/// Each line is written and flushed on its own so mpirun forwards whole lines from every rank.
final class Report {
    let world: Communicator
    private(set) var failures = 0
    private(set) var checks = 0

    init(world: Communicator) { self.world = world }

    func record(_ name: String, _ ok: Bool, _ detail: @autoclosure () -> String = "") {
        checks += 1
        if !ok { failures += 1 }
        let extra = ok ? "" : " " + detail()
        let line = "rank \(world.rank) check \(name) \(ok ? "ok" : "FAIL")\(extra)\n"
        fputs(line, stdout)
        fflush(stdout)
    }

    /// Runs a check whose body may throw: an unexpected error is a failure, not a crash.
    func run(_ name: String, _ body: () throws -> (Bool, String)) {
        do {
            let (ok, detail) = try body()
            record(name, ok, detail)
        } catch {
            record(name, false, "unexpected error: \(error)")
        }
    }

    /// Expects `body` to throw `MPIError.misuse` (on this rank).
    func expectMisuse(_ name: String, _ body: () throws -> Void) {
        do {
            try body()
            record(name, false, "no error thrown")
        } catch let error as MPIError {
            if case .misuse = error { record(name, true) } else { record(name, false, "wrong error: \(error)") }
        } catch {
            record(name, false, "unexpected error: \(error)")
        }
    }
}

/// Rank-dependent test data: element `i` of rank `r`, small integers (exact in every type), some negative.
func sample(rank r: Int, index i: Int) -> Int {
    ((r + 1) * (i + 3) * 7919 + i * 31) % 201 - 100
}
