import Engine
import Foundation
import XCTest

/// The pool's threads must not keep it alive: a pool nobody uses is freed and its threads end,
/// and `Parallel.setThreads` does not leak the pool it replaces.
final class WorkerPoolTests: XCTestCase {
    /// Threads of this process (Linux: /proc/self/task).
    func threadCount() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0 }

    /// The thread count once it reaches `expected`, or after 2 s. A joined thread can stay listed
    /// in /proc/self/task for a moment after pthread_join returns (the kernel reaps it after the
    /// join is told), so on a loaded machine a count taken at once can be one high (seen in CI).
    func threadCount(settlingAt expected: Int) -> Int {
        let deadline = Date().addingTimeInterval(2)
        var count = threadCount()
        while count != expected && Date() < deadline {
            usleep(1_000)
            count = threadCount()
        }
        return count
    }

    func testAPoolIsFreedAndItsThreadsJoined() {
        let before = threadCount()
        weak var weakPool: WorkerPool?
        do {
            let pool = WorkerPool(threads: 4)
            weakPool = pool
            XCTAssertEqual(threadCount(), before + 3)
            let sums = UnsafeMutablePointer<Int>.allocate(capacity: 64)
            defer { sums.deallocate() }
            pool.run(pieces: 64) { piece, _ in sums[piece] = piece * piece }
            XCTAssertEqual((0 ..< 64).map { sums[$0] }, (0 ..< 64).map { $0 * $0 })
        }
        XCTAssertNil(weakPool, "a pool with no users must be freed")
        XCTAssertEqual(threadCount(settlingAt: before), before)
    }

    func testSetThreadsDoesNotLeakThreads() {
        let saved = Parallel.threads
        defer { Parallel.setThreads(saved) }
        Parallel.setThreads(1)
        let before = threadCount()
        for n in [3, 2, 4, 3, 1] { Parallel.setThreads(n) }
        XCTAssertEqual(threadCount(settlingAt: before), before)
        Parallel.setThreads(3)
        XCTAssertEqual(threadCount(settlingAt: before + 2), before + 2)
    }
}
