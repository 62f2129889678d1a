/// Activation recomputation (`fkp train --recompute blocks`; PyTorch's `torch.utils.checkpoint`).
///
/// In this engine every layer keeps its output and its input gradient from step to step, so a
/// model's activation memory is the sum of all of them (see MemoryLedger). A block named here
/// instead runs its forward, copies its output into a buffer of its own and frees everything
/// inside it (`Module.releaseBuffers`) when the next block starts. Its backward runs the forward
/// again from the kept input, then the real backward (a Sequential frees each child as soon as
/// backward is past it), copies the input gradient out and frees the inside again. Between the
/// two passes a block holds only its output and a reference to its input (the previous layer's
/// output, which stays anyway), and at any moment at most one block's inside is allocated.
///
/// Gradients are bit-identical to a run without recomputation at the same thread count: the
/// second forward sees the same input, weights and batch, computes the same batch statistics, and
/// starts from the random generator state of the first (dropout draws the same mask). BatchNorm
/// leaves its running statistics alone the second time (`Context.recomputing`). The cost is one
/// more forward of every block but the last, and the two copies. The blocks' insides come from
/// one arena whose pages stay mapped (`Tensor.inBlockArena`), so freeing and allocating them
/// again costs no page faults.
///
/// Models name their blocks (`Network.blocks`); the call forms `module(x, ctx)` and
/// `module.gradient(dy, ctx)` route those through here, so their forward and backward stay as
/// they are.
public final class Recomputation {
    /// What one block keeps between its forward and its backward.
    final class Block {
        var input: Tensor?
        let output = Tensor(shape: [0])
        let gradInput = Tensor(shape: [0])
        var random = RandomGenerator(seed: 0)
    }

    private var blocks: [ObjectIdentifier: Block] = [:]
    /// The block whose forward ran last and whose inside is still allocated: it is freed when the
    /// next block's forward starts. If backward comes to it first (it is the last block of the
    /// model, as PyTorch's checkpoint_sequential leaves its last segment), nothing needs
    /// recomputing: one block's forward less per step, and no more memory at the peak (that block
    /// would be allocated in full during its backward anyway).
    private var unfreed: Module?

    public init(blocks modules: [Module]) {
        for module in modules { blocks[ObjectIdentifier(module)] = Block() }
    }

    /// Number of blocks recomputed.
    public var count: Int { blocks.count }

    @inline(__always)
    func block(_ module: Module) -> Block? { blocks[ObjectIdentifier(module)] }

    public func contains(_ module: Module) -> Bool { block(module) != nil }

    // x → y, kept as a copy; the block's own buffers are freed when the next block starts.
    func forward(_ module: Module, _ block: Block, _ x: Tensor, _ ctx: Context) -> Tensor {
        unfreed?.releaseBuffers()
        block.random = ctx.random
        let y = Tensor.inBlockArena { module.forward(x, ctx) }
        block.input = ctx.training ? x : nil
        block.output.resize(y.shape)
        block.output.copy(from: y)
        unfreed = module
        return block.output
    }

    // dy → dx: forward again from the kept input (same generator state, running statistics left
    // alone) unless the block is still allocated, backward, dx copied out, the block freed.
    func backward(_ module: Module, _ block: Block, _ dy: Tensor, _ ctx: Context) -> Tensor {
        guard let x = block.input else { preconditionFailure("\(module.typeDescription): backward without a training forward") }
        if unfreed !== module {
            unfreed?.releaseBuffers()
            let after = ctx.random
            ctx.random = block.random
            ctx.recomputing = true
            _ = Tensor.inBlockArena { module.forward(x, ctx) }
            ctx.recomputing = false
            ctx.random = after
        }
        unfreed = nil
        ctx.earlyRelease = module
        let dx = Tensor.inBlockArena { module.backward(dy, ctx) }
        ctx.earlyRelease = nil
        block.gradInput.resize(dx.shape)
        block.gradInput.copy(from: dx)
        module.releaseBuffers()
        block.input = nil
        return block.gradInput
    }
}

extension Module {
    /// `planMemory` as a container calls it for a child: a block that the ledger's recomputation
    /// names is planned on a ledger of its own, whose buffers exist only while that block runs
    /// (`MemoryLedger.recomputedBlock`); the outer ledger keeps the block's output and input
    /// gradient. Inside a block each module gets a ledger of its own, for its lifetime.
    public func plan(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        if let recomputation = ledger.recomputation, recomputation.contains(self) {
            let inside = MemoryLedger(inside: ledger, releasesEarly: self is Sequential)
            let y = planMemory(x, inside)
            ledger.recomputedBlock(typeDescription, inside: inside, input: x, output: y, passesGradient: firstLayerComputesInputGradient)
            return y
        }
        guard ledger.isInsideRecomputedBlock else { return planMemory(x, ledger) }
        let own = MemoryLedger(inside: ledger, releasesEarly: ledger.releasesEarly && self is Sequential)
        let y = planMemory(x, own)
        ledger.absorb(own)
        return y
    }

    /// Whether backward returns a real input gradient: false when the first layer inside skips it
    /// (a network's first layer; see `InputGradientOptional`).
    var firstLayerComputesInputGradient: Bool {
        var module: Module = self
        while let first = module.children.first?.module { module = first }
        return (module as? InputGradientOptional)?.computesInputGradient ?? true
    }
}
