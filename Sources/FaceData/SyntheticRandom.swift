/// Deterministic randomness and trigonometry for the synthetic faces.
///
/// Every face must come out bit-identical on every machine and run, so nothing here calls the
/// platform's libm (whose sin/cos differ in the last bit between glibc and Darwin): the generator is
/// SplitMix64 and the trigonometry is a fixed polynomial evaluated in Double.

/// Synthetic-face helpers on the shared generator (Random.swift).
extension SplitMix64 {
    /// A stream for (seed, index, purpose): mixing all three through the finaliser keeps streams of
    /// neighbouring indices (and of the shape vs. the noise of one face) unrelated.
    init(seed: UInt64, index: UInt64, stream: UInt64) {
        var mix = SplitMix64(seed: seed ^ 0x9E37_79B9_7F4A_7C15)
        let a = mix.next()
        mix.state = a ^ (index &* 0xD1B5_4A32_D192_ED03)
        let b = mix.next()
        mix.state = b ^ (stream &* 0x8CB9_2BA7_2F3D_8DD7)
        self.init(seed: mix.next())
    }

    @inline(__always)
    mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * unit() }

    /// Approximately normal (Irwin–Hall sum of four uniforms, rescaled to unit variance): no log or
    /// cos needed, and tails bounded at ±3.46 sigma, which suits shape parameters.
    @inline(__always)
    mutating func gaussian() -> Float {
        let s = unit() + unit() + unit() + unit()
        return (s - 2) * 1.7320508
    }

    @inline(__always)
    mutating func chance(_ p: Float) -> Bool { unit() < p }

    @inline(__always)
    mutating func int(below n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// Sine and cosine that give the same bits everywhere: reduce to [-pi/4, pi/4] and evaluate Taylor
/// polynomials (error < 1e-15 there, far below Float precision).
enum DeterministicTrig {
    static func sinCos(_ angle: Float) -> (sin: Float, cos: Float) {
        let x = Double(angle)
        let halfPi = 1.5707963267948966
        let quadrant = (x / halfPi).rounded()
        let r = x - quadrant * halfPi
        let r2 = r * r
        let s = r * (1 - r2 / 6 * (1 - r2 / 20 * (1 - r2 / 42 * (1 - r2 / 72 * (1 - r2 / 110)))))
        let c = 1 - r2 / 2 * (1 - r2 / 12 * (1 - r2 / 30 * (1 - r2 / 56 * (1 - r2 / 90 * (1 - r2 / 132)))))
        switch Int(quadrant) & 3 {
        case 0: return (Float(s), Float(c))
        case 1: return (Float(c), Float(-s))
        case 2: return (Float(-s), Float(-c))
        default: return (Float(-c), Float(s))
        }
    }
}
