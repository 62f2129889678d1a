import Checkpoints
import Foundation
import TestSupport
import Training
import XCTest

/// Checks what can be checked without daemons of the cluster deployment files: the MPIJob manifest,
/// the sbatch script, the Dockerfile and the hostfiles. (SlurmTests runs the sbatch script under a
/// real Slurm, as root; the checks here run for everyone.)
final class DeployTests: XCTestCase {
    private func path(_ relative: String) -> String { TestPaths.repoRoot.appendingPathComponent(relative).path }
    private func read(_ relative: String) throws -> String { try String(contentsOfFile: path(relative), encoding: .utf8) }

    /// Non-empty lines that are not `#` comment lines (Dockerfiles and packages.txt comment whole lines).
    private func contentLines(_ text: String) -> [Substring] {
        text.split(separator: "\n").filter { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return !trimmed.isEmpty && !trimmed.hasPrefix("#")
        }
    }

    // MARK: Kubernetes

    /// Parses the manifest with PyYAML into JSON; nil when python3 or PyYAML is not installed.
    private func parseYAMLWithPython(_ file: String) throws -> [String: Any]? {
        let script = "import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)"
        let result = try ProcessRunner.run("/usr/bin/env", ["python3", "-c", script, file], timeout: 60)
        if result.status != 0 && (result.status == 127 || result.stderr.contains("No module named")) { return nil }
        XCTAssertEqual(result.status, 0, "\(file) does not parse as YAML: \(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        return try XCTUnwrap(json as? [String: Any], "\(file): top level is not a mapping")
    }

    func testMPIJobManifestIsAValidMPIJob() throws {
        let file = path("deploy/k8s/mpijob.yaml")
        guard let job = try parseYAMLWithPython(file) else {
            // Fallback without PyYAML: a structural check of the lines that matter.
            print("DeployTests: PyYAML not available, structural check of \(file) only")
            let text = try read("deploy/k8s/mpijob.yaml")
            XCTAssertFalse(text.contains("\t"), "tabs are not allowed in YAML")
            for needed in ["apiVersion: kubeflow.org/v2beta1", "kind: MPIJob", "spec:", "  slotsPerWorker: ",
                           "  mpiReplicaSpecs:", "    Launcher:", "    Worker:"] {
                XCTAssertTrue(text.split(separator: "\n").contains { $0.hasPrefix(needed) }, "missing line \(needed)")
            }
            return
        }
        print("DeployTests: \(file) parsed with PyYAML")
        XCTAssertEqual(job["apiVersion"] as? String, "kubeflow.org/v2beta1")
        XCTAssertEqual(job["kind"] as? String, "MPIJob")
        let spec = try XCTUnwrap(job["spec"] as? [String: Any])
        let slots = try XCTUnwrap(spec["slotsPerWorker"] as? Int, "slotsPerWorker")
        let replicaSpecs = try XCTUnwrap(spec["mpiReplicaSpecs"] as? [String: Any], "mpiReplicaSpecs")
        XCTAssertEqual(Set(replicaSpecs.keys), ["Launcher", "Worker"])
        let launcher = try XCTUnwrap(replicaSpecs["Launcher"] as? [String: Any])
        let worker = try XCTUnwrap(replicaSpecs["Worker"] as? [String: Any])
        XCTAssertEqual(launcher["replicas"] as? Int, 1)
        let workers = try XCTUnwrap(worker["replicas"] as? Int)

        func container(_ replica: [String: Any]) throws -> [String: Any] {
            let podSpec = try XCTUnwrap((replica["template"] as? [String: Any])?["spec"] as? [String: Any])
            return try XCTUnwrap((podSpec["containers"] as? [[String: Any]])?.first)
        }
        let launch = try container(launcher)
        var command = (launch["command"] as? [String] ?? []) + (launch["args"] as? [String] ?? [])
        // A `sh -c SCRIPT mpirun ARGS...` wrapper (it turns the kubelet's TERM into USR1 for the ranks).
        if command.count > 3 && command[0].hasSuffix("sh") && command[1] == "-c" {
            XCTAssertTrue(command[2].contains("trap") && command[2].contains("USR1"), "the launcher wrapper should forward TERM as USR1: \(command[2])")
            command.removeFirst(3)
        }
        XCTAssertEqual(command.first, "mpirun", "the launcher runs mpirun: \(command)")
        let np = command.firstIndex(of: "-np").flatMap { command.indices.contains($0 + 1) ? Int(command[$0 + 1]) : nil }
        XCTAssertEqual(np, workers * slots, "-np should be Worker.replicas x slotsPerWorker")
        XCTAssertTrue(command.contains("train") && command.contains("--resume"), "\(command)")

        // Preemption: both pods get a grace period that fits a step and a checkpoint write, and the
        // worker passes the kubelet's TERM on to its ranks instead of dying with sshd.
        for replica in [launcher, worker] {
            let podSpec = try XCTUnwrap((replica["template"] as? [String: Any])?["spec"] as? [String: Any])
            XCTAssertGreaterThanOrEqual(podSpec["terminationGracePeriodSeconds"] as? Int ?? 0, 120)
        }
        let work = try container(worker)
        let workerScript = (work["command"] as? [String] ?? []).joined(separator: " ")
        XCTAssertTrue(workerScript.contains("trap") && workerScript.contains("USR1") && workerScript.contains("sshd"), workerScript)
        XCTAssertNotNil((work["resources"] as? [String: Any])?["limits"], "worker resources")
        let mounts = (work["volumeMounts"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        let podSpec = try XCTUnwrap((worker["template"] as? [String: Any])?["spec"] as? [String: Any])
        let volumes = (podSpec["volumes"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        for name in ["data", "checkpoints"] {
            XCTAssertTrue(mounts.contains(name) && volumes.contains(name), "worker needs a \(name) volume")
        }
    }

    // MARK: Slurm

    func testSbatchScriptIsValidBashWithRequeue() throws {
        let file = path("deploy/slurm/train.sbatch")
        let syntax = try ProcessRunner.run("/bin/bash", ["-n", file], timeout: 30)
        XCTAssertEqual(syntax.status, 0, "bash -n \(file): \(syntax.stderr)")
        let text = try read("deploy/slurm/train.sbatch")
        // Slurm reads #SBATCH lines only up to the first command.
        let lines = text.split(separator: "\n")
        let firstCommand = lines.firstIndex { !$0.hasPrefix("#") && !$0.trimmingCharacters(in: .whitespaces).isEmpty }!
        let directives = lines[..<firstCommand].filter { $0.hasPrefix("#SBATCH ") }
        for option in ["--nodes=", "--ntasks-per-node=", "--cpus-per-task=", "--requeue", "--signal="] {
            XCTAssertTrue(directives.contains { $0.contains(option) }, "no #SBATCH \(option) before the first command")
        }
        for needed in ["OPENBLAS_NUM_THREADS=${SLURM_CPUS_PER_TASK", "srun --mpi=pmix", "mpirun", "--resume auto",
                       "trap checkpoint_and_requeue USR1", "scontrol requeue", "-eq 75"] {
            XCTAssertTrue(text.contains(needed), "\(file) lacks \(needed)")
        }
    }

    /// The sbatch script's time-limit path for real, minus Slurm: USR1 to the batch shell (what
    /// `--signal=B:USR1@300` sends) reaches the ranks through mpirun, fkp checkpoints and exits 75,
    /// and only then does the script requeue. `scontrol` is the one piece that cannot run here: a
    /// stand-in on PATH records its arguments.
    func testSbatchScriptCheckpointsThenRequeuesOnUSR1() throws {
        let dir = TestPaths.temporaryDirectory("sbatch")
        defer { try? FileManager.default.removeItem(at: dir) }
        let bin = dir.appendingPathComponent("bin"), run = dir.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let calls = dir.appendingPathComponent("scontrol-calls")
        try "#!/bin/sh\necho \"$@\" >> \(calls.path)\n".write(to: bin.appendingPathComponent("scontrol"), atomically: true, encoding: .utf8)
        chmod(bin.appendingPathComponent("scontrol").path, 0o755)
        var env = ProcessRunner.cleanEnvironment([
            "LAUNCHER": "mpirun", "FKP": TestPaths.product("fkp").path, "DATA_DIR": "synthetic:160", "RUN_DIR": run.path,
            "TRAIN_ARGS": "--epochs 2 --batch 8 --threads 1 --quiet --no-pictures --checkpoint-every 3 --keep 20",
            "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_CPUS_PER_TASK": "1",
            "OMPI_MCA_plm": "isolated", "OMPI_MCA_rmaps_base_oversubscribe": "1",
        ])
        env["PATH"] = bin.path + ":" + (env["PATH"] ?? "/usr/bin:/bin")
        let job = try BackgroundProcess("/bin/bash", [path("deploy/slurm/train.sbatch")], environment: env)
        job.waitFor(run.appendingPathComponent(CheckpointFile.name(step: 3)))
        kill(job.pid, SIGUSR1)
        let result = job.wait(timeout: 120)
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("finished with status 75"), result.output)
        XCTAssertEqual(try String(contentsOf: calls, encoding: .utf8), "requeue 4242\n")
        let last = try XCTUnwrap(CheckpointFile.list(in: run).last)
        let step = try TrainingCheckpoint.contents(of: try CheckpointFile.read(last), path: last.path).position.step
        XCTAssertTrue((4 ..< 16).contains(step), "checkpoint at step \(step): the run should stop mid-way")
    }

    // MARK: Container

    /// The Dockerfile installs from Scripts/packages.txt (the list setup.sh reads), and names none of
    /// its packages itself, so there is no second list to drift.
    func testDockerfileInstallsFromThePackagesList() throws {
        let dockerfile = try read("deploy/container/Dockerfile")
        let packages = contentLines(try read("Scripts/packages.txt")).map(String.init)
        XCTAssertTrue(packages.contains("libopenmpi-dev"), "Scripts/packages.txt: \(packages)")
        let instructions = contentLines(dockerfile).joined(separator: "\n")
        XCTAssertTrue(instructions.contains("COPY Scripts/packages.txt /tmp/packages.txt"))
        XCTAssertEqual(instructions.components(separatedBy: "/tmp/packages.txt | sed").count - 1, 2,
                       "both stages should install from /tmp/packages.txt")
        for package in packages {
            let pattern = "(^|[\\s\"'])" + NSRegularExpression.escapedPattern(for: package) + "($|[\\s\"'])"
            XCTAssertNil(instructions.range(of: pattern, options: .regularExpression),
                         "the Dockerfile names \(package) itself; it should come from Scripts/packages.txt")
        }
        XCTAssertTrue(instructions.contains(" AS build") && instructions.contains("FROM debian:bookworm-slim AS runtime"))
        XCTAssertTrue(instructions.contains("swift:6.0-bookworm"), "build stage on the Swift bookworm image")
        XCTAssertTrue(instructions.contains(#"ENTRYPOINT ["/usr/local/bin/fkp"]"#))
    }

    /// The runtime stage's library list comes from the binary: on this (Debian) machine the packages
    /// owning the selftest's libraries include OpenMPI's runtime library package.
    func testRuntimePackagesAreDerivedFromTheBinary() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/dpkg-query") else {
            throw XCTSkip("not a Debian system (no dpkg-query)")
        }
        let selftest = TestPaths.product("swiftmpi-selftest").path
        let result = try ProcessRunner.run("/bin/bash", [path("deploy/container/runtime-packages.sh"), selftest], timeout: 60)
        XCTAssertEqual(result.status, 0, result.stderr)
        let packages = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(packages.contains { $0.hasPrefix("libopenmpi") && !$0.hasSuffix("-dev") }, "\(packages)")
        XCTAssertFalse(packages.contains { $0.hasSuffix("-dev") }, "runtime needs no -dev packages: \(packages)")
    }

    // MARK: Hostfiles

    func testHostfilesParse() throws {
        let folder = path("hostfiles")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        XCTAssertTrue(Set(["localhost", "example-cluster", "local-cluster"]).isSubset(of: Set(names)), "\(names)")
        for name in names {
            let text = try read("hostfiles/\(name)")
            XCTAssertTrue(text.hasPrefix("#"), "hostfiles/\(name) should start with a comment saying what it is for")
            var hosts: [String] = []
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let content = line.trimmingCharacters(in: .whitespaces)
                if content.isEmpty || content.hasPrefix("#") { continue }
                let fields = content.split(separator: " ")
                XCTAssertTrue(fields.count == 2 && fields[1].range(of: #"^slots=[1-9][0-9]*$"#, options: .regularExpression) != nil,
                              "hostfiles/\(name):\(number + 1): expected `HOST slots=N`, got `\(line)`")
                hosts.append(String(fields[0]))
            }
            XCTAssertFalse(hosts.isEmpty, "hostfiles/\(name) lists no host")
            XCTAssertEqual(Set(hosts).count, hosts.count, "hostfiles/\(name) lists a host twice")
            if name == "local-cluster" {
                // The namespace hosts share one private /24 (run.sh derives the subnet from the first).
                let prefixes = Set(hosts.map { $0.split(separator: ".").prefix(3).joined(separator: ".") })
                XCTAssertEqual(prefixes.count, 1, "local-cluster hosts must share one /24: \(hosts)")
                XCTAssertTrue(hosts.allSatisfy { $0.hasPrefix("10.") && $0.split(separator: ".").count == 4 }, "\(hosts)")
                XCTAssertGreaterThanOrEqual(hosts.count, 2)
            }
        }
    }
}
