import CMPI
import Foundation

/// Moves MPI's non-blocking operations forward while the calling thread computes. Open MPI has no
/// asynchronous progress for TCP: a started MPI_Iallreduce advances only inside MPI calls, so
/// while backward runs a layer, its buckets sit still. While resumed, this thread calls
/// MPI_Iprobe (which runs Open MPI's progress engine and matches nothing: it probes a communicator
/// of its own that carries no messages) every `interval` seconds, and sleeps between calls.
/// Needs MPI_THREAD_MULTIPLE (the owner's thread keeps calling MPI meanwhile).
public final class ProgressThread {
    /// What the owner and the thread share (the thread holds this, not its owner).
    private final class State: @unchecked Sendable {
        let condition = NSCondition()
        var active = false
        var stopped = false
        /// A communicator of the thread's own, which no message ever reaches.
        var probe: MPI_Comm? = fkp_comm_self()
    }
    private let state = State()
    /// Seconds between calls.
    public let interval: Double

    public init(interval: Double) throws {
        guard MPI.grantedThreadLevel == .multiple else {
            throw MPIError.misuse("a progress thread needs MPI_THREAD_MULTIPLE; MPI granted \(MPI.grantedThreadLevel)")
        }
        self.interval = interval
        let state = self.state, nanoseconds = Int(interval * 1e9)
        try MPI.check(MPI_Comm_dup(fkp_comm_self(), &state.probe), "MPI_Comm_dup")
        let thread = Thread {
            var flag: Int32 = 0
            while true {
                state.condition.lock()
                while !state.active { state.condition.wait() }
                let stopped = state.stopped
                state.condition.unlock()
                if stopped {
                    MPI.unlessFinalized { MPI_Comm_free(&state.probe) }
                    return
                }
                MPI.unlessFinalized { MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, state.probe, &flag, fkp_status_ignore()) }
                var rest = timespec(tv_sec: 0, tv_nsec: nanoseconds)
                nanosleep(&rest, nil)
            }
        }
        thread.name = "mpi-progress"
        thread.start()
    }

    /// Starts driving progress (after the operations have started).
    public func resume() { set(active: true) }

    /// Stops driving progress until the next `resume` (before waiting on the operations).
    public func pause() { set(active: false) }

    deinit {
        state.condition.lock(); state.stopped = true; state.active = true; state.condition.signal(); state.condition.unlock()
    }

    private func set(active: Bool) {
        state.condition.lock(); state.active = active; state.condition.signal(); state.condition.unlock()
    }
}
