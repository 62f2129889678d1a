// Runs every collective of the SwiftMPI wrapper with rank-dependent data and checks every
// result on every rank (`mpirun -np N swiftmpi-selftest`, or alone as a world of one).
// `swiftmpi-selftest bench ...` times allreduce instead (Scripts/bench-allreduce);
// `swiftmpi-selftest abort CODE` makes the last rank abort the whole job.
import Foundation
import SwiftMPI

let arguments = Array(CommandLine.arguments.dropFirst())
exit(selftestMain(arguments))
