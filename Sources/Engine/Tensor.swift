import CKernels
import Synchronization

/// A Float32 tensor with a shape and a contiguous buffer that is reused across steps.
///
/// Layout. Shapes are written as PyTorch writes them, `[N, C, H, W]` for images and `[N, F]` for
/// features, but 4-D activations *inside* a model are stored channel-major, C×N×H×W ("CNHW"):
/// a convolution is then one GEMM over the whole batch (`W[Cout, K] · col[K, N·H·W]` lands
/// directly in CNHW), BatchNorm reduces each channel over one contiguous run, and channel
/// concatenation is an append. Models take NCHW input and return NCHW output; with one input
/// channel (grey faces) both layouts are the same bytes. `[N, F]` tensors are row-major.
public final class Tensor {
    public private(set) var shape: [Int]
    public private(set) var count: Int
    public private(set) var capacity: Int
    public private(set) var data: UnsafeMutablePointer<Float>
    /// Where the storage comes from, and so how it is given back.
    private var storageKind: StorageKind

    enum StorageKind { case heap, mapped, arena }

    public init(shape: [Int]) {
        let n = Tensor.elementCount(shape)
        self.shape = shape
        count = n
        capacity = max(n, 1)
        (data, storageKind) = Tensor.storage(capacity)
        EngineAllocations.add(capacity * MemoryLayout<Float>.stride)
    }

    /// Once set (when a network recomputes blocks, which free and allocate their buffers every step),
    /// buffers of 1 MiB or more are mapped on their own with huge pages advised, and unmapped when
    /// freed. Through malloc they would either come back from its heap, whose resident set stays
    /// at a fragmented high-water mark (up to 20 % above the plan), or, past its mmap threshold,
    /// be faulted in 4 KiB at a time on every step (U-Net 96² b8: 63,000 faults, 1.64× the step).
    /// Inside a recomputed block they come from the block arena instead (`inBlockArena`).
    public static func mapLargeBuffers() { mapping.store(true, ordering: .relaxed) }
    private static let mapping = Atomic<Bool>(false)
    /// 1 MiB: where mapping (and the block arena) starts.
    public static let largeBufferFloats = 1 << 18

    /// Runs `body` (one recomputed block's forward or backward) with its large buffers taken from
    /// the block arena (CKernels' fkp_arena_floats). Blocks free their insides before the next
    /// block allocates, so the arena hands the same pages to every block and every step; mapping
    /// each buffer afresh instead cost the kernel's fault and zero fill of about 1.7 GB a step on
    /// U-Net 224² b4. Arena contents are unspecified, as after `resize`.
    /// Only this thread's allocations are affected.
    public static func inBlockArena<T>(_ body: () -> T) -> T {
        let depth = fkp_arena_depth()
        fkp_arena_set_depth(depth + 1)
        defer { fkp_arena_set_depth(depth) }
        return body()
    }

    /// Runs `body` with large buffers taken as outside blocks, inside a block's run: for a buffer
    /// that outlives the block (the U-Net's skip copies), which would otherwise stay in the arena's
    /// middle and push the next blocks' buffers past it.
    public static func outsideBlockArena<T>(_ body: () -> T) -> T {
        let depth = fkp_arena_depth()
        fkp_arena_set_depth(0)
        defer { fkp_arena_set_depth(depth) }
        return body()
    }

    /// Gives the block arena's free pages back to the system, for phases outside the steps that
    /// the memory plan counts without a block's inside (a checkpoint write, the final pictures).
    /// The next step faults them in once.
    public static func trimBlockArena() { fkp_arena_trim() }

    /// Buffers of at least this many floats go to the arena inside `inBlockArena`. Tests lower it,
    /// with the arena poisoned (each buffer NaN when handed out), to show that no layer reads a
    /// buffer before writing it.
    public static func setArena(thresholdFloats: Int, poisoned: Bool) {
        arenaFloats.store(thresholdFloats, ordering: .relaxed)
        fkp_arena_poison(poisoned ? 1 : 0)
    }
    private static let arenaFloats = Atomic<Int>(largeBufferFloats)

