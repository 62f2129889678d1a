import COpenBLAS
import Foundation

/// Which OpenBLAS kernels run. OpenBLAS built with DYNAMIC_ARCH (Debian's, Ubuntu's) picks its
/// kernels from the CPU's model number when the library loads. A CPU newer than the library
/// (OpenBLAS 0.3.21 of Debian 12 on a Sapphire Rapids VM, seen here) gets the generic SSE3
/// "Prescott" kernels although it has AVX-512: sgemm 1024³ at 65 instead of 295 GFLOP/s on 2
/// cores, every model 2.5–3.5× slower. OpenBLAS reads `OPENBLAS_CORETYPE` only while loading,
/// so the fix is to set it and execute the program again, before any work (`fkp` does this first
/// thing in main; mpirun ranks keep their pid). A user's own `OPENBLAS_CORETYPE` is never changed.
public enum BLASCore {
    /// The kernels OpenBLAS is running (its own name for them, e.g. "SkylakeX", "Prescott").
    public static var current: String { String(cString: openblas_get_corename()) }

    /// Set (to the kernels OpenBLAS had picked) in the environment of a process that fkp started again.
    public static let replacedVariable = "FKP_OPENBLAS_DETECTED_CORE"

    /// The core type to ask for when OpenBLAS runs kernels older than the CPU's instruction set;
    /// nil when it already runs the best it has for this CPU. `flags`: /proc/cpuinfo's flags (the
    /// kernel lists AVX-512 there only when the operating system saves its registers).
    public static func better(than core: String, flags: Set<String>) -> String? {
        let avx512 = ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
        let avx2 = flags.contains("avx2") && flags.contains("fma")
        switch core.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return nil
        case "haswell", "zen": return avx512 ? "SkylakeX" : nil
        default: return avx512 ? "SkylakeX" : avx2 ? "Haswell" : nil
        }
    }

    /// The flags of the first processor in /proc/cpuinfo (empty where there is none).
    public static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// Executes this program again with `OPENBLAS_CORETYPE` set when OpenBLAS picked kernels older
    /// than the CPU. Returns (doing nothing) when they are right, when the user set the variable,
    /// or when the program cannot be executed again.
    public static func reexecutingWithBetterKernelsIfNeeded() {
        guard getenv("OPENBLAS_CORETYPE") == nil, let better = better(than: current, flags: cpuFlags()) else { return }
        setenv("OPENBLAS_CORETYPE", better, 1)
        setenv(replacedVariable, current, 1)
        let arguments = CommandLine.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", argv)
        // Only reached when execv failed: go on with the kernels OpenBLAS picked.
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv(replacedVariable)
    }

    /// One line for logs: the kernels in use, and what fkp replaced.
    public static var description: String {
        if let detected = getenv(replacedVariable) {
            if String(cString: detected) == current { return "\(current) (this OpenBLAS ignores OPENBLAS_CORETYPE)" }
            return "\(current) (OpenBLAS had picked \(String(cString: detected)) for this CPU; fkp set OPENBLAS_CORETYPE)"
        }
        return current
    }
}
