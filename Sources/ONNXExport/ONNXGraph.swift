import Engine
import Foundation

/// Builds an ONNX graph (nodes and initializers, opset 17) from a model's `GraphBuilder` calls.
/// BatchNorm is folded into the convolution before it, as inference runtimes would do anyway:
/// W' = W·s, b' = (b − μ)·s + β per output channel, s = γ/√(σ² + ε).
final class ONNXGraph: GraphBuilder {
    private(set) var nodes: [Onnx_NodeProto] = []
    private(set) var initializers: [Onnx_TensorProto] = []
    private var initializerIndex: [String: Int] = [:]
    /// Convolutions whose output nothing has used yet (output name → node index): BatchNorm folds into these.
    private var foldable: [String: Int] = [:]
    /// Outputs renamed by a fold: the old name no longer holds the value it named.
    private var retired: Set<String> = []
    private var counts: [String: Int] = [:]
    /// Clip's bounds per cap, shared by all the Clips with that cap.
    private var clipBounds: [Float: (String, String)] = [:]

    // MARK: - GraphBuilder

    func conv(_ x: GraphValue, name: String, weight: [Float], shape: [Int], bias: [Float]?, stride: Int, padding: Int, groups: Int) -> GraphValue {
        var inputs = [x.name, initializer("\(name).weight", weight, shape)]
        if let bias { inputs.append(initializer("\(name).bias", bias, [shape[0]])) }
        let y = node("Conv", inputs, name: name, [
            .ints("kernel_shape", [shape[2], shape[3]]), .ints("strides", [stride, stride]),
            .ints("pads", [padding, padding, padding, padding]), .int("group", groups),
        ])
        foldable[y.name] = nodes.count - 1
        return y
    }

    func convTranspose(_ x: GraphValue, name: String, weight: [Float], shape: [Int], bias: [Float]?, stride: Int, padding: Int) -> GraphValue {
        var inputs = [x.name, initializer("\(name).weight", weight, shape)]
        if let bias { inputs.append(initializer("\(name).bias", bias, [shape[1]])) }
        return node("ConvTranspose", inputs, name: name, [
            .ints("kernel_shape", [shape[2], shape[3]]), .ints("strides", [stride, stride]),
            .ints("pads", [padding, padding, padding, padding]),
        ])
    }

    func batchNorm(_ x: GraphValue, name: String, scale: [Float], bias: [Float], mean: [Float], variance: [Float], epsilon: Float) -> GraphValue {
        // Every BatchNorm of fkp's models follows a convolution; a model that had one elsewhere
        // would need a BatchNormalization node here.
        guard let index = foldable[x.name] else { preconditionFailure("ONNXGraph: \(name) does not follow a convolution") }
        foldable[x.name] = nil
        // Folded in Double: the model then differs from fkp's unfolded forward by float rounding only.
        let s = zip(scale, variance).map { Double($0) / (Double($1) + Double(epsilon)).squareRoot() }
        var node = nodes[index]
        let weight = floats(node.input[1])
        let perChannel = weight.count / s.count
        let oldBias = node.input.count > 2 ? floats(node.input[2]).map(Double.init) : [Double](repeating: 0, count: s.count)
        // The convolution's initializers are replaced: nothing else reads them.
        replace(node.input[1], with: "\(node.input[1])+\(name)", weight.indices.map { Float(Double(weight[$0]) * s[$0 / perChannel]) })
        node.input[1] = "\(node.input[1])+\(name)"
        let newBias = s.indices.map { Float((oldBias[$0] - Double(mean[$0])) * s[$0] + Double(bias[$0])) }
        if node.input.count > 2 {
            replace(node.input[2], with: "\(node.input[2])+\(name)", newBias)
            node.input[2] = "\(node.input[2])+\(name)"
        } else {
            node.input.append(initializer("\(name).folded_bias", newBias, [s.count]))
        }
        // The convolution's output now carries the normalised values under the BatchNorm's name.
        retired.insert(x.name)
        node.output = [unique(name)]
        nodes[index] = node
        return GraphValue(node.output[0])
    }

