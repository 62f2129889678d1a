import CMPI

/// A pending non-blocking operation (from `iallreduce`, `ibroadcast` or `ibarrier`).
public final class Request: @unchecked Sendable {
    var handle: MPI_Request? = fkp_request_null()

    init() {}

    /// True once the operation has completed (then the buffer may be used again).
    public var isComplete: Bool { handle == fkp_request_null() }

    /// Blocks until the operation completes.
    public func wait() throws {
        guard !isComplete else { return }
        try MPI.check(MPI_Wait(&handle, fkp_status_ignore()), "MPI_Wait")
    }

    /// Returns whether the operation has completed, without blocking (each call also drives MPI's
    /// progress engine, so a polling loop does finish).
    public func test() throws -> Bool {
        guard !isComplete else { return true }
        var flag: Int32 = 0
        try MPI.check(MPI_Test(&handle, &flag, fkp_status_ignore()), "MPI_Test")
        return flag != 0
    }

    deinit {
        // A request dropped while pending would leave MPI writing into a buffer nobody owns.
        if !isComplete && !MPI.isFinalized { try? wait() }
    }
}
