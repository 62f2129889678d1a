#!/usr/bin/env python3
"""Export torchvision ResNet ImageNet weights as safetensors for `fkp import-weights`.

    pip install torch torchvision safetensors
    python3 Scripts/export_torchvision_resnet.py --model resnet50 --out resnet50.safetensors
    .build/release/fkp import-weights resnet50.safetensors --model resnet50 --out runs/resnet50-imagenet.safetensors.zst
    .build/release/fkp train --preset resnet50-ibug --data DATA --init runs/resnet50-imagenet.safetensors.zst

torchvision downloads the weights on first use (needs network access to download.pytorch.org).
"""
import argparse

import torch
import torchvision
from safetensors.torch import save_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50", choices=["resnet18", "resnet34", "resnet50"])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model = getattr(torchvision.models, args.model)(weights="DEFAULT")
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, args.out, metadata={"source": f"torchvision.models.{args.model}(weights='DEFAULT')"})
    print(f"wrote {len(state)} tensors to {args.out}")


if __name__ == "__main__":
    main()
