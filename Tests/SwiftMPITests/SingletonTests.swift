import CMPI
import SwiftMPI
import XCTest

/// The wrapper in a world of one: this test process initialises MPI once as a singleton (no
/// mpirun) and every collective must behave as MPI defines it for one rank.
final class SingletonTests: XCTestCase {
    var world: Communicator!

    override func setUpWithError() throws {
        try MPI.initialize(threadLevel: .funneled)
        world = MPI.world
    }

    func testInitializeIsIdempotentAndWorldIsOneRank() throws {
        let first = try MPI.initialize(threadLevel: .funneled)
        let second = try MPI.initialize(threadLevel: .multiple)  // ignored: already initialised
        XCTAssertEqual(first, second)
        XCTAssertGreaterThanOrEqual(first, .funneled)
        XCTAssertTrue(MPI.isInitialized)
        XCTAssertFalse(MPI.isFinalized)
        XCTAssertTrue(MPI.world === world)
        XCTAssertEqual(world.size, 1)
        XCTAssertEqual(world.rank, 0)
        XCTAssertTrue(world.isRoot)
        XCTAssertFalse(world.processorName.isEmpty)
        XCTAssertFalse(MPI.launchedByProcessManager, "the test process is a singleton, not an mpirun child")
        XCTAssertTrue(MPI.libraryVersion.contains("MPI"), MPI.libraryVersion)
    }

    func testAllreduceOfEveryTypeAndOpIsIdentityOnOneRank() throws {
        for op in [ReduceOp.sum, .max, .min] {
            try checkIdentity([Float(1.5), -2, 3e7], op)
            try checkIdentity([Double(-0.125), 4, 1e300], op)
            try checkIdentity([Int32.min, -1, Int32.max], op)
            try checkIdentity([Int64.min, 7, Int64.max], op)
        }
        XCTAssertEqual(try world.allreduce(Int64(42), op: .max), 42)
    }

    private func checkIdentity<T: MPIScalar>(_ values: [T], _ op: ReduceOp) throws {
        var inPlace = values
        try world.allreduce(&inPlace, op: op)
        XCTAssertEqual(inPlace, values, "in place \(T.self) \(op)")
        XCTAssertEqual(try world.allreduced(values, op: op), values, "out of place \(T.self) \(op)")
        let output = UnsafeMutableBufferPointer<T>.allocate(capacity: values.count)
        defer { output.deallocate() }
        try values.withUnsafeBufferPointer { try world.allreduce($0, into: output, op: op) }
        XCTAssertEqual(Array(output), values, "buffers \(T.self) \(op)")
    }

    func testEmptyBuffersAreFine() throws {
        var empty: [Float] = []
        try world.allreduce(&empty)
        try world.broadcast(&empty)
        XCTAssertEqual(try world.allgather(empty), [])
        XCTAssertEqual(try world.broadcast(""), "")
    }

    func testBroadcastGatherAllgatherOnOneRank() throws {
        var data: [Double] = [1, 2, 3]
        try world.broadcast(&data, root: 0)
        XCTAssertEqual(data, [1, 2, 3])
        XCTAssertEqual(try world.broadcast(Int32(9)), 9)
        XCTAssertEqual(try world.broadcast("naïve ✓"), "naïve ✓")
        XCTAssertEqual(try world.broadcastBytes([0, 255, 7]), [0, 255, 7])
        XCTAssertEqual(try world.allgather([Int64(5), 6]), [5, 6])
        XCTAssertEqual(try world.allgather(Float(2.5)), [2.5])
        XCTAssertEqual(try world.allgather("host-a"), ["host-a"])
        XCTAssertEqual(try world.gather([Int32(3), 4], root: 0), [3, 4])
    }

    func testIallreduceWaitAndTest() throws {
        var data = [Float](repeating: 2, count: 1000)
        try data.withUnsafeMutableBufferPointer { buffer in
            let request = try world.iallreduce(buffer, op: .max)
            try request.wait()
            XCTAssertTrue(request.isComplete)
            XCTAssertTrue(try request.test(), "a completed request stays complete")
            try request.wait()  // waiting again is harmless
        }
        try data.withUnsafeMutableBufferPointer { buffer in
            let request = try world.iallreduce(buffer)
            var polls = 0
            while try !request.test() { polls += 1; XCTAssertLessThan(polls, 10_000_000) }
            XCTAssertTrue(request.isComplete)
        }
        XCTAssertEqual(data, [Float](repeating: 2, count: 1000))
        try world.barrier()
    }

    func testBadRootIsMisuseCaughtBeforeMPI() throws {
        assertMisuse(containing: "root 1 is not a rank") { _ = try self.world.broadcast(Float(1), root: 1) }
        assertMisuse(containing: "root -1 is not a rank") { _ = try self.world.gather([Int32(1)], root: -1) }
        assertMisuse(containing: "root 3 is not a rank") { _ = try self.world.broadcast("x", root: 3) }
    }

    func testOutOfPlaceSizeMismatchIsMisuse() throws {
        var output = [Double](repeating: 0, count: 2)
        assertMisuse(containing: "3 elements but output has 2") {
            try self.world.allreduce([1.0, 2, 3], into: &output)
        }
    }

    func testMPIErrorCarriesMPIsOwnMessage() throws {
        var value: Float = 1
        XCTAssertThrowsError(try world.call("MPI_Allreduce") {
            MPI_Allreduce(fkp_in_place(), &value, -1, fkp_type_float(), fkp_op_sum(), $0)
        }) { error in
            guard case let MPIError.mpi(function, code, message) = error else {
                return XCTFail("expected an MPI error, got \(error)")
            }
            XCTAssertEqual(function, "MPI_Allreduce")
            XCTAssertEqual(code, MPI_ERR_COUNT)
            XCTAssertEqual(message, MPI.errorString(MPI_ERR_COUNT))
            XCTAssertTrue(message.lowercased().contains("invalid count"), message)
            XCTAssertTrue("\(error)".contains("MPI_Allreduce failed"), "\(error)")
        }
        // The error handler returns instead of aborting, and the communicator still works.
        XCTAssertEqual(try world.allreduce(Int32(3)), 3)
        XCTAssertTrue(MPI.errorString(MPI_ERR_ROOT).lowercased().contains("root"), MPI.errorString(MPI_ERR_ROOT))
    }

    func testTimeAdvances() {
        let start = MPI.time
        usleep(20_000)
        XCTAssertGreaterThan(MPI.time - start, 0.015)
    }

    private func assertMisuse(containing text: String, _ body: () throws -> Void,
                              file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard case let MPIError.misuse(message) = error else {
                return XCTFail("expected misuse, got \(error)", file: file, line: line)
            }
            XCTAssertTrue(message.contains(text), message, file: file, line: line)
        }
    }
}
