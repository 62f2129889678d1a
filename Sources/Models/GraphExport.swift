import Engine

// The models' forward passes as inference graphs (Engine/GraphExport.swift), each written as its
// `forward` is.

extension Network {
    /// The model's evaluation-mode forward pass from `input` ([N, 1, H, W]) in `graph`: regression
    /// models end in [N, outputs], heatmap models in [N, K, H, W].
    public func exportGraph(_ input: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        try root.exportGraph(input, to: graph)
    }
}

extension ResNet: GraphExportable {
    func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        var h = try maxpool.exportGraph(bn1.exportGraph(conv1.exportGraph(x, to: graph), to: graph), to: graph)
        for layer in layers { h = try layer.exportGraph(h, to: graph) }
        return try fc.exportGraph(flatten.exportGraph(avgpool.exportGraph(h, to: graph), to: graph), to: graph)
    }
}

extension BasicBlock: GraphExportable {
    func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        let identity = try downsample?.exportGraph(x, to: graph) ?? x
        var out = x
        for layer: Module in [conv1, bn1, conv2, bn2] { out = try layer.exportGraph(out, to: graph) }
        return add.export(out, identity, to: graph)
    }
}

extension Bottleneck: GraphExportable {
    func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        let identity = try downsample?.exportGraph(x, to: graph) ?? x
        var out = x
        for layer: Module in [conv1, bn1, conv2, bn2, conv3, bn3] { out = try layer.exportGraph(out, to: graph) }
        return add.export(out, identity, to: graph)
    }
}

extension UNet: GraphExportable {
    func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        var skips: [GraphValue] = []
        var h = x
        for level in 0 ..< 4 {
            let e = try encoders[level].exportGraph(h, to: graph)
            skips.append(e)
            h = try pools[level].exportGraph(e, to: graph)
        }
        h = try bottleneck.exportGraph(h, to: graph)
        for level in (0 ..< 4).reversed() {
            let up = try upconvs[level].exportGraph(h, to: graph)
            h = try decoders[level].exportGraph(concats[level].export(up, skips[level], to: graph), to: graph)
        }
        return try conv.exportGraph(h, to: graph)
    }
}

extension MobileNetPFLD: GraphExportable {
    func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        var h = x
        var pooled: [GraphValue] = []
        for (i, layer) in features.layers.enumerated() {
            h = try layer.exportGraph(h, to: graph)
            if let k = Self.taps.firstIndex(of: i) { pooled.append(try pools[k].exportGraph(h, to: graph)) }
        }
        let all = concat.1.export(concat.0.export(pooled[0], pooled[1], to: graph), pooled[2], to: graph)
        return try fc.exportGraph(flatten.exportGraph(all, to: graph), to: graph)
    }
}

extension InvertedResidual: GraphExportable {
    func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        let out = try conv.exportGraph(x, to: graph)
        return useResidual ? add.export(x, out, to: graph) : out
    }
}

extension MobileNetPIP: GraphExportable {
    func export(_ x: GraphValue, to graph: GraphBuilder) throws -> GraphValue {
        let h = try features.exportGraph(x, to: graph)
        var out = try heads[0].exportGraph(h, to: graph)
        for (i, head) in heads.dropFirst().enumerated() { out = concats[i].export(out, try head.exportGraph(h, to: graph), to: graph) }
        return out
    }
}
