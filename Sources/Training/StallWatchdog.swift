import CMPI
import Foundation
import SwiftMPI

/// Horovod's stall inspector, for every collective of the training loop: a rank that stops (a hung
/// NFS read, a stopped or swapping process, a dead node the network has not noticed) leaves every
/// other rank waiting in the next collective forever — the start broadcast, a step's gradient
/// allreduce, its loss agreement, the checkpoint or the validation metrics. Every rank runs the
/// same collectives in the same order, so each gets a sequence number: a rank tells rank 0 the
/// number of each collective it starts (a one-integer message), rank 0 notes who has arrived while
/// it waits itself, and a wait longer than `timeout` prints which ranks have not arrived, and where
/// each of them was last, and aborts the job, so a scheduler sees a failure instead of a job that
/// burns its allocation doing nothing.
final class StallWatchdog {
    let communicator: Communicator
    let timeout: Double
    /// The collectives started so far on this rank.
    private var sequence: Int64 = 0
    /// rank 0: the last collective each rank reported (0: none yet).
    private var arrived: [Int64]
    /// rank 0: what its own recent collectives were, by sequence number (names the place where a
    /// missing rank was last seen; the most recent `rememberedNames` only).
    private var names: [Int64: String] = [:]
    private static let rememberedNames: Int64 = 64
    private var receiveBuffer = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
    private var receive: MPI_Request? = fkp_request_null()
    private var sendBuffer = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
    private var send: MPI_Request? = fkp_request_null()
    private static let tag: Int32 = 0x57A1
    /// For the tests: `FKP_TEST_STOP_BEFORE=RANK:NAME` makes that rank stop itself (SIGSTOP, as a
    /// hung process would) before the first collective whose name starts with NAME, so each kind
    /// of stall can be provoked at a known place.
    private let stopBefore: (rank: Int, collective: String)? = {
        guard let spec = ProcessInfo.processInfo.environment["FKP_TEST_STOP_BEFORE"],
              let colon = spec.firstIndex(of: ":"), let rank = Int(spec[..<colon]) else { return nil }
        return (rank, String(spec[spec.index(after: colon)...]))
    }()

    init(communicator: Communicator, timeout: Double) {
        self.communicator = communicator
        self.timeout = timeout
        arrived = Array(repeating: 0, count: communicator.size)
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

    /// Starts one collective, `what` (e.g. "step 12's loss agreement"), with `start` (which returns
    /// its requests; the gradient allreduce's buckets may be under way already) and waits for it
    /// like `wait()`, watching the clock.
    func wait(_ what: @autoclosure () -> String, start: () throws -> [Request]) throws {
        sequence += 1
        if let stop = stopBefore, stop.rank == communicator.rank, what().hasPrefix(stop.collective) { raise(SIGSTOP) }
        let requests = try start()
        if communicator.rank == 0 {
            names[sequence] = what()
            names[sequence - Self.rememberedNames] = nil
        }
        try announce(sequence)
        let started = Date()
        // Non-root ranks give rank 0 (which can name the missing ranks) time to speak first.
        let limit = communicator.rank == 0 ? timeout : timeout * 1.5 + 5
        var pending = requests.filter { !$0.isComplete }
        var polls = 0
        while !pending.isEmpty {
            pending = try pending.filter { try !$0.test() }
            if communicator.rank == 0 { drainArrivals() }
            if !pending.isEmpty && Date().timeIntervalSince(started) > limit { stalled(in: what(), seconds: Date().timeIntervalSince(started)) }
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

    private func announce(_ sequence: Int64) throws {
        if communicator.rank == 0 {
            arrived[0] = sequence
            if receive == fkp_request_null() { try postReceive() }
            return
        }
        // The previous report (8 bytes, sent eagerly) went out when the previous collective started;
        // make sure before reusing the buffer.
        if send != fkp_request_null() { try MPI.check(MPI_Wait(&send, fkp_status_ignore()), "MPI_Wait") }
        sendBuffer.pointee = sequence
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

    private func stalled(in what: String, seconds: Double) -> Never {
        var line = String(format: "fkp: error: stall: rank %d has waited %.0f s (--stall-timeout %.0f) in %@; ",
                          communicator.rank, seconds, timeout, what)
        if communicator.rank == 0 {
            let missing = arrived.indices.filter { arrived[$0] < sequence }
            let places = missing.map { r in
                arrived[r] == 0 ? "rank \(r) (no collective reported)"
                    : "rank \(r) (last at \(names[arrived[r]] ?? "collective \(arrived[r])"))"
            }
            line += missing.isEmpty ? "every rank has arrived: the network or MPI itself is stuck" : "not arrived: " + places.joined(separator: ", ")
        } else {
            line += "rank 0 did not report the missing ranks (it may be the one that stopped)"
        }
        FileHandle.standardError.write(Data((line + "; aborting the job\n").utf8))
        communicator.abort(code: 1)
    }
}
