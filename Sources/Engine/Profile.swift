import Dispatch
import Foundation

/// Wall-clock time per layer type (Conv2d, BatchNorm2d, ...), forward and backward separately,
/// for `fkp bench train --profile`. Set it on a model's `Context`: every leaf module called
/// through `callAsFunction` / `gradient` then records its time under its type name; without one
/// those calls are the plain `forward` / `backward`. Models never mention it.
public final class LayerProfile {
    public struct Entry { public var forward = 0.0, backward = 0.0, calls = 0 }
    public private(set) var order: [String] = []
    public private(set) var entries: [String: Entry] = [:]
    /// Record each layer configuration ("Conv2d(16, 32, kernel_size=(3, 3), …)") instead of each type.
    public let byLayer: Bool

    public init(byLayer: Bool = false) { self.byLayer = byLayer }

    func add(_ key: String, forward: Double = 0, backward: Double = 0) {
        if entries[key] == nil { order.append(key); entries[key] = Entry() }
        entries[key]!.forward += forward
        entries[key]!.backward += backward
        if forward > 0 { entries[key]!.calls += 1 }
    }

    public func reset() { entries = [:]; order = [] }

    /// Seconds; layer types by descending total time, with shares of `total` seconds.
    public func table(total: Double, steps: Int) -> String {
        let width = max(20, (order.map(\.count).max() ?? 0) + 2)
        var lines = [(byLayer ? "layer" : "layer type").padding(toLength: width, withPad: " ", startingAt: 0)
            + "  forward ms  backward ms   total ms   share  (per step)"]
        let sorted = order.sorted { (entries[$0]!.forward + entries[$0]!.backward) > (entries[$1]!.forward + entries[$1]!.backward) }
        for key in sorted {
            let e = entries[key]!, sum = e.forward + e.backward
            lines.append(key.padding(toLength: width, withPad: " ", startingAt: 0)
                + String(format: "%12.2f%13.2f%11.2f%7.1f%%", 1000 * e.forward / Double(steps), 1000 * e.backward / Double(steps),
                         1000 * sum / Double(steps), 100 * sum / max(total, 1e-12)))
        }
        return lines.joined(separator: "\n")
    }

    @inline(__always) static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

    /// Runs `body`, adding its time to `key`.
    @inline(__always) func time<T>(_ key: String, backward: Bool, _ body: () -> T) -> T {
        let t0 = LayerProfile.now()
        let result = body()
        let dt = LayerProfile.now() - t0
        if backward { add(key, backward: dt) } else { add(key, forward: dt) }
        return result
    }

    /// What a module is recorded under: its repr ("Conv2d(16, 32, kernel_size=(3, 3), …)"), or
    /// only its type, up to the first "(" ("Conv2d", "ReLU").
    func key(_ module: Module) -> String {
        byLayer ? module.typeDescription : String(module.typeDescription.prefix { $0 != "(" })
    }
}

// The call forms that blocks use (`conv1(x, ctx)`, `conv1.gradient(dy, ctx)`, like torchvision's
// `self.conv1(x)`): the place where a profile, when the context has one, sees every layer (a
// container's time is its children's, so only leaves are recorded), and where the blocks of
// `--recompute blocks` go through their `Recomputation`.
extension Module {
    @inline(__always)
    public func callAsFunction(_ x: Tensor, _ ctx: Context) -> Tensor {
        if let recomputation = ctx.recomputation, let block = recomputation.block(self) { return recomputation.forward(self, block, x, ctx) }
        guard let profile = ctx.profile, children.isEmpty else { return forward(x, ctx) }
        return profile.time(profile.key(self), backward: false) { forward(x, ctx) }
    }

    /// `backward`, recorded by the context's profile.
    @inline(__always)
    public func gradient(_ dy: Tensor, _ ctx: Context) -> Tensor {
        if let recomputation = ctx.recomputation, let block = recomputation.block(self) { return recomputation.backward(self, block, dy, ctx) }
        guard let profile = ctx.profile, children.isEmpty else { return backward(dy, ctx) }
        return profile.time(profile.key(self), backward: true) { backward(dy, ctx) }
    }
}

extension Add {
    @inline(__always)
    public func callAsFunction(_ a: Tensor, _ b: Tensor, _ ctx: Context) -> Tensor {
        guard let profile = ctx.profile else { return forward(a, b, ctx) }
        return profile.time("Add", backward: false) { forward(a, b, ctx) }
    }

    @inline(__always)
    public func gradient(_ dy: Tensor, _ ctx: Context) -> Tensor {
        guard let profile = ctx.profile else { return backward(dy, ctx) }
        return profile.time("Add", backward: true) { backward(dy, ctx) }
    }
}

/// `addInPlace` where a tensor fed two consumers and their gradients meet (a residual's identity,
/// a U-Net skip): recorded under "Add", as PyTorch's autograd would show it.
@inline(__always)
public func addInPlace(_ dst: Tensor, _ src: Tensor, _ ctx: Context) {
    guard let profile = ctx.profile else { return addInPlace(dst, src) }
    profile.time("Add", backward: true) { addInPlace(dst, src) }
}

extension ChannelConcat {
    @inline(__always)
    public func callAsFunction(_ a: Tensor, _ b: Tensor, _ ctx: Context) -> Tensor {
        guard let profile = ctx.profile else { return forward(a, b, ctx) }
        return profile.time("ChannelConcat", backward: false) { forward(a, b, ctx) }
    }

    @inline(__always)
    public func gradient(_ dy: Tensor, _ ctx: Context) -> (Tensor, Tensor) {
        guard let profile = ctx.profile else { return backward(dy, ctx) }
        return profile.time("ChannelConcat", backward: true) { backward(dy, ctx) }
    }
}
