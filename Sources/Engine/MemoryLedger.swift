import Synchronization

/// What a model keeps in memory for one training step, worked out from the layer shapes alone:
/// nothing is allocated and nothing runs. Every layer reports, in `planMemory` next to its
/// `forward` and `backward`, the buffers those two passes allocate for an input of a given shape,
/// sized by the same expressions they use; a test runs one real step of every model and checks the
/// ledger against what the engine actually allocated (`EngineAllocations`).
///
/// Why a ledger of buffers and not a count of "activations": in this engine every layer owns its
/// output and its input gradient and keeps both from step to step (they are resized, never
/// freed), so after the first step everything a layer ever allocated is resident at once. The sum
/// of what the layers own *is* the activation memory, with no liveness analysis to get wrong.
public final class MemoryLedger {
    /// What a buffer is for (printed separately by the memory plan).
    public enum Role: String, CaseIterable, Sendable {
        /// A layer's output: the activation the next layer reads, and keeps for its backward.
        case output
        /// What backward needs beyond the input: max-pool argmax, dropout masks, batch statistics.
        case saved
        /// A layer's input gradient (and other gradient-sized buffers backward writes).
        case gradient
    }

    public struct Entry: Sendable {
        public var layer: String
        public var role: Role
        public var bytes: Int
    }

    /// Threads of the engine's pool: convolutions give every worker its own scratch.
    public let threads: Int
    public private(set) var entries: [Entry] = []
    /// The largest scratch request of any forward or backward: `Workspace` grows to it and keeps it.
    public private(set) var workspaceBytes = 0
    /// The layer that asks for the most scratch (printed with the plan).
    public private(set) var workspaceLayer = ""

    /// `--recompute blocks`: the blocks that `Module.plan` plans on a ledger of their own.
    public var recomputation: Recomputation?
    /// Inside a recomputed block, every module is planned on a ledger of its own, whose
    /// `enclosing` is its parent's: so that the block's peak follows the order in which backward
    /// frees buffers (`lifetime`), and so that a module can record a buffer that outlives the
    /// block on the model's ledger (`outermost`; the U-Net's skip copies).
    public private(set) weak var enclosing: MemoryLedger?
    /// This ledger's module is a Sequential that frees each child's buffers once backward has
    /// moved past it (a recomputed block, or a Sequential child of one; see Sequential.backward).
    let releasesEarly: Bool
    /// The lifetimes of the modules planned here, in forward order (inside recomputed blocks).
    private var childLifetimes: [Lifetime] = []
    /// The most that any recomputed block holds inside itself while it runs (its second forward
    /// and its backward); one block at a time, so only the largest counts.
    public private(set) var largestBlockBytes = 0
    /// That block (printed with the plan).
    public private(set) var largestBlock = ""

    public init(threads: Int) {
        precondition(threads >= 1, "MemoryLedger: threads must be at least 1")
        self.threads = threads
        enclosing = nil
        releasesEarly = false
    }

    init(inside enclosing: MemoryLedger, releasesEarly: Bool) {
        threads = enclosing.threads
        self.enclosing = enclosing
        self.releasesEarly = releasesEarly
    }

    public var isInsideRecomputedBlock: Bool { enclosing != nil }
    /// The model's ledger.
    public var outermost: MemoryLedger { enclosing?.outermost ?? self }

    /// What a module holds over a step: after its forward, at most during its backward, and after
    /// its backward until its parent frees it; and whether its backward hands on the gradient it
    /// got instead of making one (then nothing after it can be freed yet).
    struct Lifetime {
        var forward: Int, peak: Int, remaining: Int
        var passesGradientOn: Bool
    }

