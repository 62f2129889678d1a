#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures for Tests/ModelsTests (run from anywhere; needs torch and
safetensors). For each model, in reduced sizes so that all fixtures stay under 2 MB:

  <model>.safetensors   init/<name>   weights and buffers before training
                        input, target, output (first forward), loss (MSE, first step)
                        grad/<name>   every parameter gradient of the first step
                        after/<name>  weights and BN running stats after 3 AdamW steps (resnet50: 1)
                                      (lr 1e-3, weight decay 0.01, each step: forward, MSE, backward)
                        metadata: the model config (name, outputs, height, width, base, batch, lr, ...)
  repr_<model>.txt      print(model) of the full-size default model, then "parameters: N"

Arguments name the models to write (default: every one), e.g. `make_model_fixtures.py mobilenet-pfld`.

The reference runs in float64 (weights drawn in float32, then widened), so the Swift float32 results
are compared against exact-ish numbers. The same run in float32 PyTorch gives PyTorch's own rounding
error per group (output, loss, grad, after), stored in the metadata as torch32_*: the tests allow
the larger of a fixed tolerance and a small multiple of that (it matters for the narrow ResNet-50,
whose ~50 BatchNorms over few values amplify float32 rounding).
Train mode throughout (BatchNorm uses batch statistics and updates its running stats); facenet's
Dropout is put in eval mode (identity), since masks cannot be shared: the Swift test sets its
dropout probability to 0 to match. BatchNorm weights/biases are randomised (torchvision would start
them at 1/0) so that the affine part of BatchNorm is tested too.
"""
import copy
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ModelsTests", "Fixtures")

# name, outputs, height, width, base width (None: the model has none), batch, AdamW steps.
# The narrow full-depth ResNet-50 is chaotic in float32 (≈50 BatchNorms over few values): after
# three steps even float32 PyTorch's running statistics are off by tens of percent from float64,
# so it checks one step (forward, gradients, one AdamW update, running stats of one batch).
CASES = [
    ("nosenet", 2, 16, 24, None, 2, 3),
    ("facenet", 8, 56, 56, None, 2, 3),
    ("resnet18", 6, 64, 64, 2, 2, 3),
    ("resnet50", 6, 64, 64, 2, 2, 1),
    ("unet", 4, 32, 32, 2, 2, 3),
    ("mobilenet-pfld", 6, 96, 96, 2, 4, 3),
    ("mobilenet-pip", 3 * (3 + 2 * 2), 96, 96, 4, 4, 3),
]
LR, WD = 1e-3, 0.01


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def train_reference(model, x, dtype, steps):
    """Forward, MSE, backward and `steps` AdamW steps in `dtype`; returns the recorded tensors."""
    model = model.to(dtype).train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    out = {}
    for k, v in model.state_dict().items():
        out["init/" + k] = f32(v)
    x = x.to(dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WD)
    gen = torch.Generator().manual_seed(99)
    target = None
    for step in range(steps):
        opt.zero_grad()
        y = model(x)
        if target is None:
            target = (0.5 * torch.randn(y.shape, dtype=torch.float64, generator=gen)).to(dtype)
        loss = torch.nn.functional.mse_loss(y, target)
        loss.backward()
        if step == 0:
            out["target"] = f32(target)
            out["output"] = f32(y)
            out["loss"] = f32(loss.reshape(1))
            for k, p in model.named_parameters():
                out["grad/" + k] = f32(p.grad)
        opt.step()
    for k, v in model.state_dict().items():
        out["after/" + k] = f32(v)
    return out


def make_fixture(name, outputs, height, width, base, batch, steps, seed):
    torch.manual_seed(seed)
    model = torch_models.make(name, outputs, height, width, base)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.randn(batch, 1, height, width)
    twin = copy.deepcopy(model)
    tensors = train_reference(model, x, torch.float64, steps)
    tensors["input"] = f32(x)
    # PyTorch's own float32 error on the same problem, per group: deep, narrow nets with BatchNorm
    # over few values are ill-conditioned, and fkp cannot be expected to beat float32 PyTorch there.
    torch32 = train_reference(twin, x, torch.float32, steps)
    deviation = {}
    for group in ["output", "loss", "grad/", "after/"]:
        keys = [k for k in tensors if k.startswith(group)]
        deviation["torch32_" + group.strip("/")] = max((tensors[k] - torch32[k]).abs().max().item() for k in keys)
    meta = dict(name=name, outputs=outputs, height=height, width=width, base=base or 0, batch=batch,
                lr=LR, weight_decay=WD, steps=steps, seed=seed, **deviation)
    path = os.path.join(OUT, f"{name}.safetensors")
    save_file(tensors, path, metadata={k: json.dumps(v) for k, v in meta.items()})
    print(f"{path}: {sum(p.numel() for p in model.parameters())} parameters, loss {tensors['loss'].item():.6f}, "
          f"{os.path.getsize(path)} bytes; PyTorch float32 vs float64: " +
          ", ".join(f"{k} {v:.1e}" for k, v in deviation.items()))


def write_repr(name):
    c = torch_models.default_config(name)
    model = torch_models.make(name, c["outputs"], c["height"], c["width"], c["base"])
    count = sum(p.numel() for p in model.parameters())
    with open(os.path.join(OUT, f"repr_{name}.txt"), "w") as f:
        f.write(f"{model}\nparameters: {count}\n")
    print(f"repr_{name}.txt: {count} parameters")


if __name__ == "__main__":
    # Arguments: the models to write (default: all), e.g. `make_model_fixtures.py mobilenet-pfld`.
    wanted = sys.argv[1:] or [case[0] for case in CASES]
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    for i, case in enumerate(CASES):
        if case[0] in wanted:
            make_fixture(*case, seed=1000 + i)
    for name in ["nosenet", "facenet", "resnet18", "resnet50", "unet", "mobilenet-pfld", "mobilenet-pip"]:
        if name in wanted:
            write_repr(name)
