import Foundation

/// Paths and process helpers shared by the test targets.
public enum TestPaths {
    /// The repository root (this file is Tests/TestSupport/TestSupport.swift).
    public static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `../shared/data` beside the checkout: real faces for tests (read-only, never copied into the repo).
    public static let sharedData: URL = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data")

    /// The build products folder (where `fkp` and `swiftmpi-selftest` live): the folder that holds
    /// the running `.xctest` bundle.
    public static var products: URL {
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    public static func product(_ name: String) -> URL { products.appendingPathComponent(name) }

    /// A fresh temporary directory, removed by the caller (or left for inspection on failure).
    public static func temporaryDirectory(_ prefix: String = "fkp-test") -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// The result of a finished child process.
public struct ProcessResult {
    public let status: Int32
    public let stdout: String
    public let stderr: String
    public var output: String { stdout + stderr }
}

public enum ProcessRunner {
    /// Environment for child processes: a test process that initialised MPI as a singleton carries
    /// OMPI_/PMIX_ variables that make a child `mpirun` exit silently, so they are removed.
    public static func cleanEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { key, _ in
            !(key.hasPrefix("OMPI_MCA_") || key.hasPrefix("PMIX_") || key.hasPrefix("OMPI_COMM_")
              || key.hasPrefix("OMPI_") && !key.hasPrefix("OMPI_ALLOW_RUN_AS_ROOT"))
        }
        // mpirun refuses to run as root without these (CI runs as root).
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["OPENBLAS_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] ?? "1"
        for (key, value) in extra { env[key] = value }
        return env
    }

    /// Runs `executable` with `arguments`, waits at most `timeout` seconds (then kills it), and
    /// returns its exit status and output.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           currentDirectory: URL? = nil, timeout: TimeInterval = 300) throws -> ProcessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment ?? cleanEnvironment()
        if let currentDirectory { process.currentDirectoryURL = currentDirectory }
        let outURL = TestPaths.temporaryDirectory("proc").appendingPathComponent("out")
        let errURL = outURL.deletingLastPathComponent().appendingPathComponent("err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            usleep(500_000)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        try outHandle.close(); try errHandle.close()
        let stdout = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        var stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        if Date() >= deadline { stderr += "\n[killed after \(Int(timeout)) s timeout]" }
        try? FileManager.default.removeItem(at: outURL.deletingLastPathComponent())
        return ProcessResult(status: process.terminationStatus, stdout: stdout, stderr: stderr)
    }

    /// Runs a built product under `mpirun -np ranks` on this machine (oversubscribed, one
    /// OpenBLAS thread per rank, no ssh needed).
    public static func mpirun(ranks: Int, product: String, _ arguments: [String], extraEnvironment: [String: String] = [:],
                              timeout: TimeInterval = 300) throws -> ProcessResult {
        let mpirunArgs = ["--oversubscribe", "--bind-to", "none", "-np", String(ranks),
                          "--mca", "plm", "isolated", "-x", "OPENBLAS_NUM_THREADS",
                          TestPaths.product(product).path] + arguments
        return try run("/usr/bin/mpirun", mpirunArgs, environment: cleanEnvironment(extraEnvironment), timeout: timeout)
    }
}

/// The Python side of the tests (Scripts/*.py with PyTorch, TensorBoard, onnxruntime...): run with
/// the `python3` first on PATH, which Scripts/test.sh makes .build/python's. Never skipped: where
/// a package is missing the test fails and says how to get it.
public enum PythonScript {
    public static func run(_ name: String, _ arguments: [String], timeout: TimeInterval = 300) throws -> ProcessResult {
        let script = TestPaths.repoRoot.appendingPathComponent("Scripts/\(name)").path
        let result = try ProcessRunner.run("/usr/bin/env", ["python3", script] + arguments, timeout: timeout)
        guard result.stderr.contains("ModuleNotFoundError") else { return result }
        return ProcessResult(status: result.status, stdout: result.stdout, stderr: result.stderr
            + "\n[run the tests with Scripts/test.sh: it makes the Python environment .build/python]")
    }
}
