import CMPI
import SwiftMPI

/// Misuse the wrapper must catch before MPI (on every rank, so nobody hangs), and a real MPI
/// error from a raw call made to fail, which must come back as a Swift error with MPI's message.
func checkErrors(_ report: Report) {
    let world = report.world
    report.expectMisuse("misuse-broadcast-bad-root") {
        _ = try world.broadcast(Float(1), root: world.size)
    }
    report.expectMisuse("misuse-broadcast-negative-root") {
        _ = try world.broadcast(Float(1), root: -1)
    }
    // Rank-dependent arguments exist only with more than one rank.
    if world.size > 1 {
        report.expectMisuse("misuse-allgather-rank-dependent-count") {
            _ = try world.allgather([Int32](repeating: 1, count: world.rank + 1))
        }
        report.expectMisuse("misuse-gather-rank-dependent-count") {
            _ = try world.gather([Double](repeating: 1, count: world.rank % 2 + 1), root: 0)
        }
        report.expectMisuse("misuse-broadcast-rank-dependent-root") {
            _ = try world.broadcast(Float(1), root: world.rank)
        }
        report.expectMisuse("misuse-gather-bad-root-on-last-rank-only") {
            _ = try world.gather(Int32(1), root: world.rank == world.size - 1 ? world.size : 0)
        }
        report.expectMisuse("misuse-broadcast-string-rank-dependent-root") {
            _ = try world.broadcast("x", root: world.rank == 0 ? 1 : 0)
        }
        report.expectMisuse("misuse-broadcast-rank-dependent-count") {
            var data = [Int64](repeating: 0, count: 4 + world.rank)
            try world.broadcast(&data, root: 0)
        }
    }
    report.expectMisuse("misuse-allreduce-outofplace-sizes") {
        var output = [Float](repeating: 0, count: 3)
        try world.allreduce([Float](repeating: 1, count: 4), into: &output)
    }

    report.run("mpi-error-invalid-count") {
        var value: Float = 1
        do {
            try world.call("MPI_Allreduce") { comm in
                MPI_Allreduce(fkp_in_place(), &value, -1, fkp_type_float(), fkp_op_sum(), comm)
            }
            return (false, "MPI accepted count -1")
        } catch MPIError.mpi(let function, let code, let message) {
            let ok = function == "MPI_Allreduce" && code == MPI_ERR_COUNT && message == MPI.errorString(code)
                && message.lowercased().contains("count")
            return (ok, "function \(function) code \(code) message '\(message)'")
        }
    }
    report.run("mpi-error-invalid-root") {
        var value: Float = 1
        do {
            try world.call("MPI_Bcast") { MPI_Bcast(&value, 1, fkp_type_float(), Int32(world.size + 5), $0) }
            return (false, "MPI accepted a root outside the communicator")
        } catch MPIError.mpi(_, let code, let message) {
            return (code == MPI_ERR_ROOT && !message.isEmpty, "code \(code) message '\(message)'")
        }
    }
    // After all that, the communicator must still work.
    report.run("usable-after-errors") {
        let got = try world.allreduce(Int32(1))
        return (got == Int32(world.size), "got \(got)")
    }
}
