import CMPI

/// Gathers of fixed-size contributions (the same count on every rank, checked before MPI is called).
extension Communicator {
    /// Every rank contributes `values`; every rank receives all contributions, rank 0's first.
    public func allgather<T: MPIScalar>(_ values: [T]) throws -> [T] {
        try agree(count: values.count, root: 0, operation: "allgather")
        var output = [T](repeating: 0, count: values.count * size)
        let n = try count(values.count)
        try values.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBufferPointer { out in
                try MPI.check(MPI_Allgather(input.baseAddress, n, T.mpiDatatype, out.baseAddress, n, T.mpiDatatype,
                                            handle), "MPI_Allgather")
            }
        }
        return output
    }

    /// One value per rank, indexed by rank.
    public func allgather<T: MPIScalar>(_ value: T) throws -> [T] {
        try allgather([value])
    }

    /// Like `allgather`, but only `root` receives (rank 0's contribution first); other ranks get nil.
    public func gather<T: MPIScalar>(_ values: [T], root: Int = 0) throws -> [T]? {
        try agree(count: values.count, root: root, operation: "gather")
        try checkRoot(root)
        var output = [T](repeating: 0, count: rank == root ? values.count * size : 0)
        let n = try count(values.count)
        try values.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBufferPointer { out in
                try MPI.check(MPI_Gather(input.baseAddress, n, T.mpiDatatype, out.baseAddress, n, T.mpiDatatype,
                                         Int32(root), handle), "MPI_Gather")
            }
        }
        return rank == root ? output : nil
    }

    public func gather<T: MPIScalar>(_ value: T, root: Int = 0) throws -> [T]? {
        try gather([value], root: root)
    }

    /// Gathers one string per rank on every rank (e.g. host names): lengths first, then the bytes
    /// padded to the longest, so the fixed-size collective applies.
    public func allgather(_ string: String) throws -> [String] {
        let bytes = Array(string.utf8)
        let lengths = try allgather(Int64(bytes.count))
        let width = Int(lengths.max() ?? 0)
        let padded = bytes + [UInt8](repeating: 0, count: width - bytes.count)
        let all = try allgather(padded)
        return (0 ..< size).map { r in
            String(decoding: all[(r * width) ..< (r * width + Int(lengths[r]))], as: UTF8.self)
        }
    }
}
