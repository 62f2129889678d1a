import CKernels

/// Instruction counting under valgrind's callgrind (`Scripts/bench-callgrind` runs
/// `fkp bench train` with `--instr-atstart=no`, and the bench switches instrumentation on for its
/// timed steps only). Outside valgrind the requests are a few instructions that do nothing.
public enum Callgrind {
    /// False when fkp was built without valgrind's headers: then nothing is ever counted.
    public static var hooksCompiled: Bool { fkp_callgrind_hooks() != 0 }
    public static func startInstrumentation() { fkp_callgrind_start() }
    public static func stopInstrumentation() { fkp_callgrind_stop() }
}
