#!/usr/bin/env python3
"""Load an fkp checkpoint into the same PyTorch model and compare predictions.

    python3 Scripts/load_checkpoint_in_pytorch.py runs/default/step-000004500.safetensors.zst

Decompresses with the `zstd` tool, reads it with `safetensors.torch.load_file`, builds the model
from Scripts/torch_models.py using the checkpoint's metadata, and calls `load_state_dict(strict=True)`
with the model tensors (the `optimizer.*` entries are the AdamW state, kept apart). Prints the
tensor count and the output of the model on a zero image. Needs torch and safetensors.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402


def load(path: str):
    """The checkpoint's model in evaluation mode, its tensor count and its metadata."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "checkpoint.safetensors")
        subprocess.run(["zstd", "-d", "-q", "-f", path, "-o", raw], check=True)
        tensors = load_file(raw)
        with safe_open(raw, "pt") as f:
            metadata = f.metadata()
    model_config = json.loads(metadata["model"])
    model = torch_models.make(model_config["name"], model_config["outputs"], model_config["inputHeight"],
                              model_config["inputWidth"], model_config.get("width"))
    state = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, len(tensors), metadata


def main() -> None:
    model, tensor_count, metadata = load(sys.argv[1])
    model_config = json.loads(metadata["model"])
    state_count = len(model.state_dict())
    with torch.no_grad():
        out = model(torch.zeros(1, 1, model_config["inputHeight"], model_config["inputWidth"]))
    print(f"loaded {state_count} tensors into {type(model).__name__} ({metadata['model_name']}); "
          f"optimizer tensors: {tensor_count - state_count}; output shape {tuple(out.shape)}; "
          f"epoch {metadata['epoch']} step {metadata['step']}")


if __name__ == "__main__":
    main()
