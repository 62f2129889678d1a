/// Inference graphs (`fkp export`): every module describes its evaluation-mode forward pass, in
/// PyTorch's NCHW terms and parameter layouts, to a `GraphBuilder`, which a file format
/// implements (ONNX). Composite modules export their children in the order their `forward`
/// calls them, so the graph is the forward pass written once more, next to nothing but itself.

/// A tensor of the graph being built, by its name there.
public struct GraphValue: Sendable, Hashable {
    public let name: String
    public init(_ name: String) { self.name = name }
}

/// The operations fkp's models are made of. Layers with parameters come with their PyTorch module
/// name (`layer1.0.conv1`) and copies of their weights in PyTorch's layouts (`shape`); BatchNorm
/// with its running statistics, for the builder to fold or keep.
public protocol GraphBuilder: AnyObject {
    func conv(_ x: GraphValue, name: String, weight: [Float], shape: [Int], bias: [Float]?, stride: Int, padding: Int, groups: Int) -> GraphValue
    /// Weight [Cin, Cout, k, k].
    func convTranspose(_ x: GraphValue, name: String, weight: [Float], shape: [Int], bias: [Float]?, stride: Int, padding: Int) -> GraphValue
    func batchNorm(_ x: GraphValue, name: String, scale: [Float], bias: [Float], mean: [Float], variance: [Float], epsilon: Float) -> GraphValue
    /// min(max(x, 0), cap): ReLU (cap ∞) or ReLU6 (cap 6).
    func relu(_ x: GraphValue, cap: Float) -> GraphValue
    func maxPool(_ x: GraphValue, kernel: Int, stride: Int, padding: Int) -> GraphValue
    /// [N, C, H, W] → [N, C, 1, 1].
    func globalAveragePool(_ x: GraphValue) -> GraphValue
    /// [N, C, H, W] → [N, C·H·W] in (c, h, w) order.
    func flatten(_ x: GraphValue) -> GraphValue
    /// Weight [out, in]: x · Wᵀ + b.
    func linear(_ x: GraphValue, name: String, weight: [Float], shape: [Int], bias: [Float]?) -> GraphValue
    func add(_ a: GraphValue, _ b: GraphValue) -> GraphValue
    func concatChannels(_ a: GraphValue, _ b: GraphValue) -> GraphValue
}

/// A module that can describe its evaluation-mode forward pass.
public protocol GraphExportable {
    func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue
}

public struct GraphExportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension Module {
    /// This module's forward pass in `graph`; fails for a module without an export.
    public func exportGraph(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        guard let exportable = self as? GraphExportable else { throw GraphExportError("\(typeDescription) cannot be exported to a graph") }
        return try exportable.export(x, to: graph)
    }
}

extension ParameterStore {
    /// The PyTorch module name of a layer whose first parameter is `ref` ("fc" for "fc.weight").
    func moduleName(_ ref: ParameterRef) -> String {
        let full = parameters.first { $0.offset == ref.offset }!.name
        return String(full[..<(full.lastIndex(of: ".") ?? full.endIndex)])
    }

    func copy(_ ref: ParameterRef) -> [Float] { Array(UnsafeBufferPointer(start: value(ref), count: ref.count)) }
    func copyBuffer(_ ref: ParameterRef) -> [Float] { Array(UnsafeBufferPointer(start: buffer(ref), count: ref.count)) }
}

extension Sequential: GraphExportable {
    public func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        try children.reduce(x) { h, child in try child.module.exportGraph(h, to: graph) }
    }
}

extension Conv2d: GraphExportable {
    public func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        let y = graph.conv(x, name: store.moduleName(weight), weight: store.copy(weight), shape: [outChannels, inChannels, kernel, kernel],
                           bias: bias.map(store.copy), stride: stride, padding: padding, groups: 1)
        return fusedReLU ? graph.relu(y, cap: .infinity) : y
    }
}

extension DepthwiseConv2d: GraphExportable {
    public func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        graph.conv(x, name: store.moduleName(weight), weight: store.copy(weight), shape: [channels, 1, kernel, kernel], bias: bias.map(store.copy),
                   stride: stride, padding: padding, groups: channels)
    }
}

extension ConvTranspose2d: GraphExportable {
    public func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        graph.convTranspose(x, name: store.moduleName(weight), weight: store.copy(weight), shape: [inChannels, outChannels, kernel, kernel],
                            bias: bias.map(store.copy), stride: stride, padding: padding)
    }
}

extension BatchNorm2d: GraphExportable {
    public func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        let y = graph.batchNorm(x, name: store.moduleName(weight), scale: store.copy(weight), bias: store.copy(bias), mean: store.copyBuffer(runningMean),
                                variance: store.copyBuffer(runningVar), epsilon: eps)
        return fusedReLU ? graph.relu(y, cap: reluCap) : y
    }
}

extension ReLU: GraphExportable {
    /// A ReLU fused into the layer before it was exported with that layer.
    public func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        fusedIntoPrevious ? x : graph.relu(x, cap: cap)
    }
}

extension MaxPool2d: GraphExportable {
    public func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        graph.maxPool(x, kernel: kernel, stride: stride, padding: padding)
    }
}

extension AdaptiveAvgPool2d: GraphExportable {
    public func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue { graph.globalAveragePool(x) }
}

extension Flatten: GraphExportable {
    public func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue { graph.flatten(x) }
}

extension Dropout: GraphExportable {
    /// Evaluation mode: the identity.
    public func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue { x }
}

extension Linear: GraphExportable {
    public func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        graph.linear(x, name: store.moduleName(weight), weight: store.copy(weight), shape: [outFeatures, inFeatures], bias: bias.map(store.copy))
    }
}

extension Add {
    public func export(_ a: GraphValue, _ b: GraphValue, to graph: GraphBuilder) -> GraphValue {
        let y = graph.add(a, b)
        return fusedReLU ? graph.relu(y, cap: .infinity) : y
    }
}

extension ChannelConcat {
    public func export(_ a: GraphValue, _ b: GraphValue, to graph: GraphBuilder) -> GraphValue { graph.concatChannels(a, b) }
}
