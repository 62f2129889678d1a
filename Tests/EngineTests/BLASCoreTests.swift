import Engine
import TestSupport
import XCTest

/// OpenBLAS kernels older than the CPU (its DYNAMIC_ARCH fallback on CPUs newer than the library)
/// are replaced through OPENBLAS_CORETYPE; see BLASCore.
final class BLASCoreTests: XCTestCase {
    private let avx512: Set<String> = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"]
    private let avx2: Set<String> = ["sse3", "avx", "avx2", "fma"]

    func testFallbackKernelsAreReplacedByTheBestTheCPUHas() {
        XCTAssertEqual(BLASCore.better(than: "Prescott", flags: avx512), "SkylakeX")
        XCTAssertEqual(BLASCore.better(than: "Prescott", flags: avx2), "Haswell")
        XCTAssertEqual(BLASCore.better(than: "Haswell", flags: avx512), "SkylakeX")
        XCTAssertEqual(BLASCore.better(than: "Sandybridge", flags: avx2), "Haswell")
    }

    func testRightKernelsAndOldCPUsAreLeftAlone() {
        for core in ["SkylakeX", "Cooperlake", "SapphireRapids"] { XCTAssertNil(BLASCore.better(than: core, flags: avx512), core) }
        XCTAssertNil(BLASCore.better(than: "Haswell", flags: avx2))
        XCTAssertNil(BLASCore.better(than: "Zen", flags: avx2))
        XCTAssertNil(BLASCore.better(than: "Prescott", flags: ["sse3"]))
        XCTAssertNil(BLASCore.better(than: "Prescott", flags: []))
    }

    /// The real program on this machine: whatever OpenBLAS detects, fkp ends up on the best kernels
    /// this CPU can run, and a user's OPENBLAS_CORETYPE is kept.
    func testFkpRunsTheBestKernelsForThisCPU() throws {
        var environment = ProcessRunner.cleanEnvironment()
        environment["OPENBLAS_CORETYPE"] = nil
        let result = try ProcessRunner.run(TestPaths.product("fkp").path, ["doctor", "--quick"], environment: environment, timeout: 120)
        XCTAssertEqual(result.status, 0, result.output)
        let core = try XCTUnwrap(Self.coreColumn(result.stdout), result.output)
        XCTAssertNil(BLASCore.better(than: core, flags: BLASCore.cpuFlags()), "fkp ran OpenBLAS's \(core) kernels\n\(result.output)")

        environment["OPENBLAS_CORETYPE"] = "Prescott"
        let chosen = try ProcessRunner.run(TestPaths.product("fkp").path, ["doctor", "--quick"], environment: environment, timeout: 120)
        XCTAssertEqual(try XCTUnwrap(Self.coreColumn(chosen.stdout), chosen.output), "Prescott", "the user's choice is kept")
    }

    /// The BLAS core of rank 0's row: rank, host, cores, BLAS threads, BLAS core, GFLOP/s.
    private static func coreColumn(_ stdout: String) -> String? {
        for line in stdout.split(separator: "\n") {
            let words: [Substring] = line.split(separator: " ")
            if words.count == 6 && words[0] == "0" && Int(words[2]) != nil { return String(words[4]) }
        }
        return nil
    }
}