    func relu(_ x: GraphValue, cap: Float) -> GraphValue {
        guard cap.isFinite else { return node("Relu", [x.name]) }
        if clipBounds[cap] == nil { clipBounds[cap] = (initializer("clip_\(cap)_min", [0], []), initializer("clip_\(cap)_max", [cap], [])) }
        let (low, high) = clipBounds[cap]!
        return node("Clip", [x.name, low, high])
    }

    func maxPool(_ x: GraphValue, kernel: Int, stride: Int, padding: Int) -> GraphValue {
        node("MaxPool", [x.name], [.ints("kernel_shape", [kernel, kernel]), .ints("strides", [stride, stride]),
                                   .ints("pads", [padding, padding, padding, padding])])
    }

    func globalAveragePool(_ x: GraphValue) -> GraphValue { node("GlobalAveragePool", [x.name]) }

    func flatten(_ x: GraphValue) -> GraphValue { node("Flatten", [x.name], [.int("axis", 1)]) }

    func linear(_ x: GraphValue, name: String, weight: [Float], shape: [Int], bias: [Float]?) -> GraphValue {
        var inputs = [x.name, initializer("\(name).weight", weight, shape)]
        if let bias { inputs.append(initializer("\(name).bias", bias, [shape[0]])) }
        return node("Gemm", inputs, name: name, [.int("transB", 1)])
    }

    func add(_ a: GraphValue, _ b: GraphValue) -> GraphValue { node("Add", [a.name, b.name]) }

    func concatChannels(_ a: GraphValue, _ b: GraphValue) -> GraphValue { node("Concat", [a.name, b.name], [.int("axis", 1)]) }

    // MARK: - Nodes and tensors

    enum Attribute {
        case int(String, Int), ints(String, [Int])

        var proto: Onnx_AttributeProto {
            var a = Onnx_AttributeProto()
            switch self {
            case let .int(name, value): a.name = name; a.type = .int; a.i = Int64(value)
            case let .ints(name, values): a.name = name; a.type = .ints; a.ints = values.map(Int64.init)
            }
            return a
        }
    }

    /// Adds a node with one output (named after `name` or the operation) and returns that output.
    @discardableResult
    func node(_ op: String, _ inputs: [String], name: String? = nil, _ attributes: [Attribute] = [], output: String? = nil) -> GraphValue {
        precondition(retired.isDisjoint(with: inputs), "ONNXGraph: \(op) reads a convolution output that a BatchNorm fold replaced")
        for input in inputs { foldable[input] = nil }
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = unique(name ?? op)
        n.input = inputs
        n.output = [output ?? n.name]
        n.attribute = attributes.map(\.proto)
        nodes.append(n)
        return GraphValue(n.output[0])
    }

    /// A float initializer (raw little-endian data); returns its name.
    func initializer(_ name: String, _ values: [Float], _ dims: [Int]) -> String {
        precondition(initializerIndex[name] == nil, "ONNXGraph: initializer \(name) twice")
        var t = Onnx_TensorProto()
        t.name = name
        t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        t.dims = dims.map(Int64.init)
        t.rawData = values.withUnsafeBufferPointer { Data(buffer: $0) }
        initializerIndex[name] = initializers.count
        initializers.append(t)
        return name
    }

    /// An int64 initializer (shapes for Reshape); returns its name.
    func int64Initializer(_ name: String, _ values: [Int64]) -> String {
        var t = Onnx_TensorProto()
        t.name = unique(name)
        t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        t.dims = [Int64(values.count)]
        t.int64Data = values
        initializerIndex[t.name] = initializers.count
        initializers.append(t)
        return t.name
    }

    private func replace(_ name: String, with newName: String, _ values: [Float]) {
        let i = initializerIndex.removeValue(forKey: name)!
        initializers[i].name = newName
        initializers[i].rawData = values.withUnsafeBufferPointer { Data(buffer: $0) }
        initializerIndex[newName] = i
    }

    private func floats(_ name: String) -> [Float] {
        let data = initializers[initializerIndex[name]!].rawData
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    private func unique(_ base: String) -> String {
        let n = counts[base, default: 0]
        counts[base] = n + 1
        return n == 0 ? base : "\(base)_\(n)"
    }
}
