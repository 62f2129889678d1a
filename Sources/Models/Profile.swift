import Dispatch
import Engine
import Foundation

/// Wall-clock time per layer type (Conv2d, BatchNorm2d, ...), forward and backward separately,
/// for `fkp bench train --profile`. Models built with a profile wrap every leaf layer in `Timed`;
/// without one they call their layers directly.
public final class LayerProfile {
    public struct Entry { public var forward = 0.0, backward = 0.0, calls = 0 }
    public private(set) var order: [String] = []
    public private(set) var entries: [String: Entry] = [:]

    public init() {}

    func add(_ key: String, forward: Double = 0, backward: Double = 0) {
        if entries[key] == nil { order.append(key); entries[key] = Entry() }
        entries[key]!.forward += forward
        entries[key]!.backward += backward
        if forward > 0 { entries[key]!.calls += 1 }
    }

    public func reset() { entries = [:]; order = [] }

    /// Seconds; layer types by descending total time, with shares of `total` seconds.
    public func table(total: Double, steps: Int) -> String {
        var lines = ["layer type            forward ms  backward ms   total ms   share  (per step)"]
        let sorted = order.sorted { (entries[$0]!.forward + entries[$0]!.backward) > (entries[$1]!.forward + entries[$1]!.backward) }
        for key in sorted {
            let e = entries[key]!, sum = e.forward + e.backward
            lines.append(key.padding(toLength: 20, withPad: " ", startingAt: 0)
                + String(format: "%12.2f%13.2f%11.2f%7.1f%%", 1000 * e.forward / Double(steps), 1000 * e.backward / Double(steps),
                         1000 * sum / Double(steps), 100 * sum / max(total, 1e-12)))
        }
        return lines.joined(separator: "\n")
    }

    @inline(__always) static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

    /// Times a non-module operation (the residual add, the U-Net concatenation).
    @inline(__always) func time<T>(_ key: String, backward: Bool = false, _ body: () -> T) -> T {
        let t0 = LayerProfile.now()
        let result = body()
        let dt = LayerProfile.now() - t0
        if backward { add(key, backward: dt) } else { add(key, forward: dt) }
        return result
    }
}

/// A leaf layer with timing around forward and backward; prints and behaves as the layer itself.
final class Timed: Module, InputGradientOptional {
    let inner: Module
    let key: String
    let profile: LayerProfile

    init(_ inner: Module, _ profile: LayerProfile) {
        self.inner = inner
        self.profile = profile
        let d = inner.typeDescription
        key = String(d.prefix { $0 != "(" })
    }

    var typeDescription: String { inner.typeDescription }
    var children: [(name: String, module: Module)] { inner.children }

    var computesInputGradient: Bool {
        get { (inner as? InputGradientOptional)?.computesInputGradient ?? true }
        set { (inner as? InputGradientOptional)?.computesInputGradient = newValue }
    }

    func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        let t0 = LayerProfile.now()
        let y = inner.forward(x, ctx)
        profile.add(key, forward: LayerProfile.now() - t0)
        return y
    }

    func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        let t0 = LayerProfile.now()
        let dx = inner.backward(dy, ctx)
        profile.add(key, backward: LayerProfile.now() - t0)
        return dx
    }
}

/// `module` itself, or wrapped in `Timed` when profiling.
func timed(_ module: Module, _ profile: LayerProfile?) -> Module {
    guard let profile else { return module }
    return Timed(module, profile)
}
