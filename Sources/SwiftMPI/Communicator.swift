import CMPI

/// A group of processes that talk to each other. `MPI.world` is the one every program has.
///
/// Collectives must be called by every rank, in the same order, with matching sizes; the
/// wrapper checks what it can locally (roots, buffer sizes of out-of-place calls) before
/// calling MPI, and `allgather`/`gather` also agree on the per-rank count first, because a
/// mismatch there would corrupt memory instead of failing.
public final class Communicator: @unchecked Sendable {
    public let handle: MPI_Comm
    public let rank: Int
    public let size: Int

    init(handle: MPI_Comm) {
        self.handle = handle
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(handle, &r)
        MPI_Comm_size(handle, &s)
        rank = Int(r)
        size = Int(s)
    }

    public var isRoot: Bool { rank == 0 }

    /// The name of the host this rank runs on.
    public var processorName: String {
        var buffer = [CChar](repeating: 0, count: Int(fkp_max_processor_name()) + 1)
        var length: Int32 = 0
        MPI_Get_processor_name(&buffer, &length)
        return String(cString: buffer)
    }

    // MARK: - Synchronisation

    public func barrier() throws {
        try MPI.check(MPI_Barrier(handle), "MPI_Barrier")
    }

    // MARK: - Broadcast

    /// Sends `root`'s buffer to every rank (in place).
    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int = 0) throws {
        try checkRoot(root)
        try MPI.check(MPI_Bcast(buffer.baseAddress, try count(buffer.count), T.mpiDatatype, Int32(root), handle),
                      "MPI_Bcast")
    }

    public func broadcast<T: MPIScalar>(_ array: inout [T], root: Int = 0) throws {
        try array.withUnsafeMutableBufferPointer { try broadcast($0, root: root) }
    }

    public func broadcast<T: MPIScalar>(_ value: T, root: Int = 0) throws -> T {
        var array = [value]
        try broadcast(&array, root: root)
        return array[0]
    }

    /// Broadcasts a byte array whose length only the root knows (length first, then bytes).
    public func broadcastBytes(_ bytes: [UInt8], root: Int = 0) throws -> [UInt8] {
        let length = try broadcast(Int64(rank == root ? bytes.count : 0), root: root)
        var data = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length))
        // Large payloads (checkpoints) go in chunks: MPI counts are 32-bit.
        let chunk = Int(Int32.max / 2)
        try data.withUnsafeMutableBufferPointer { all in
            var offset = 0
            while offset < all.count {
                let n = min(chunk, all.count - offset)
                try broadcast(UnsafeMutableBufferPointer(rebasing: all[offset ..< offset + n]), root: root)
                offset += n
            }
        }
        return data
    }

    public func broadcast(_ string: String, root: Int = 0) throws -> String {
        String(decoding: try broadcastBytes(Array(string.utf8), root: root), as: UTF8.self)
    }

    // MARK: - Allreduce

    /// Reduces `buffer` across all ranks and leaves the result in `buffer` on every rank.
    public func allreduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp = .sum) throws {
        try MPI.check(MPI_Allreduce(fkp_in_place(), buffer.baseAddress, try count(buffer.count), T.mpiDatatype,
                                    op.handle, handle), "MPI_Allreduce")
    }

    /// Reduces `input` across all ranks into `output` (same count).
    public func allreduce<T: MPIScalar>(_ input: UnsafeBufferPointer<T>, into output: UnsafeMutableBufferPointer<T>,
                                        op: ReduceOp = .sum) throws {
        guard input.count == output.count else {
            throw MPIError.misuse("allreduce input has \(input.count) elements but output has \(output.count)")
        }
        try MPI.check(MPI_Allreduce(input.baseAddress, output.baseAddress, try count(input.count), T.mpiDatatype,
                                    op.handle, handle), "MPI_Allreduce")
    }

    public func allreduce<T: MPIScalar>(_ array: inout [T], op: ReduceOp = .sum) throws {
        try array.withUnsafeMutableBufferPointer { try allreduce($0, op: op) }
    }

    public func allreduced<T: MPIScalar>(_ array: [T], op: ReduceOp = .sum) throws -> [T] {
        var output = [T](repeating: 0, count: array.count)
        try array.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBufferPointer { try allreduce(input, into: $0, op: op) }
        }
        return output
    }

    public func allreduce<T: MPIScalar>(_ value: T, op: ReduceOp = .sum) throws -> T {
        var array = [value]
        try allreduce(&array, op: op)
        return array[0]
    }

    /// Starts a non-blocking in-place allreduce. `buffer` must stay valid and untouched until
    /// the returned request completes.
    public func iallreduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp = .sum) throws -> Request {
        let request = Request()
        try MPI.check(MPI_Iallreduce(fkp_in_place(), buffer.baseAddress, try count(buffer.count), T.mpiDatatype,
                                     op.handle, handle, &request.handle), "MPI_Iallreduce")
        return request
    }

    // MARK: - Gather

    /// Every rank contributes `values` (the same count on every rank); every rank receives all of
    /// them, rank 0's first.
    public func allgather<T: MPIScalar>(_ values: [T]) throws -> [T] {
        try agreeOnCount(values.count, operation: "allgather")
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

    /// Like `allgather`, but only `root` receives; other ranks get nil.
    public func gather<T: MPIScalar>(_ values: [T], root: Int = 0) throws -> [T]? {
        try checkRoot(root)
        try agreeOnCount(values.count, operation: "gather")
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

    /// Gathers one string per rank on every rank (e.g. host names).
    public func allgather(_ string: String) throws -> [String] {
        let bytes = Array(string.utf8)
        let lengths = try allgather([Int64(bytes.count)])
        let width = Int(lengths.max() ?? 0)
        let padded = bytes + [UInt8](repeating: 0, count: width - bytes.count)
        let all = try allgather(padded)
        return (0 ..< size).map { r in
            String(decoding: all[(r * width) ..< (r * width + Int(lengths[r]))], as: UTF8.self)
        }
    }

    // MARK: - Checks

    private func checkRoot(_ root: Int) throws {
        guard root >= 0 && root < size else {
            throw MPIError.misuse("root \(root) is not a rank of this communicator (size \(size))")
        }
    }

    private func count(_ n: Int) throws -> Int32 {
        guard n <= Int(Int32.max) else { throw MPIError.misuse("\(n) elements exceed MPI's 32-bit count") }
        return Int32(n)
    }

    /// Collectives with fixed per-rank counts corrupt memory when the counts differ: agree first.
    private func agreeOnCount(_ n: Int, operation: String) throws {
        var bounds: [Int64] = [Int64(n), -Int64(n)]
        try allreduce(&bounds, op: .max)
        let (largest, smallest) = (bounds[0], -bounds[1])
        guard largest == smallest else {
            throw MPIError.misuse("\(operation) counts differ between ranks (\(smallest) to \(largest)); this rank has \(n)")
        }
    }
}

/// A pending non-blocking operation.
public final class Request: @unchecked Sendable {
    var handle: MPI_Request? = fkp_request_null()

    /// True once the operation has completed (then the buffer may be used again).
    public var isComplete: Bool { handle == fkp_request_null() }

    /// Blocks until the operation completes.
    public func wait() throws {
        guard !isComplete else { return }
        try MPI.check(MPI_Wait(&handle, fkp_status_ignore()), "MPI_Wait")
    }

    /// Returns whether the operation has completed, without blocking (drives progress too).
    public func test() throws -> Bool {
        guard !isComplete else { return true }
        var flag: Int32 = 0
        try MPI.check(MPI_Test(&handle, &flag, fkp_status_ignore()), "MPI_Test")
        return flag != 0
    }

    deinit {
        // A request dropped while pending would leave MPI writing into a buffer nobody owns.
        if !isComplete { try? wait() }
    }
}
