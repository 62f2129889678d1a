import Engine
import Foundation
import Models
import SwiftProtobuf

/// `fkp export --format onnx`: a trained model as an ONNX file (opset 17, dynamic batch) that
/// takes preprocessed crops and returns keypoints in crop pixels, so onnxruntime, OpenCV's dnn
/// module and mobile runtimes can run it. The protos are Generated/ from Protos/onnx/onnx.proto
/// by Scripts/generate-protos (protoc + protoc-gen-swift).
///
///   input      [batch, 1, H, W] float: the grey crop, normalised as in training (metadata)
///   keypoints  [batch, K, 2] float: (x, y) in crop pixels
///   heatmaps   [batch, K, H, W] float (heatmap models): the raw maps; keypoints are their
///              soft-argmax, a softmax over each plane times a [H·W, 2] grid of pixel coordinates
public enum ONNXExport {
    public static let opset: Int64 = 17
    /// The IR version that came with opset 17 (ONNX 1.12): every runtime that knows the opset reads it.
    public static let irVersion: Int64 = 8
    public static let input = "input", keypoints = "keypoints", heatmaps = "heatmaps"

    /// The serialized model; `metadata` goes into metadata_props in the order given. PIPNet
    /// models need their `neighbours` table (`TrainConfig.pipNeighbours`).
    public static func model(_ network: Network, task: ModelTask, neighbours: [[Int]] = [], metadata: [(key: String, value: String)],
                             producerVersion: String) throws -> Data {
        let (h, w) = (network.config.inputHeight, network.config.inputWidth)
        let graph = ONNXGraph()
        let output = try network.exportGraph(GraphValue(input), to: graph)
        var outputs: [Onnx_ValueInfoProto] = []
        switch task {
        case .regression:
            // Normalised (x / W, y / H) pairs → [batch, K, 2] crop pixels.
            let k = network.config.outputs / 2
            let pairs = graph.node("Reshape", [output.name, graph.int64Initializer("keypoint_shape", [-1, Int64(k), 2])])
            graph.node("Mul", [pairs.name, graph.initializer("crop_size", [Float(w), Float(h)], [2])], output: keypoints)
            outputs.append(valueInfo(keypoints, [nil, k, 2], "keypoints (x, y) in crop pixels"))
        case .heatmap:
            let k = network.config.outputs
            graph.node("Identity", [output.name], output: heatmaps)
            let planes = graph.node("Reshape", [heatmaps, graph.int64Initializer("plane_shape", [-1, Int64(k), Int64(h * w)])])
            let probabilities = graph.node("Softmax", [planes.name], [.int("axis", -1)])
            // Maps are as large as the crop, so a map pixel is a crop pixel.
            let grid = (0 ..< h * w).flatMap { [Float($0 % w), Float($0 / w)] }
            graph.node("MatMul", [probabilities.name, graph.initializer("pixel_grid", grid, [h * w, 2])], output: keypoints)
            outputs.append(valueInfo(keypoints, [nil, k, 2], "keypoints (x, y) in crop pixels: the soft-argmax of the heatmaps"))
            outputs.append(valueInfo(heatmaps, [nil, k, h, w], "raw heatmaps (logits), one per keypoint"))
        case .pip:
            // The table comes from a checkpoint's metadata: it must fit the maps it decodes.
            let (k, m) = try PIPLayout.split(outputs: network.config.outputs)
            guard neighbours.count == k, neighbours.allSatisfy({ $0.count == m && $0.allSatisfy { (0 ..< k).contains($0) } }) else {
                throw ModelError.invalidConfig("a PIPNet export needs a neighbour table of \(k) keypoints × \(m) neighbours "
                    + "(the checkpoint's pip_neighbours), got \(neighbours.count) rows")
            }
            try pipKeypoints(output.name, keypoints: k, neighbours: neighbours, height: h, width: w, graph: graph)
            outputs.append(valueInfo(keypoints, [nil, k, 2], "keypoints (x, y) in crop pixels: PIPNet's neighbour-averaged decoding"))
        }
        var g = Onnx_GraphProto()
        g.name = network.config.name
        g.node = graph.nodes
        g.initializer = graph.initializers
        g.input = [valueInfo(input, [nil, 1, h, w], "grey crop, normalised as metadata fkp.preprocessing says")]
        g.output = outputs
        var model = Onnx_ModelProto()
        model.irVersion = irVersion
        model.producerName = "fkp"
        model.producerVersion = producerVersion
        var opsetImport = Onnx_OperatorSetIdProto()
        opsetImport.domain = ""
        opsetImport.version = opset
        model.opsetImport = [opsetImport]
        model.graph = g
        model.metadataProps = metadata.map { key, value in
            var entry = Onnx_StringStringEntryProto()
            entry.key = key
            entry.value = value
            return entry
        }
        return try model.serializedBytes()
    }

