import Foundation

/// How many threads a rank should use when the user does not say: the cores it may run on.
/// mpirun pins each rank to its cores by default (`--map-by ...:PE=N --bind-to core`, Slurm's
/// `--cpu-bind=cores`), and the affinity mask says how many. An unbound rank sees the whole node,
/// and then the node's cores are shared by the ranks on it (`OMPI_COMM_WORLD_LOCAL_SIZE`).
public enum ThreadBudget {
    /// The thread count and where it came from (printed at start).
    public static func defaultThreads(environment: [String: String] = ProcessInfo.processInfo.environment) -> (threads: Int, reason: String) {
        if let text = environment["OPENBLAS_NUM_THREADS"], let n = Int(text), n > 0 {
            return (n, "OPENBLAS_NUM_THREADS")
        }
        let online = ProcessInfo.processInfo.activeProcessorCount
        let allowed = affinityCores() ?? online
        let localRanks = environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) } ?? 1
        if localRanks > 1 && allowed >= online {
            return (max(1, online / localRanks), "\(online) cores ÷ \(localRanks) ranks on this node")
        }
        return (max(1, allowed), allowed == online ? "the cores of this machine" : "the cores this rank is bound to")
    }

    /// The number of CPUs in this process's affinity mask, nil where unknown. Read from
    /// /proc/self/status (`Cpus_allowed_list: 0-3,8`): sched_getaffinity is a GNU extension that
    /// Swift's Glibc module does not import.
    public static func affinityCores() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else { return nil }
        return cpuCount(list: String(line.dropFirst("Cpus_allowed_list:".count)))
    }

    /// Counts the CPUs of a Linux CPU list like "0-3,8,10-11" (nil when malformed).
    public static func cpuCount(list: String) -> Int? {
        var count = 0
        for part in list.trimmingCharacters(in: .whitespaces).split(separator: ",") {
            let bounds = part.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard let first = bounds.first ?? nil, bounds.count <= 2, let last = bounds.last ?? nil, last >= first else { return nil }
            count += last - first + 1
        }
        return count > 0 ? count : nil
    }
}
