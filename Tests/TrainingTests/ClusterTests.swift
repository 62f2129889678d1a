import Foundation
import TestSupport
import XCTest

/// Multi-host runs on one machine: deploy/local-cluster/run.sh makes N Linux network namespaces
/// ("hosts", hostnames node1...nodeN, addresses from hostfiles/local-cluster) and runs `mpirun` across
/// them over TCP, with an rsh agent that uses `ip netns exec` instead of ssh. Needs root; elsewhere
/// the tests skip (the script exits 77 when it cannot create namespaces).
final class ClusterTests: XCTestCase {
    private static let script = TestPaths.repoRoot.appendingPathComponent("deploy/local-cluster/run.sh")

    /// Runs `command` on `hosts` namespace hosts (one rank each), with the script's `options`.
    private func runOnLocalCluster(hosts: Int, options: [String] = [], _ command: [String],
                                   timeout: TimeInterval = 120) throws -> ProcessResult {
        let result = try ProcessRunner.run("/bin/bash", [Self.script.path, "--hosts", String(hosts)] + options + ["--"] + command,
                                           timeout: timeout)
        if result.status == 77 {
            let reason = result.stderr.split(separator: "\n").last.map(String.init) ?? "exit 77"
            throw XCTSkip("local multi-host test needs network namespaces (root, CAP_NET_ADMIN, `ip`): \(reason)")
        }
        return result
    }

    /// What the command printed, without the script's own `local-cluster:` lines (which name the hosts too).
    private func commandOutput(_ result: ProcessResult) -> String {
        result.output.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("local-cluster:") }.joined(separator: "\n")
    }

    /// The namespaces the script reported creating (`(netns NAME)` on its host lines).
    private func namespaces(in result: ProcessResult) -> [String] {
        let pattern = try! NSRegularExpression(pattern: #"\(netns (\S+)\)"#)
        let text = result.stderr
        return pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
            Range($0.range(at: 1), in: text).map { String(text[$0]) }
        }
    }

    private struct MissingProduct: Error, CustomStringConvertible {
        let path: String
        var description: String { "\(path) is missing: build it first (swift build -c release --build-tests)" }
    }

    private func product(_ name: String) throws -> URL {
        let url = TestPaths.product(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw MissingProduct(path: url.path)
        }
        return url
    }

    /// The SwiftMPI selftest on two namespace hosts: each rank names a different host and the allreduce
    /// over TCP between them gives 1 + 2 = 3 on both; afterwards the namespaces are gone.
    func testSelftestRunsOnTwoNamespaceHosts() throws {
        let selftest = try product("swiftmpi-selftest")
        let started = Date()
        let result = try runOnLocalCluster(hosts: 2, [selftest.path])
        let seconds = Date().timeIntervalSince(started)
        XCTAssertEqual(result.status, 0, result.output)

        let pattern = try NSRegularExpression(pattern: #"^rank (\d+)/(\d+) host (\S+) sum (\S+)$"#, options: .anchorsMatchLines)
        let text = result.stdout
        var ranks: Set<Int> = [], hostsSeen: Set<String> = []
        for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            let field = { (i: Int) in String(text[Range(match.range(at: i), in: text)!]) }
            ranks.insert(Int(field(1)) ?? -1)
            XCTAssertEqual(field(2), "2", "world size in: \(text)")
            hostsSeen.insert(field(3))
            XCTAssertEqual(Float(field(4)), 3, "allreduce sum in: \(text)")
        }
        XCTAssertEqual(ranks, [0, 1], result.output)
        XCTAssertEqual(hostsSeen, ["node1", "node2"], "each rank should run on its own host: \(result.output)")
        print("local cluster: 2 hosts x 1 rank, selftest in \(String(format: "%.2f", seconds)) s:\n\(text)")

        let created = namespaces(in: result)
        XCTAssertEqual(created.count, 2, result.stderr)
        for ns in created {
            XCTAssertFalse(FileManager.default.fileExists(atPath: "/var/run/netns/\(ns)"), "namespace \(ns) left behind")
        }
    }

    /// The script exits with the command's status, so a failing job fails the caller.
    func testExitStatusIsTheCommands() throws {
        let result = try runOnLocalCluster(hosts: 2, ["/bin/sh", "-c", "exit 3"])
        XCTAssertEqual(result.status, 3, result.output)
    }

    /// `--rate` puts a token bucket of that rate on every host's link (each rank sees it on its eth0);
    /// a rate tc would not take is a usage error (status 2) before anything is created.
    func testRateShapesEveryHostsLink() throws {
        let bad = try ProcessRunner.run("/bin/bash", [Self.script.path, "--rate", "fast", "--", "true"], timeout: 30)
        XCTAssertEqual(bad.status, 2, bad.output)
        XCTAssertTrue(bad.stderr.contains("--rate needs"), bad.stderr)

        let result = try runOnLocalCluster(hosts: 2, options: ["--rate", "1gbit"], ["/bin/sh", "-c", "tc qdisc show dev eth0"])
        XCTAssertEqual(result.status, 0, result.output)
        let shaped = commandOutput(result).split(separator: "\n").filter { $0.contains("qdisc tbf") }
        XCTAssertEqual(shaped.count, 2, "one tbf per host: \(result.output)")
        XCTAssertTrue(shaped.allSatisfy { $0.contains("rate 1Gbit") }, result.output)
    }

    /// `fkp doctor --quick` on 2 hosts x 1 rank: both hosts appear and it reports `world size: 2`.
    func testDoctorSeesTwoHosts() throws {
        let fkp = try product("fkp")
        let result = try runOnLocalCluster(hosts: 2, [fkp.path, "doctor", "--quick"])
        XCTAssertEqual(result.status, 0, result.output)
        let output = commandOutput(result)
        XCTAssertTrue(output.contains("world size: 2"), output)
        XCTAssertTrue(output.contains("node1") && output.contains("node2"), "ranks should report different hosts: \(output)")
    }

    /// A short `fkp train` on 2 hosts finishes and rank 0 leaves a checkpoint in the out dir. Across
    /// hosts the buckets get a progress thread (on one host they do not: TrainCommandTests).
    func testShortTrainOnTwoHostsWritesCheckpoint() throws {
        let fkp = try product("fkp")
        let out = TestPaths.temporaryDirectory("fkp-cluster-train")
        defer { try? FileManager.default.removeItem(at: out) }
        let result = try runOnLocalCluster(hosts: 2, [fkp.path, "train", "--data", "synthetic", "--epochs", "1",
                                                      "--steps-per-epoch", "4", "--batch", "8", "--out", out.path],
                                           timeout: 300)
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssert(result.output.contains("gradient buckets 25 MB, MPI progress thread every 1 ms;"), result.output)
        let files = FileManager.default.enumerator(at: out, includingPropertiesForKeys: nil)?
            .compactMap { ($0 as? URL)?.lastPathComponent } ?? []
        XCTAssertTrue(files.contains { $0.hasSuffix(".safetensors.zst") },
                      "no *.safetensors.zst in \(out.path): \(files)\n\(result.output)")
    }
}
