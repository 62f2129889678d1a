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
        var s0: Float = 0, s1: Float = 0
        var i = start
        while i + 2 <= end { s0 += f(i); s1 += f(i + 1); i += 2 }
        if i < end { s0 += f(i) }
        total += Double(s0 + s1)
        start = end
    }
    return total
}

/// Σ f(i) and Σ g(i) in one pass (BatchNorm backward needs both per channel).
@inline(__always)
public func blockedSums(_ n: Int, _ f: (Int) -> (Float, Float)) -> (Double, Double) {
    var ta = 0.0, tb = 0.0
    var start = 0
    while start < n {
        let end = min(n, start + reductionBlock)
        var a: Float = 0, b: Float = 0
        for i in start ..< end {
            let (u, v) = f(i)
            a += u; b += v
        }
        ta += Double(a); tb += Double(b)
        start = end
    }
    return (ta, tb)
}
