/// A layer or a block of layers with explicit forward and backward passes (llm.c / darknet style):
/// no autograd. `forward` keeps what `backward` needs; `backward` takes the gradient of the loss
/// with respect to the output, *adds* parameter gradients into the store's `grads`, and returns
/// the gradient with respect to the input (the same tensor object each call; valid until the
/// next backward).
public protocol Module: AnyObject {
    /// PyTorch's one-line repr of the module itself, e.g. "Conv2d(1, 16, kernel_size=(3, 3), stride=(2, 2))"
    /// or "Sequential" for containers.
    var typeDescription: String { get }
    /// Named children in PyTorch's order (for the printed summary); leaves have none.
    var children: [(name: String, module: Module)] { get }
    func forward(_ input: Tensor, _ ctx: Context) -> Tensor
    func backward(_ gradOutput: Tensor, _ ctx: Context) -> Tensor
    /// The memory a training forward and backward on an input of shape `input` allocate: records
    /// into `ledger` every buffer this module keeps and every workspace request, computed from the
    /// shapes with the same expressions the two passes use, and returns the output shape. Runs
    /// nothing and allocates nothing (`fkp train --plan` sizes runs that would not fit).
    func planMemory(_ input: [Int], _ ledger: MemoryLedger) -> [Int]
    /// Frees every buffer that `planMemory` lists (the next forward allocates them again), so that
    /// `--recompute blocks` holds only a block's input and output between its forward and its
    /// backward. Containers release their children; layers with buffers release their own.
    func releaseBuffers()
}

extension Module {
    public var children: [(name: String, module: Module)] { [] }

    public func releaseBuffers() { releaseChildren() }
    public func releaseChildren() { for (_, child) in children { child.releaseBuffers() } }

    /// PyTorch's module repr: `Name(\n  (child): ...\n)` with two-space indentation.
    public func summary(indent: Int = 0) -> String {
        let kids = children
        if kids.isEmpty { return typeDescription }
        let pad = String(repeating: " ", count: indent + 2)
        var lines = ["\(typeDescription)("]
        for (name, module) in kids {
            lines.append("\(pad)(\(name)): \(module.summary(indent: indent + 2))")
        }
        lines.append(String(repeating: " ", count: indent) + ")")
        return lines.joined(separator: "\n")
    }
}

/// Modules whose input gradient can be skipped (the first layer of a network: nothing upstream
/// needs it, and for a convolution it is a GEMM plus col2im saved).
public protocol InputGradientOptional: AnyObject {
    var computesInputGradient: Bool { get set }
}

/// Per-model state shared by its layers during a step.
public final class Context {
    /// Training mode: batch statistics in BatchNorm, dropout on, activations kept for backward.
    public var training: Bool
    /// Dropout masks come from here: seeded, and saved in checkpoints for exact resume.
    public var random: RandomGenerator
    /// Scratch memory shared by all layers (im2col columns), sized to the largest request.
    public let workspace = Workspace()
    /// When set, layers called as `layer(x, ctx)` / `layer.gradient(dy, ctx)` record their time
    /// here (`fkp bench train --profile`).
    public var profile: LayerProfile?
    /// Called by containers after each child's backward: the child's parameter gradients are final
    /// then, so data parallelism can start their allreduce while backward goes on. nil: no-op.
    public var backwardProgress: ((Module) -> Void)?
    /// `--recompute blocks`: the blocks whose inner activations are dropped after forward and
    /// recomputed in backward. nil: every layer keeps its buffers (the default).
    public var recomputation: Recomputation?
    /// True while a block's forward runs again for its backward: BatchNorm then leaves its running
    /// statistics alone (they moved in the first forward).
    public internal(set) var recomputing = false
    /// During a recomputed block's backward, the Sequential that frees each child's buffers as soon
    /// as backward has moved past it: the block, then each Sequential child of one that does.
    var earlyRelease: Module?

    public init(training: Bool = true, seed: UInt64 = 0) {
        self.training = training
        random = RandomGenerator(seed: seed)
    }
}

/// One growable scratch buffer. Layers use it only within one forward or backward call.
public final class Workspace {
    private var storage: UnsafeMutablePointer<Float>
    public private(set) var capacity: Int

    init() {
        capacity = 0
        storage = .allocate(capacity: 1)
    }

    deinit {
        storage.deallocate()
        EngineAllocations.add(-capacity * MemoryLayout<Float>.stride)
    }

    /// Returns at least `count` floats (contents unspecified).
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            storage.deallocate()
            storage = .allocate(capacity: count)
            EngineAllocations.add((count - capacity) * MemoryLayout<Float>.stride)
            capacity = count
        }
        return storage
    }
}
