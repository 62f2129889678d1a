import ArgumentParser
import Engine

// Before anything runs: OpenBLAS may have picked kernels older than this CPU (see BLASCore).
BLASCore.reexecutingWithBetterKernelsIfNeeded()
FKP.main()
