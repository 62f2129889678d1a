import Foundation
import SwiftMPI

/// Runs a command body; any error becomes one line on stderr (`fkp: error: ...`) and exit code 1.
/// In a multi-rank job the failing rank aborts the whole job, so no other rank waits forever in
/// a collective.
func runReportingErrors(_ body: () throws -> Void) -> Never {
    do {
        try body()
        exit(0)
    } catch {
        let line = "\(error)".replacingOccurrences(of: "\n", with: " ")
        FileHandle.standardError.write(Data("fkp: error: \(line)\n".utf8))
        if MPI.isInitialized && !MPI.isFinalized && MPI.world.size > 1 { MPI.abort(code: 1) }
        exit(1)
    }
}
