/// Long sums (a BatchNorm channel over N·H·W, a loss over a batch of heatmaps) lose digits in a
/// single Float accumulator. These add short blocks in Float (fast, vectorised) and the block
/// sums in Double, so the error stays at Float precision of the result, whatever the length.

/// Block length: long enough to vectorise, short enough that a Float partial sum stays exact-ish.
@usableFromInline let reductionBlock = 512

/// Σ f(i) for i in 0..<n.
@inline(__always)
public func blockedSum(_ n: Int, _ f: (Int) -> Float) -> Double {
    var total = 0.0
    var start = 0
    while start < n {
        let end = min(n, start + reductionBlock)
        var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
        var i = start
        while i + 4 <= end { s0 += f(i); s1 += f(i + 1); s2 += f(i + 2); s3 += f(i + 3); i += 4 }
        while i < end { s0 += f(i); i += 1 }
        total += Double((s0 + s1) + (s2 + s3))
        start = end
    }
    return total
}

/// Σ over fixed blocks of 0..<count of `body(start, end)`, blocks run in parallel and are added in order.
@inline(__always)
public func orderedBlockSum(_ count: Int, work: Int, _ body: (Int, Int) -> Double) -> Double {
    let block = 1 << 16
    let blocks = (count + block - 1) / block
    var partial = [Double](repeating: 0, count: blocks)
    partial.withUnsafeMutableBufferPointer { p in
        let p = p.baseAddress!
        Parallel.chunks(blocks, work: work) { start, end in
            for b in start ..< end { p[b] = body(b * block, min(count, (b + 1) * block)) }
        }
    }
    return partial.reduce(0, +)
}
