import SwiftMPI

/// The training loop's collectives. With a stall watchdog (`--stall-timeout`, more than one rank)
/// each starts non-blocking and is waited for under the watchdog, which names the ranks that never
/// arrive and aborts the job; without one, they are MPI's blocking calls.
public struct WatchedCollectives {
    public let communicator: Communicator
    let watchdog: StallWatchdog?

    /// Plain blocking collectives (no watchdog).
    public init(_ communicator: Communicator) { self.init(communicator, watchdog: nil) }

    init(_ communicator: Communicator, watchdog: StallWatchdog?) {
        self.communicator = communicator
        self.watchdog = watchdog
    }

    /// `what` names the collective in a stall report, e.g. "step 12's loss agreement".
    public func allreduce<T: MPIScalar>(_ array: inout [T], op: ReduceOp = .sum, _ what: @autoclosure () -> String) throws {
        guard let watchdog else { return try communicator.allreduce(&array, op: op) }
        try array.withUnsafeMutableBufferPointer { buffer in
            try watchdog.wait(what()) { [try communicator.iallreduce(buffer, op: op)] }
        }
    }

    /// Rank 0's buffer to every rank; every rank passes the same count.
    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, _ what: @autoclosure () -> String) throws {
        guard let watchdog else { return try communicator.broadcast(buffer) }
        try watchdog.wait(what()) { [try communicator.ibroadcast(buffer)] }
    }

    public func broadcast<T: MPIScalar>(_ array: inout [T], _ what: @autoclosure () -> String) throws {
        try array.withUnsafeMutableBufferPointer { try broadcast($0, what()) }
    }

    public func barrier(_ what: @autoclosure () -> String) throws {
        guard let watchdog else { return try communicator.barrier() }
        try watchdog.wait(what()) { [try communicator.ibarrier()] }
    }
}
