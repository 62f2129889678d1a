#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// One persistent pool of worker threads for the whole engine (llm.c's OpenMP loops, without
/// OpenMP). `run(pieces:)` hands numbered pieces of work to the calling thread and `threads − 1`
/// workers, which take the next piece from a shared counter until none is left.
///
/// Why not `DispatchQueue.concurrentPerform` and OpenBLAS's own threads: the two pools took turns
/// on the same cores (im2col on one, the GEMM on the other, OpenBLAS's idle threads spinning in
/// between), and the engine gained only 1.1–1.5× from a second core. With one pool and
/// single-threaded GEMM calls on fixed tiles (BLAS.swift), every piece of a step runs on the same
/// threads, and the result does not depend on how many there are.
///
/// Pieces must not depend on which thread runs them (the `worker` index is for scratch memory
/// only). A `run` issued while the pool is busy — from inside a piece, or from another thread —
/// runs its pieces inline on the caller, so nesting is safe and costs nothing.
public final class WorkerPool: @unchecked Sendable {
    public let threads: Int
    /// What the worker threads share. They hold it, not the pool: the pool can then be freed
    /// (its deinit stops and joins the threads) when its last user lets it go.
    private let core: PoolCore
    private var workers: [pthread_t] = []

    public init(threads: Int) {
        self.threads = max(1, threads)
        core = PoolCore(threads: self.threads)
        for index in 1 ..< self.threads {
            let context = Unmanaged.passRetained(WorkerStart(core: core, index: index)).toOpaque()
            var thread = pthread_t()
            let status = pthread_create(&thread, nil, { raw in
                let start = Unmanaged<WorkerStart>.fromOpaque(raw!).takeRetainedValue()
                start.core.workerLoop(start.index)
                return nil
            }, context)
            precondition(status == 0, "WorkerPool: pthread_create failed (\(status))")
            workers.append(thread)
        }
    }

    deinit {
        core.stop()
        for thread in workers { pthread_join(thread, nil) }
    }

    /// Calls `body(piece, worker)` for every piece in 0..<pieces, spread over the pool; returns when
    /// all are done. `worker` is in 0..<threads and is never used by two pieces at the same time.
    public func run(pieces count: Int, _ body: (_ piece: Int, _ worker: Int) -> Void) {
        core.run(pieces: count, body)
    }
}

private final class PoolCore: @unchecked Sendable {
    let threads: Int
    private let generation = Atomic<Int>(0)
    private let nextPiece = Atomic<Int>(0)
    private let running = Atomic<Int>(0)       // workers still inside the current job
    private let busy = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    private var pieces = 0
    private var body: ((Int, Int) -> Void)?
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var parked = 0                     // guarded by mutex

    /// A worker spins this many polls for the next job before it sleeps: steps issue jobs every few
    /// microseconds, and a wake-up from sleep costs tens of them.
    private static let spinPolls = 1 << 16
    /// Past this many polls a waiting thread yields between polls: on a machine with more runnable
    /// threads than cores, the thread it waits for may be the one it is keeping off the core.
    private static let yieldAfter = 1 << 12

    init(threads: Int) {
        self.threads = threads
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
    }

    deinit {
        pthread_cond_destroy(&wake)
        pthread_mutex_destroy(&mutex)
    }

    /// Wakes every worker with the stop flag set; each returns from `workerLoop`.
    func stop() {
        stopping.store(true, ordering: .releasing)
        generation.add(1, ordering: .releasing)
        pthread_mutex_lock(&mutex)
        pthread_cond_broadcast(&wake)
        pthread_mutex_unlock(&mutex)
    }

    func run(pieces count: Int, _ body: (_ piece: Int, _ worker: Int) -> Void) {
        if count <= 0 { return }
        if threads == 1 || count == 1 || !busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            for piece in 0 ..< count { body(piece, 0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            self.body = body
            pieces = count
            nextPiece.store(0, ordering: .relaxed)
            running.store(threads - 1, ordering: .relaxed)
            generation.add(1, ordering: .releasing)          // publishes body and pieces
            pthread_mutex_lock(&mutex)
            if parked > 0 { pthread_cond_broadcast(&wake) }
            pthread_mutex_unlock(&mutex)
            takePieces(worker: 0)
            var polls = 0
            while running.load(ordering: .acquiring) > 0 {   // the last pieces are finishing
                polls += 1
                if polls > Self.yieldAfter { sched_yield() }  // let a preempted worker have the core
            }
            self.body = nil
        }
        busy.store(false, ordering: .releasing)
    }

    private func takePieces(worker: Int) {
        let body = self.body!
        while true {
            let piece = nextPiece.add(1, ordering: .relaxed).oldValue
            if piece >= pieces { return }
            body(piece, worker)
        }
    }

    func workerLoop(_ index: Int) {
        var seen = 0
        while true {
            var polls = 0
            while generation.load(ordering: .acquiring) == seen {
                polls += 1
                if polls < Self.yieldAfter { continue }
                if polls < Self.spinPolls { sched_yield(); continue }
                pthread_mutex_lock(&mutex)
                parked += 1
                while generation.load(ordering: .acquiring) == seen { pthread_cond_wait(&wake, &mutex) }
                parked -= 1
                pthread_mutex_unlock(&mutex)
            }
            seen = generation.load(ordering: .acquiring)
            if stopping.load(ordering: .acquiring) { return }
            takePieces(worker: index)
            running.subtract(1, ordering: .releasing)
        }
    }
}

private final class WorkerStart {
    let core: PoolCore
    let index: Int
    init(core: PoolCore, index: Int) { self.core = core; self.index = index }
}
