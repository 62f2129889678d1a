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

    /// The serialized model; `metadata` goes into metadata_props in the order given.
    public static func model(_ network: Network, task: ModelTask, metadata: [(key: String, value: String)],
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
