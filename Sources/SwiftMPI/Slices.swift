import CMPI

/// Collectives over a buffer cut into one contiguous slice per rank, as ZeRO shards optimizer
/// state: slice r has `counts[r]` elements and starts where slice r − 1 ends; counts may differ
/// (a buffer rarely divides evenly). Like `allreduce`, these are on the training loop's hot path
/// and are not cross-checked between ranks: every rank must pass the same counts. What can be
/// checked locally (one count per rank, counts that add up to the buffer) is.
extension Communicator {
    /// Reduces `buffer` over all ranks and leaves this rank's slice of the result at the *start* of
    /// `buffer` (MPI_Reduce_scatter with MPI_IN_PLACE: no second buffer); the rest of `buffer` is
    /// undefined afterwards.
    public func reduceScatter<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, counts: [Int], op: ReduceOp = .sum) throws {
        let counts32 = try sliceCounts(counts, total: buffer.count, operation: "reduceScatter")
        try MPI.check(MPI_Reduce_scatter(fkp_in_place(), buffer.baseAddress, counts32, T.mpiDatatype, op.handle, handle),
                      "MPI_Reduce_scatter")
    }

    /// Array form: returns this rank's slice of the reduction of `values` (which is left alone).
    public func reduceScattered<T: MPIScalar>(_ values: [T], counts: [Int], op: ReduceOp = .sum) throws -> [T] {
        var work = values
        try work.withUnsafeMutableBufferPointer { try reduceScatter($0, counts: counts, op: op) }
        return Array(work.prefix(counts[rank]))
    }

    /// Sends this rank's slice of `buffer` to every rank, in place: afterwards every rank's buffer
    /// holds every rank's slice (MPI_Allgatherv with MPI_IN_PLACE).
    public func allgather<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, counts: [Int]) throws {
        let counts32 = try sliceCounts(counts, total: buffer.count, operation: "allgather")
        let offsets = try sliceOffsets(counts)
        try MPI.check(MPI_Allgatherv(fkp_in_place(), 0, T.mpiDatatype, buffer.baseAddress, counts32, offsets, T.mpiDatatype, handle),
                      "MPI_Allgatherv")
    }

    /// Collects every rank's `slice` (`counts[rank]` elements) into `output` on `root`, slice r at
    /// its offset (MPI_Gatherv); `output` must hold the sum of `counts` on root and is not touched
    /// elsewhere (pass an empty buffer there).
    public func gather<T: MPIScalar>(_ slice: UnsafeBufferPointer<T>, counts: [Int], into output: UnsafeMutableBufferPointer<T>,
                                     root: Int = 0) throws {
        try checkRoot(root)
        let total = counts.reduce(0, +)
        let counts32 = try sliceCounts(counts, total: rank == root ? output.count : total, operation: "gather")
        guard slice.count == counts[rank] else {
            throw MPIError.misuse("gather: this rank's slice has \(slice.count) elements, its count is \(counts[rank])")
        }
        let offsets = try sliceOffsets(counts)
        try MPI.check(MPI_Gatherv(slice.baseAddress, counts32[rank], T.mpiDatatype, output.baseAddress, counts32, offsets,
                                  T.mpiDatatype, Int32(root), handle), "MPI_Gatherv")
    }

    private func sliceCounts(_ counts: [Int], total: Int, operation: String) throws -> [Int32] {
        guard counts.count == size else {
            throw MPIError.misuse("\(operation): \(counts.count) counts for \(size) ranks")
        }
        guard counts.allSatisfy({ $0 >= 0 }), counts.reduce(0, +) == total else {
            throw MPIError.misuse("\(operation): counts \(counts) do not add up to the buffer's \(total) elements")
        }
        return try counts.map { try count($0) }
    }

    private func sliceOffsets(_ counts: [Int]) throws -> [Int32] {
        var offsets: [Int32] = [], next = 0
        for n in counts { offsets.append(try count(next)); next += n }
        return offsets
    }
}
