/// xoshiro256** seeded through SplitMix64: fast, seedable, and its whole state fits in four
/// UInt64s, so checkpoints can save it for a bit-exact resume.
public struct RandomGenerator: RandomNumberGenerator, Sendable, Equatable {
    public var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var s = seed
        func splitmix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public init(state: [UInt64]) {
        precondition(state.count == 4)
        self.state = (state[0], state[1], state[2], state[3])
    }

    public var stateArray: [UInt64] { [state.0, state.1, state.2, state.3] }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }

    /// Uniform in [0, 1) with 24 random bits.
    @inlinable
    public mutating func uniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    @inlinable
    public mutating func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * uniform() }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Float {
        let u1 = max(Double(next() >> 11) * 0x1.0p-53, 1e-300)
        let u2 = Double(next() >> 11) * 0x1.0p-53
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }

    public static func == (a: RandomGenerator, b: RandomGenerator) -> Bool { a.stateArray == b.stateArray }
}

import Foundation
@inline(__always) private func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Foundation.cos(x) }

/// PyTorch's default initialisations, drawn from a seeded generator.
public enum Initializer {
    /// U(-bound, bound): nn.Linear/nn.Conv2d default (kaiming_uniform with a = √5 gives
    /// bound = 1/√fan_in for weights; biases use the same bound).
    public static func uniform(_ bound: Float, _ rng: RandomGenerator.Box) -> (UnsafeMutableBufferPointer<Float>) -> Void {
        { buffer in for i in buffer.indices { buffer[i] = rng.value.uniform(-bound, bound) } }
    }

    /// N(0, std²): torchvision ResNet's kaiming_normal_(mode="fan_out", nonlinearity="relu").
    public static func normal(std: Float, _ rng: RandomGenerator.Box) -> (UnsafeMutableBufferPointer<Float>) -> Void {
        { buffer in for i in buffer.indices { buffer[i] = rng.value.normal() * std } }
    }

    public static func constant(_ value: Float) -> (UnsafeMutableBufferPointer<Float>) -> Void {
        { buffer in buffer.update(repeating: value) }
    }
}

extension RandomGenerator {
    /// A shared, mutable generator for initialisers that run later, in declaration order.
    public final class Box {
        public var value: RandomGenerator
        public init(seed: UInt64) { value = RandomGenerator(seed: seed) }
    }
}
