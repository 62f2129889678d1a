import CMPI
import Foundation
import SwiftMPI

/// Horovod's stall inspector for the gradient allreduce: a rank that stops (a hung NFS read, a
/// stopped or swapping process, a dead node the network has not noticed) leaves every other rank
/// waiting in the allreduce forever. Here each rank tells rank 0 when it starts waiting for step
/// S's gradients (a one-integer message), rank 0 notes who has arrived while it waits itself,
/// and a wait longer than `timeout` prints which ranks have not arrived at which step and aborts
/// the job, so a scheduler sees a failure instead of a job that burns its allocation doing nothing.
final class StallWatchdog {
    let communicator: Communicator
    let timeout: Double
    /// rank 0: the last step each rank reported (-1: none yet).
    private var arrived: [Int64]
    private var receiveBuffer = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
    private var receive: MPI_Request? = fkp_request_null()
    private var sendBuffer = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
    private var send: MPI_Request? = fkp_request_null()
    private static let tag: Int32 = 0x57A1

    init(communicator: Communicator, timeout: Double) {
        self.communicator = communicator
        self.timeout = timeout
        arrived = Array(repeating: -1, count: communicator.size)
    }

    deinit {
        // After MPI_Finalize no MPI call is allowed; the requests died with MPI.
        for request in [receive, send] where request != fkp_request_null() && !MPI.isFinalized {
            var r = request
            MPI_Cancel(&r)
            MPI_Request_free(&r)
        }
        receiveBuffer.deallocate()
        sendBuffer.deallocate()
    }

    /// Waits for `requests` (the step's gradient buckets) like `wait()`, watching the clock.
    func wait(for requests: [Request], step: Int) throws {
        try announce(step: step)
        let started = Date()
        // Non-root ranks give rank 0 (which can name the missing ranks) time to speak first.
        let limit = communicator.rank == 0 ? timeout : timeout * 1.5 + 5
        var pending = requests.filter { !$0.isComplete }
        var polls = 0
        while !pending.isEmpty {
            pending = try pending.filter { try !$0.test() }
            if communicator.rank == 0 { drainArrivals() }
            if !pending.isEmpty && Date().timeIntervalSince(started) > limit { stalled(step: step, seconds: Date().timeIntervalSince(started)) }
            polls += 1
            Self.backOff(polls)
        }
        if communicator.rank == 0 { drainArrivals() }
    }

    /// Polls spin at first (an allreduce usually completes within microseconds), then yield the
    /// core, then sleep 100 µs between tests: a rank waiting for a slow peer must not keep a core
    /// busy that the peer (or this rank's own workers, on a shared machine) needs.
    static func backOff(_ polls: Int) {
        if polls > 2_000 { usleep(100) } else if polls > 200 { sched_yield() }
    }

    private func announce(step: Int) throws {
        if communicator.rank == 0 {
            arrived[0] = Int64(step)
            if receive == fkp_request_null() { try postReceive() }
            return
        }
        // The previous report went out long ago (a step has passed); make sure before reusing the buffer.
        if send != fkp_request_null() { try MPI.check(MPI_Wait(&send, fkp_status_ignore()), "MPI_Wait") }
        sendBuffer.pointee = Int64(step)
        try communicator.call("MPI_Isend") { MPI_Isend(sendBuffer, 1, fkp_type_int64(), 0, StallWatchdog.tag, $0, &send) }
    }

    private func postReceive() throws {
        try communicator.call("MPI_Irecv") { MPI_Irecv(receiveBuffer, 1, fkp_type_int64(), MPI_ANY_SOURCE, StallWatchdog.tag, $0, &receive) }
    }

    /// Records every report that has come in (rank 0).
    private func drainArrivals() {
        while receive != fkp_request_null() {
            var done: Int32 = 0
            var status = MPI_Status()
            guard MPI_Test(&receive, &done, &status) == MPI_SUCCESS, done != 0 else { return }
            let source = Int(status.MPI_SOURCE)
            if arrived.indices.contains(source) { arrived[source] = max(arrived[source], receiveBuffer.pointee) }
            try? postReceive()
        }
    }

    private func stalled(step: Int, seconds: Double) -> Never {
        var line = String(format: "fkp: error: stall: rank %d has waited %.0f s (--stall-timeout %.0f) in step %d's gradient allreduce; ",
                          communicator.rank, seconds, timeout, step)
        if communicator.rank == 0 {
            let missing = arrived.indices.filter { arrived[$0] < Int64(step) }
            let names = missing.map { arrived[$0] < 0 ? "rank \($0) (no step reported)" : "rank \($0) (last at step \(arrived[$0]))" }
            line += missing.isEmpty ? "every rank has arrived: the network or MPI itself is stuck" : "not arrived: " + names.joined(separator: ", ")
        } else {
            line += "rank 0 did not report the missing ranks (it may be the one that stopped)"
        }
        FileHandle.standardError.write(Data((line + "; aborting the job\n").utf8))
        communicator.abort(code: 1)
    }
}