    /// PIPHead's decoding as a graph, from the maps [N, K(3 + 2M), gh, gw] to `keypoints`: each
    /// score map's best cell (ArgMax), the offsets there (GatherElements), and every keypoint's
    /// votes (its own, and those of the keypoints that have it as a neighbour) averaged by one
    /// MatMul with a constant [K + K·M, K] matrix that also scales cells to crop pixels.
    static func pipKeypoints(_ maps: String, keypoints k: Int, neighbours: [[Int]], height h: Int, width w: Int,
                             graph: ONNXGraph) throws {
        let m = neighbours.first?.count ?? 0
        let (gh, gw) = (PIPLayout.cells(h), PIPLayout.cells(w))
        let cells = gh * gw
        let flat = graph.node("Reshape", [maps, graph.int64Initializer("pip_flat", [-1, Int64(k * (3 + 2 * m)), Int64(cells)])]).name
        func channels(_ name: String, _ start: Int, _ count: Int) -> String {
            graph.node("Slice", [flat, graph.int64Initializer(name + "_start", [Int64(start)]),
                                 graph.int64Initializer(name + "_end", [Int64(start + count)]), graph.int64Initializer(name + "_axis", [1])]).name
        }
        let best = graph.node("ArgMax", [channels("pip_scores", 0, k)], [.int("axis", 2), .int("keepdims", 1)]).name   // [N, K, 1]
        let gridWidth = graph.int64Initializer("pip_grid_width", [Int64(gw)])
        let cellX = graph.node("Cast", [graph.node("Mod", [best, gridWidth]).name], [.int("to", 1)]).name       // [N, K, 1]
        let cellY = graph.node("Cast", [graph.node("Div", [best, gridWidth]).name], [.int("to", 1)]).name
        // Votes along one axis: [N, K] own estimates then [N, K·M] neighbour estimates, in cells.
        func votes(_ axis: String, own start: Int, neighbours nbStart: Int, cell: String) -> String {
            let own = graph.node("Add", [cell, graph.node("GatherElements", [channels("pip_\(axis)", start, k), best], [.int("axis", 2)]).name]).name
            let nbMaps = graph.node("Reshape", [channels("pip_nb_\(axis)", nbStart, k * m),
                                                graph.int64Initializer("pip_nb_shape_\(axis)", [-1, Int64(k), Int64(m), Int64(cells)])]).name
            let axes = graph.int64Initializer("pip_unsqueeze_\(axis)", [2])
            let bestM = graph.node("Expand", [graph.node("Unsqueeze", [best, axes]).name,
                                              graph.int64Initializer("pip_expand_\(axis)", [1, 1, Int64(m), 1])]).name  // [N, K, M, 1]
            let nb = graph.node("Add", [graph.node("Unsqueeze", [cell, axes]).name,
                                        graph.node("GatherElements", [nbMaps, bestM], [.int("axis", 3)]).name]).name
            let row = { (name: String, count: Int) in
                graph.node("Reshape", [name, graph.int64Initializer("pip_row_\(axis)_\(count)", [-1, Int64(count)])]).name
            }
            return graph.node("Concat", [row(own, k), row(nb, k * m)], [.int("axis", 1)]).name
        }
        // average[v][j] = scale / (votes for j) where vote v is for keypoint j.
        var count = [Float](repeating: 1, count: k)
        for list in neighbours { for j in list { count[j] += 1 } }
        func average(_ scale: Float) -> [Float] {
            var a = [Float](repeating: 0, count: (k + k * m) * k)
            for j in 0 ..< k { a[j * k + j] = scale / count[j] }
            for (i, list) in neighbours.enumerated() { for (slot, j) in list.enumerated() { a[(k + i * m + slot) * k + j] = scale / count[j] } }
            return a
        }
        let x = graph.node("MatMul", [votes("x", own: k, neighbours: 3 * k, cell: cellX),
                                      graph.initializer("pip_average_x", average(Float(w) / Float(gw)), [k + k * m, k])]).name
        let y = graph.node("MatMul", [votes("y", own: 2 * k, neighbours: 3 * k + k * m, cell: cellY),
                                      graph.initializer("pip_average_y", average(Float(h) / Float(gh)), [k + k * m, k])]).name
        let last = graph.int64Initializer("pip_last_axis", [2])
        graph.node("Concat", [graph.node("Unsqueeze", [x, last]).name, graph.node("Unsqueeze", [y, last]).name], [.int("axis", 2)],
                   output: keypoints)
    }

    /// A float tensor's name, shape (nil: the dynamic batch) and description.
    static func valueInfo(_ name: String, _ shape: [Int?], _ doc: String) -> Onnx_ValueInfoProto {
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        tensor.shape.dim = shape.map { size in
            var d = Onnx_TensorShapeProto.Dimension()
            if let size { d.dimValue = Int64(size) } else { d.dimParam = "batch" }
            return d
        }
        var info = Onnx_ValueInfoProto()
        info.name = name
        info.type.tensorType = tensor
        info.docString = doc
        return info
    }
}
