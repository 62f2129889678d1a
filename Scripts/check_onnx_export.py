#!/usr/bin/env python3
"""Check an `fkp export --format onnx` model against fkp's own keypoints on the same crops.

    python3 Scripts/check_onnx_export.py model.onnx --checkpoint C --inputs crops.f32 --expected keypoints.f32 [--tolerance 1e-4]

crops.f32: N preprocessed crops [N, 1, H, W], keypoints.f32: fkp's keypoints for them [N, K, 2] in
crop pixels, both raw little-endian float32 (the XCTest writes them from fkp's forward pass).
Checks that onnx's checker passes (full check, with shape inference), that the model is opset 17
with a dynamic batch, and that onnxruntime (CPU, 1 thread) gives fkp's keypoints within the
tolerance, for the whole batch at once and for each crop alone.

Float32 arithmetic alone moves a deep model's output: the same checkpoint in PyTorch
(Scripts/torch_models.py) gives keypoints in float32 that differ from its float64 ones. Where that
rounding floor is above the tolerance, the tolerance becomes twice the floor, and onnxruntime must
also be that close to the float64 keypoints. Prints every difference and onnxruntime's time per
face. Exits 1 on a mismatch. Needs onnx, onnxruntime, numpy and torch.
"""
import argparse
import json
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch

from load_checkpoint_in_pytorch import load
import torch_models  # noqa: E402


def torch_keypoints(model, crops: np.ndarray, dtype, neighbours=None) -> np.ndarray:
    """The checkpoint's keypoints [N, K, 2] in crop pixels, computed by PyTorch in `dtype`
    (PIPNet models: decoded with the checkpoint's `neighbours`)."""
    height, width = crops.shape[2:]
    with torch.no_grad():
        out = model.to(dtype)(torch.from_numpy(crops).to(dtype))
        if neighbours is not None:
            return torch_models.pip_decode(out, neighbours, height, width).numpy()
        if out.dim() == 4:   # heatmaps: the soft-argmax over each plane, as the graph decodes
            n, k = out.shape[:2]
            p = torch.softmax(out.reshape(n, k, height * width), dim=-1)
            i = torch.arange(height * width, dtype=dtype)
            grid = torch.stack([i % width, torch.div(i, width, rounding_mode="floor")], dim=-1)
            return (p @ grid).numpy()
        return (out.reshape(len(crops), -1, 2) * torch.tensor([width, height], dtype=dtype)).numpy()


def fail(message: str) -> None:
    print(f"check_onnx_export: {message}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--checkpoint", required=True, help="the exported checkpoint (for the float64 reference)")
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--expected", required=True)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()

    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    opsets = {o.domain: o.version for o in model.opset_import}
    if opsets.get("", None) != 17:
        fail(f"opset {opsets}, expected 17")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if not dims[0].dim_param or dims[0].dim_value:
        fail(f"the batch dimension is fixed: {dims[0]}")
    height, width = dims[2].dim_value, dims[3].dim_value
    crops = np.fromfile(args.inputs, dtype="<f4").reshape(-1, 1, height, width)
    expected = np.fromfile(args.expected, dtype="<f4").reshape(len(crops), -1, 2)
    metadata = {p.key: p.value for p in model.metadata_props}
    for key in ("fkp.preprocessing", "fkp.crop", "fkp.input"):
        if key not in metadata:
            fail(f"metadata_props has no {key}")

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    batch = session.run(["keypoints"], {"input": crops})[0]
    singles = np.concatenate([session.run(["keypoints"], {"input": crops[i:i + 1]})[0] for i in range(len(crops))])
    if batch.shape != expected.shape:
        fail(f"keypoints shape {batch.shape}, fkp's {expected.shape}")
    reference, _, checkpoint_metadata = load(args.checkpoint)
    neighbours = json.loads(checkpoint_metadata["config"]).get("pipNeighbours")
    exact = torch_keypoints(reference, crops, torch.float64, neighbours)
    floor = float(np.abs(torch_keypoints(reference, crops, torch.float32, neighbours) - exact).max())
    tolerance = max(args.tolerance, 2 * floor)
    worst = max(float(np.abs(batch - expected).max()), float(np.abs(singles - expected).max()))
    from_exact = float(np.abs(batch - exact).max())
    if not worst <= tolerance:
        fail(f"onnxruntime and fkp differ by {worst:.3g} px (tolerance {tolerance:.3g}; PyTorch float32 vs float64 {floor:.3g})")
    if not from_exact <= tolerance:
        fail(f"onnxruntime is {from_exact:.3g} px from the float64 keypoints (tolerance {tolerance:.3g})")
    start = time.perf_counter()
    runs = 0
    while time.perf_counter() - start < 0.5 or runs < 3:
        session.run(["keypoints"], {"input": crops[:1]})
        runs += 1
    per_face = (time.perf_counter() - start) / runs
    print(f"onnx: checker passed, opset 17, outputs {', '.join(outputs)}; {len(crops)} crops, "
          f"max |onnxruntime - fkp| {worst:.2g} px, |onnxruntime - float64| {from_exact:.2g} px, "
          f"|fkp - float64| {float(np.abs(expected - exact).max()):.2g} px (PyTorch float32 vs float64 {floor:.2g}; "
          f"tolerance {tolerance:.2g}); "
          f"onnxruntime {1000 * per_face:.2f} ms per face on 1 thread")


if __name__ == "__main__":
    main()