    /// A module that frees nothing early holds all its buffers from its backward on. A Sequential
    /// that frees early holds, during child i's backward, the forward buffers of children 0...i−1,
    /// child i at its peak, and what later children hold that backward still reads: everything up
    /// to the first later child that made a new gradient (Sequential.backward frees the rest).
    var lifetime: Lifetime {
        guard releasesEarly else {
            let forward = bytes(.output) + bytes(.saved)
            return Lifetime(forward: forward, peak: keptBytes, remaining: keptBytes, passesGradientOn: bytes(.gradient) == 0)
        }
        let forward = childLifetimes.map(\.forward).reduce(0, +)
        var live = forward, peak = forward, unreleased = childLifetimes.count
        for (i, child) in childLifetimes.enumerated().reversed() {
            peak = max(peak, live - child.forward + child.peak)
            live += child.remaining - child.forward
            if !child.passesGradientOn {
                for later in childLifetimes[(i + 1) ..< unreleased] { live -= later.remaining }
                unreleased = i + 1
            }
        }
        return Lifetime(forward: forward, peak: peak, remaining: live, passesGradientOn: childLifetimes.allSatisfy(\.passesGradientOn))
    }

    /// Adds a module planned on its own ledger (`inside` this one): its buffers, its workspace
    /// requests and its lifetime.
    func absorb(_ module: MemoryLedger) {
        entries += module.entries
        if module.workspaceBytes > workspaceBytes { workspaceBytes = module.workspaceBytes; workspaceLayer = module.workspaceLayer }
        childLifetimes.append(module.lifetime)
    }

    /// Records a buffer of `floats` Float32 values that `layer` allocates and keeps.
    public func keep(_ role: Role, floats: Int, _ layer: @autoclosure () -> String) {
        keep(role, bytes: floats * MemoryLayout<Float>.stride, layer())
    }

    public func keep(_ role: Role, bytes: Int, _ layer: @autoclosure () -> String) {
        guard bytes > 0 else { return }
        entries.append(Entry(layer: layer(), role: role, bytes: bytes))
    }

    /// Records a request for `floats` of the shared `Workspace` (only the largest one costs memory).
    public func workspace(floats: Int, _ layer: @autoclosure () -> String) {
        let bytes = floats * MemoryLayout<Float>.stride
        if bytes > workspaceBytes { workspaceBytes = bytes; workspaceLayer = layer() }
    }

    /// Records a recomputed block planned on `inside`: this ledger keeps the block's output copy
    /// and its input gradient copy (none when its first layer skips it), the workspace grows to
    /// the block's largest request, and what the block holds inside counts only while it runs.
    func recomputedBlock(_ name: String, inside: MemoryLedger, input: [Int], output: [Int], passesGradient: Bool) {
        keep(.output, floats: Tensor.elementCount(output), "\(name) (recomputed): its output")
        if passesGradient { keep(.gradient, floats: Tensor.elementCount(input), "\(name) (recomputed): its input gradient") }
        if inside.workspaceBytes > workspaceBytes { workspaceBytes = inside.workspaceBytes; workspaceLayer = inside.workspaceLayer }
        let peak = inside.lifetime.peak
        if peak > largestBlockBytes { largestBlockBytes = peak; largestBlock = name }
    }

    public func bytes(_ role: Role) -> Int { entries.lazy.filter { $0.role == role }.map(\.bytes).reduce(0, +) }

    /// Everything the layers keep (outputs, saved, gradients), without the workspace.
    public var keptBytes: Int { entries.lazy.map(\.bytes).reduce(0, +) }
}

/// Bytes the engine has allocated and not yet freed: tensors, the workspace and max-pool indices,
/// counted where they are allocated. It is not used by training; it is the independent measure the
/// memory ledger is tested against (one real forward and backward must allocate what the ledger
/// says), and costs one atomic add per allocation, which happens only when a buffer grows.
public enum EngineAllocations {
    private static let live = Atomic<Int>(0)

    private static let peak = Atomic<Int>(0)

    public static var liveBytes: Int { live.load(ordering: .relaxed) }
    /// The most that was live at once since the last `resetPeak` (recomputed blocks allocate and
    /// free within a step, so their cost shows only here).
    public static var peakBytes: Int { peak.load(ordering: .relaxed) }
    public static func resetPeak() { peak.store(liveBytes, ordering: .relaxed) }

    @inline(__always)
    static func add(_ bytes: Int) {
        let now = live.add(bytes, ordering: .relaxed).newValue
        if bytes > 0 { peak.max(now, ordering: .relaxed) }
    }
}
