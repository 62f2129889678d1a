import CMPI
import Foundation

/// Errors raised by the wrapper. `.mpi` carries MPI's own error string; `.misuse` is raised
/// before MPI is called, for arguments that would make MPI abort or hang.
public enum MPIError: Error, CustomStringConvertible, Equatable {
    case mpi(function: String, code: Int32, message: String)
    case misuse(String)

    public var description: String {
        switch self {
        case let .mpi(function, code, message): return "\(function) failed (MPI error \(code)): \(message)"
        case let .misuse(message): return "MPI misuse: \(message)"
        }
    }
}

/// Thread support levels, in MPI's order (single < funneled < serialized < multiple).
public enum ThreadLevel: Int, Comparable, Sendable, CustomStringConvertible {
    case single = 0, funneled, serialized, multiple

    init(mpiValue: Int32) {
        switch Int(mpiValue) {
        case Int(MPI_THREAD_MULTIPLE): self = .multiple
        case Int(MPI_THREAD_SERIALIZED): self = .serialized
        case Int(MPI_THREAD_FUNNELED): self = .funneled
        default: self = .single
        }
    }

    var mpiValue: Int32 {
        switch self {
        case .single: return Int32(MPI_THREAD_SINGLE)
        case .funneled: return Int32(MPI_THREAD_FUNNELED)
        case .serialized: return Int32(MPI_THREAD_SERIALIZED)
        case .multiple: return Int32(MPI_THREAD_MULTIPLE)
        }
    }

    public static func < (a: ThreadLevel, b: ThreadLevel) -> Bool { a.rawValue < b.rawValue }
    public var description: String { ["single", "funneled", "serialized", "multiple"][rawValue] }
}

/// Process-wide MPI state. MPI may be initialised once per process and never again after
/// finalisation, so initialisation is idempotent and finalisation happens at exit.
///
///     try MPI.initialize(threadLevel: .funneled)   // optional: `MPI.world` initialises too
///     let world = MPI.world                         // rank, size, processorName
///     try world.allreduce(&gradients)               // [Float] or UnsafeMutableBufferPointer, in place
///     let hosts = try world.allgather(world.processorName)
///     if world.isRoot { print(hosts) }
///
/// The same binary runs alone (a singleton world of one) or under `mpirun -np N`. Errors come
/// back as `MPIError` (the world's error handler is set to return), never as an abort.
public enum MPI {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var grantedLevel: ThreadLevel?
    nonisolated(unsafe) private static var worldCommunicator: Communicator?

    /// Initialises MPI once (later calls return the level granted the first time). Works under
    /// `mpirun` and as a singleton (a plain `./program` is a world of size 1). The granted level
    /// may be lower than the one requested: callers that need threads must check it.
    @discardableResult
    public static func initialize(threadLevel: ThreadLevel = .funneled) throws -> ThreadLevel {
        lock.lock(); defer { lock.unlock() }
        if let level = grantedLevel { return level }
        // MPI cannot be initialised again once finalised; any call would abort the process.
        guard !isFinalized else { throw MPIError.misuse("MPI was already finalized in this process") }
        var already: Int32 = 0
        MPI_Initialized(&already)
        var provided: Int32 = threadLevel.mpiValue
        if already == 0 {
            launcherSnapshot = environmentNamesLauncher()
            // A singleton never launches daemons on other hosts; without this, OpenMPI looks for
            // an ssh/rsh agent even for `./program` and fails on machines without one.
            if launcherSnapshot == false { setenv("OMPI_MCA_plm", "isolated", 0) }
            let code = MPI_Init_thread(nil, nil, threadLevel.mpiValue, &provided)
            guard code == MPI_SUCCESS else {
                throw MPIError.mpi(function: "MPI_Init_thread", code: code, message: "initialisation failed")
            }
            // Finalise at exit (the process owns MPI); never earlier, since nothing may follow it.
            atexit { MPI.finalizeAtExit() }
        } else {
            // Someone else (a host program, a C library) initialised MPI: use it, leave finalising to them.
            MPI_Query_thread(&provided)
        }
        let world = Communicator(handle: fkp_comm_world())
        // Errors come back as return codes (turned into Swift errors) instead of aborting the job.
        MPI_Comm_set_errhandler(world.handle, fkp_errors_return())
        worldCommunicator = world
        let level = ThreadLevel(mpiValue: provided)
        grantedLevel = level
        return level
    }

    /// The thread level MPI granted (single before initialisation).
    public static var grantedThreadLevel: ThreadLevel { lock.withLock { grantedLevel ?? .single } }

    /// The world communicator; initialises MPI (funneled) on first use.
    public static var world: Communicator {
        if let world = lock.withLock({ worldCommunicator }) { return world }
        do { try initialize() } catch { fatalError("\(error)") }
        return lock.withLock { worldCommunicator! }
    }

    public static var isInitialized: Bool {
        var flag: Int32 = 0
        MPI_Initialized(&flag)
        return flag != 0
    }

    public static var isFinalized: Bool {
        var flag: Int32 = 0
        MPI_Finalized(&flag)
        return flag != 0
    }

    /// Wall-clock time in seconds (MPI_Wtime).
    public static var time: Double { MPI_Wtime() }

    /// The MPI library's version string (e.g. "Open MPI v4.1.4, ...").
    public static var libraryVersion: String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING) + 1)
        var length: Int32 = 0
        MPI_Get_library_version(&buffer, &length)
        return String(cString: buffer).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// True when this process was started by a process manager (mpirun, srun) rather than as a
    /// singleton. Decided from the environment as it was before MPI_Init, because a singleton
    /// init sets PMIx variables of its own.
    public static var launchedByProcessManager: Bool {
        lock.withLock { launcherSnapshot } ?? environmentNamesLauncher()
    }

    nonisolated(unsafe) private static var launcherSnapshot: Bool?

    private static func environmentNamesLauncher() -> Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil || env["PMI_RANK"] != nil
    }

    private static func finalizeAtExit() {
        finalizing.withLock { if isInitialized && !isFinalized { MPI_Finalize() } }
    }

    /// Runs `body` (MPI calls of a helper thread) unless MPI has been finalised, and keeps
    /// MPI_Finalize at exit from starting while it runs.
    static func unlessFinalized(_ body: () -> Void) {
        finalizing.withLock { if !isFinalized { body() } }
    }
    private static let finalizing = NSLock()

    /// Aborts every process of the job with `code` (MPI_Abort on the world communicator).
    public static func abort(code: Int32) -> Never {
        if isInitialized && !isFinalized { MPI_Abort(fkp_comm_world(), code) }
        exit(code)
    }

    /// Turns an MPI return code into a Swift error carrying MPI's own error string. Public so that
    /// raw CMPI calls (the escape hatch for what the wrapper lacks) report errors the same way.
    @inline(__always)
    public static func check(_ code: Int32, _ function: @autoclosure () -> String) throws {
        guard code != MPI_SUCCESS else { return }
        throw MPIError.mpi(function: function(), code: code, message: errorString(code))
    }

    /// MPI's own description of an error code (MPI_Error_string).
    public static func errorString(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(fkp_max_error_string()) + 1)
        var length: Int32 = 0
        guard MPI_Error_string(code, &buffer, &length) == MPI_SUCCESS else { return "unknown error \(code)" }
        return String(cString: buffer)
    }
}
