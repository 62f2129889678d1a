/// Seeded randomness that is the same on every platform, thread and MPI rank: SplitMix64, and
/// seeds derived from (seed, epoch, sample index) so a sample's augmentation never depends on
/// which thread or rank prepared it.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A generator for a tuple of integers, e.g. (seed, epoch, sample index).
    public init(_ parts: UInt64...) {
        var s: UInt64 = 0x243F_6A88_85A3_08D3
        for part in parts { s = SplitMix64.mix(s ^ part &+ 0x9E37_79B9_7F4A_7C15) }
        state = s
    }

    @inlinable public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(state)
    }

    @inlinable public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    @inlinable public mutating func unit() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform in [-limit, limit].
    @inlinable public mutating func symmetric(_ limit: Float) -> Float { (2 * unit() - 1) * limit }

    /// Uniform integer in 0..<bound (bound > 0), without modulo bias worth speaking of (64-bit draw).
    @inlinable public mutating func below(_ bound: Int) -> Int {
        Int(truncatingIfNeeded: (UInt64(bound).multipliedFullWidth(by: next())).high)
    }

    /// A Fisher-Yates permutation of 0..<count, the same for the same generator state everywhere.
    public mutating func permutation(_ count: Int) -> [Int] {
        var p = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) { p.swapAt(i, below(i + 1)) }
        }
        return p
    }
}
