#!/usr/bin/env python3
"""PyTorch side of Scripts/bench-vs-pytorch: the same training step as `fkp bench train`
(forward, MSE loss, backward, AdamW) on random input with the model definitions of
torch_models.py. Prints `images/s: X` as its last line."""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--inference", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = torch_models.default_config(a.model)
    model = torch_models.make(a.model, c["outputs"], c["height"], c["width"], c["base"])
    x = torch.rand(a.batch, 1, c["height"], c["width"]) * 2 - 1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    target = None

    def step():
        nonlocal target
        if a.inference:
            with torch.no_grad():
                return model(x)
        opt.zero_grad(set_to_none=False)
        y = model(x)
        if target is None:
            target = torch.rand(y.shape) * 2 - 1
        loss = torch.nn.functional.mse_loss(y, target)
        loss.backward()
        opt.step()
        return loss

    model.train(not a.inference)
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    seconds = time.perf_counter() - start
    print(f"torch {torch.__version__}, model {a.model}, batch {a.batch}, threads {a.threads}: "
          f"{1000 * seconds / a.steps:.2f} ms/step")
    print(f"images/s: {a.batch * a.steps / seconds:.2f}")


if __name__ == "__main__":
    main()