    /// `capacity` floats: zero, unless they come from the block arena.
    private static func storage(_ capacity: Int) -> (UnsafeMutablePointer<Float>, StorageKind) {
        if fkp_arena_depth() > 0 && capacity >= arenaFloats.load(ordering: .relaxed),
           let p = fkp_arena_floats(capacity) {
            return (p, .arena)
        }
        if capacity >= largeBufferFloats && mapping.load(ordering: .relaxed), let p = fkp_map_floats(capacity) {
            return (p, .mapped)   // zero-filled by the kernel
        }
        let p = UnsafeMutablePointer<Float>.allocate(capacity: capacity)
        p.initialize(repeating: 0, count: capacity)
        return (p, .heap)
    }

    private func freeStorage() {
        switch storageKind {
        case .heap: data.deallocate()
        case .mapped: fkp_unmap_floats(data, capacity)
        case .arena: fkp_arena_free(data, capacity)
        }
    }

    public convenience init(shape: [Int], values: [Float]) {
        precondition(values.count == Tensor.elementCount(shape),
                     "Tensor: \(values.count) values for shape \(shape)")
        self.init(shape: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit {
        freeStorage()
        EngineAllocations.add(-capacity * MemoryLayout<Float>.stride)
    }

    /// Gives the tensor a new shape, reusing its storage when it fits (contents are then
    /// unspecified). Models call this every step; memory is allocated only when a batch grows.
    public func resize(_ newShape: [Int]) {
        if newShape == shape { return }
        let n = Tensor.elementCount(newShape)
        if n > capacity {
            freeStorage()
            EngineAllocations.add((n - capacity) * MemoryLayout<Float>.stride)
            capacity = n
            (data, storageKind) = Tensor.storage(n)
        }
        shape = newShape
        count = n
    }

    /// Frees the storage (down to the one-float placeholder a new tensor starts with) and makes
    /// the shape [0], so that the next `resize` allocates again. For buffers that live only
    /// within one block of a step (`--recompute blocks`); everything else keeps its storage.
    public func release() {
        shape = [0]
        count = 0
        guard capacity > 1 else { return }
        freeStorage()
        EngineAllocations.add(-(capacity - 1) * MemoryLayout<Float>.stride)
        capacity = 1
        (data, storageKind) = Tensor.storage(1)
    }

    public func zero() { zeroFloats(data, count) }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }

    public func toArray() -> [Float] { Array(buffer) }

    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy of \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    // Dimension accessors for 4-D [N, C, H, W] and 2-D [N, F] shapes.
    @inlinable public var n: Int { shape[0] }
    @inlinable public var c: Int { shape[1] }
    @inlinable public var h: Int { shape[2] }
    @inlinable public var w: Int { shape[3] }

    public static func elementCount(_ shape: [Int]) -> Int {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        return shape.reduce(1, *)
    }
}

/// Shape checks with messages that name the layer and both shapes.
@inline(__always)
public func checkShape(_ condition: Bool, _ layer: @autoclosure () -> String, _ message: @autoclosure () -> String) {
    if !condition { preconditionFailure("\(layer()): \(message())") }
}

/// Conversions between PyTorch's NCHW and the engine's internal CNHW layout.
public enum Layout {
    /// dst[c, n, :] = src[n, c, :] (also CNHW → NCHW with n and c swapped).
    public static func swapNC(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, n: Int, c: Int, plane: Int) {
        if n == 1 || c == 1 {
            dst.update(from: src, count: n * c * plane)
            return
        }
        Parallel.chunks(n, work: n * c * plane) { start, end in
            for i in start ..< end {
                for j in 0 ..< c {
                    (dst + (j * n + i) * plane).update(from: src + (i * c + j) * plane, count: plane)
                }
            }
        }
    }

    /// Returns an NCHW array of a CNHW tensor.
    public static func nchwArray(_ t: Tensor) -> [Float] {
        guard t.shape.count == 4 else { return t.toArray() }
        var out = [Float](repeating: 0, count: t.count)
        out.withUnsafeMutableBufferPointer { swapNC(t.data, $0.baseAddress!, n: t.c, c: t.n, plane: t.h * t.w) }
        return out
    }

    /// Makes a CNHW tensor from NCHW values.
    public static func cnhwTensor(shape: [Int], nchw: [Float]) -> Tensor {
        let t = Tensor(shape: shape)
        nchw.withUnsafeBufferPointer { swapNC($0.baseAddress!, t.data, n: shape[0], c: shape[1], plane: shape[2] * shape[3]) }
        return t
    }
}

/// p[0..<count] = 0, split over the pool.
public func zeroFloats(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
    Parallel.chunks(count, work: count) { start, end in (p + start).update(repeating: 0, count: end - start) }
}
