#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures for Tests/ModelsTests (run from anywhere; needs torch and
safetensors). For each model, in reduced sizes so that all fixtures stay under 2 MB:

  <model>.safetensors   init/<name>   weights and buffers before training
                        input, target, output (first forward), loss (MSE, first step)
                        grad/<name>   every parameter gradient of the first step
                        after/<name>  weights and BN running stats after 3 AdamW steps
                                      (lr 1e-3, weight decay 0.01, each step: forward, MSE, backward)
                        metadata: the model config (name, outputs, height, width, base, batch, lr, ...)
  repr_<model>.txt      print(model) of the full-size default model, then "parameters: N"

The reference runs in float64 (weights drawn in float32, then widened), so the Swift float32 results
are compared against exact-ish numbers and the tolerance measures only fkp's own rounding.
Train mode throughout (BatchNorm uses batch statistics and updates its running stats); facenet's
Dropout is put in eval mode (identity), since masks cannot be shared: the Swift test sets its
dropout probability to 0 to match. BatchNorm weights/biases are randomised (torchvision would start
them at 1/0) so that the affine part of BatchNorm is tested too.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ModelsTests", "Fixtures")

# name, outputs, height, width, base width (None: the model has none), batch
CASES = [
    ("nosenet", 2, 16, 24, None, 2),
    ("facenet", 8, 56, 56, None, 2),
    ("resnet18", 6, 64, 64, 2, 2),
    ("resnet50", 6, 64, 64, 2, 2),
    ("unet", 4, 32, 32, 2, 2),
]
LR, WD, STEPS = 1e-3, 0.01, 3


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def make_fixture(name, outputs, height, width, base, batch, seed):
    torch.manual_seed(seed)
    model = torch_models.make(name, outputs, height, width, base)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.randn(batch, 1, height, width)
    model = model.double().train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    tensors = {"input": f32(x)}
    for k, v in model.state_dict().items():
        tensors["init/" + k] = f32(v)
    x = x.double()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WD)
    target = None
    for step in range(STEPS):
        opt.zero_grad()
        y = model(x)
        if target is None:
            target = 0.5 * torch.randn(y.shape, dtype=torch.float64)
        loss = torch.nn.functional.mse_loss(y, target)
        loss.backward()
        if step == 0:
            tensors["target"] = f32(target)
            tensors["output"] = f32(y)
            tensors["loss"] = f32(loss.reshape(1))
            for k, p in model.named_parameters():
                tensors["grad/" + k] = f32(p.grad)
        opt.step()
    for k, v in model.state_dict().items():
        tensors["after/" + k] = f32(v)
    meta = dict(name=name, outputs=outputs, height=height, width=width, base=base or 0, batch=batch,
                lr=LR, weight_decay=WD, steps=STEPS, seed=seed)
    path = os.path.join(OUT, f"{name}.safetensors")
    save_file(tensors, path, metadata={k: json.dumps(v) for k, v in meta.items()})
    print(f"{path}: {sum(p.numel() for p in model.parameters())} parameters, loss {loss.item():.6f}, "
          f"{os.path.getsize(path)} bytes")


def write_repr(name):
    c = torch_models.default_config(name)
    model = torch_models.make(name, c["outputs"], c["height"], c["width"], c["base"])
    count = sum(p.numel() for p in model.parameters())
    with open(os.path.join(OUT, f"repr_{name}.txt"), "w") as f:
        f.write(f"{model}\nparameters: {count}\n")
    print(f"repr_{name}.txt: {count} parameters")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    for i, case in enumerate(CASES):
        make_fixture(*case, seed=1000 + i)
    for name in ["nosenet", "facenet", "resnet18", "resnet50", "unet"]:
        write_repr(name)
