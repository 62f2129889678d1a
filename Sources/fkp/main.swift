import ArgumentParser
import Engine
import Foundation

// Before anything runs: OpenBLAS may have picked kernels older than this CPU (see BLASCore).
BLASCore.reexecutingWithBetterKernelsIfNeeded()
// Before MPI starts: the gradient buckets go through in-place MPI_Iallreduce, which Open MPI's
// libnbc serves by default with a binomial reduce and broadcast of the whole buffer, 1.69× the
// ring's time on 2 hosts and 4.82× on 4 (docs/SCALING.md, section 3). Its ring instead, unless
// the user or mpirun's --mca chose otherwise.
setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0)
FKP.main()
