import CMPI
import Foundation

/// A group of processes that talk to each other. `MPI.world` is the one every program has.
///
/// Collectives must be called by every rank, in the same order, with matching sizes. The
/// wrapper checks what it can before calling MPI: roots must be ranks; out-of-place buffers
/// must match; `broadcast`, `allgather` and `gather` first agree on count and root across
/// ranks (one tiny allreduce), because a mismatch there would corrupt memory or make only some
/// ranks fail. `allreduce`, the hot path, is not cross-checked: every rank must pass the same
/// count (the training loop does by construction).
public final class Communicator: @unchecked Sendable {
    /// The raw MPI handle, for CMPI calls the wrapper does not cover (see `call`).
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

    /// Escape hatch: runs a raw MPI call on this communicator's handle and turns a failing return
    /// code into `MPIError.mpi` with MPI's own message, e.g.
    /// `try world.call("MPI_Reduce") { MPI_Reduce(..., $0) }`.
    public func call(_ function: String, _ body: (MPI_Comm) -> Int32) throws {
        try MPI.check(body(handle), function)
    }

    /// How many ranks of this communicator share this rank's memory (run on its node), from
    /// MPI_Comm_split_type. Collective: every rank must call it.
    public func ranksOnThisNode() throws -> Int {
        var node: MPI_Comm? = nil
        try MPI.check(MPI_Comm_split_type(handle, fkp_comm_type_shared(), 0, fkp_info_null(), &node), "MPI_Comm_split_type")
        defer { MPI_Comm_free(&node) }
        var size: Int32 = 0
        try MPI.check(MPI_Comm_size(node, &size), "MPI_Comm_size")
        return Int(size)
    }

    /// Aborts every process of the job (not just this rank) with `code`.
    public func abort(code: Int32) -> Never {
        MPI_Abort(handle, code)
        exit(code)
    }

    // MARK: - Synchronisation

    public func barrier() throws {
        try MPI.check(MPI_Barrier(handle), "MPI_Barrier")
    }

    // MARK: - Broadcast

    /// Sends `root`'s buffer to every rank (in place). Every rank must pass the same count and root.
    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int = 0) throws {
        try agree(count: buffer.count, root: root, operation: "broadcast")
        try checkRoot(root)
        try rawBroadcast(buffer, root: root)
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
        // Only the root knows the length, so only the root is agreed on.
        try agree(count: 1, root: root, operation: "broadcast")
        try checkRoot(root)
        var length = [Int64(rank == root ? bytes.count : 0)]
        try length.withUnsafeMutableBufferPointer { try rawBroadcast($0, root: root) }
        var data = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length[0]))
        // Large payloads (checkpoints) go in chunks: MPI counts are 32-bit.
        let chunk = Int(Int32.max / 2)
        try data.withUnsafeMutableBufferPointer { all in
            var offset = 0
            while offset < all.count {
                let n = min(chunk, all.count - offset)
                try rawBroadcast(UnsafeMutableBufferPointer(rebasing: all[offset ..< offset + n]), root: root)
                offset += n
            }
        }
        return data
    }

    public func broadcast(_ string: String, root: Int = 0) throws -> String {
        String(decoding: try broadcastBytes(Array(string.utf8), root: root), as: UTF8.self)
    }

    private func rawBroadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        try MPI.check(MPI_Bcast(buffer.baseAddress, try count(buffer.count), T.mpiDatatype, Int32(root), handle),
                      "MPI_Bcast")
    }

    // MARK: - Allreduce

    /// Reduces `buffer` across all ranks and leaves the result in `buffer` on every rank
    /// (MPI_IN_PLACE: no copy, no temporary).
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

    /// In place on an array (no copy: the array's own storage is reduced).
    public func allreduce<T: MPIScalar>(_ array: inout [T], op: ReduceOp = .sum) throws {
        try array.withUnsafeMutableBufferPointer { try allreduce($0, op: op) }
    }

    /// Out of place on arrays: `input` is left alone, `output` receives the result.
    public func allreduce<T: MPIScalar>(_ input: [T], into output: inout [T], op: ReduceOp = .sum) throws {
        try input.withUnsafeBufferPointer { source in
            try output.withUnsafeMutableBufferPointer { try allreduce(source, into: $0, op: op) }
        }
    }

    /// Out of place, returning a new array.
    public func allreduced<T: MPIScalar>(_ array: [T], op: ReduceOp = .sum) throws -> [T] {
        var output = [T](repeating: 0, count: array.count)
        try allreduce(array, into: &output, op: op)
        return output
    }

    public func allreduce<T: MPIScalar>(_ value: T, op: ReduceOp = .sum) throws -> T {
        var array = [value]
        try allreduce(&array, op: op)
        return array[0]
    }

    /// Starts a non-blocking in-place allreduce. `buffer` must stay valid and untouched until
    /// the returned request completes (`wait()`, or `test()` returning true).
    public func iallreduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp = .sum) throws -> Request {
        let request = Request()
        try MPI.check(MPI_Iallreduce(fkp_in_place(), buffer.baseAddress, try count(buffer.count), T.mpiDatatype,
                                     op.handle, handle, &request.handle), "MPI_Iallreduce")
        return request
    }

    /// Starts a non-blocking broadcast of `root`'s buffer (in place). Every rank must pass the
    /// same count and root (not cross-checked: the callers pass fixed sizes); the buffer must stay
    /// valid and untouched until the request completes.
    public func ibroadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int = 0) throws -> Request {
        try checkRoot(root)
        let request = Request()
        try MPI.check(MPI_Ibcast(buffer.baseAddress, try count(buffer.count), T.mpiDatatype, Int32(root), handle, &request.handle),
                      "MPI_Ibcast")
        return request
    }

    /// Starts a non-blocking barrier: it completes once every rank has started it.
    public func ibarrier() throws -> Request {
        let request = Request()
        try MPI.check(MPI_Ibarrier(handle, &request.handle), "MPI_Ibarrier")
        return request
    }

    // MARK: - Checks

    func checkRoot(_ root: Int) throws {
        guard root >= 0 && root < size else {
            throw MPIError.misuse("root \(root) is not a rank of this communicator (size \(size))")
        }
    }

    func count(_ n: Int) throws -> Int32 {
        guard n <= Int(Int32.max) else { throw MPIError.misuse("\(n) elements exceed MPI's 32-bit count") }
        return Int32(n)
    }

    /// Collectives whose counts or roots differ between ranks corrupt memory, hang, or fail on
    /// some ranks only; one small allreduce (max of x and of -x gives max and min) lets every
    /// rank see a mismatch and throw together. Called before `checkRoot`, so that a root that is
    /// bad on one rank only makes every rank throw instead of leaving the others waiting.
    func agree(count n: Int, root: Int, operation: String) throws {
        guard size > 1 else { return }
        var bounds: [Int64] = [Int64(n), -Int64(n), Int64(root), -Int64(root)]
        try allreduce(&bounds, op: .max)
        if bounds[0] != -bounds[1] {
            throw MPIError.misuse("\(operation) counts differ between ranks (\(-bounds[1]) to \(bounds[0])); this rank has \(n)")
        }
        if bounds[2] != -bounds[3] {
            throw MPIError.misuse("\(operation) roots differ between ranks (\(-bounds[3]) to \(bounds[2])); this rank has \(root)")
        }
    }
}
