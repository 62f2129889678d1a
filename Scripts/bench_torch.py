#!/usr/bin/env python3
"""PyTorch side of Scripts/bench-vs-pytorch: the same training step as `fkp bench train`
(forward, MSE loss, backward, AdamW) on random input with the model definitions of
torch_models.py: --warmup untimed steps (PyTorch allocates and creates its primitives in the first
ones), then steps timed one by one for at least --seconds; the figures use the median step.
Prints `images/s: X` as its last line."""
import argparse
import os
import resource
import statistics
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
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--steps", type=int, default=3, help="time at least this many steps")
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
    for _ in range(a.warmup):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = []
    start = time.perf_counter()
    while len(times) < a.steps or time.perf_counter() - start < a.seconds:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    median = statistics.median(times)
    print(f"torch {torch.__version__}, model {a.model}, batch {a.batch}, threads {a.threads}, "
          f"{'inference' if a.inference else 'training'}, {len(times)} steps: median {1000 * median:.2f} ms/step")
    print(f"minor page faults/step: {faults / len(times):.1f}")
    print(f"images/s: {a.batch / median:.2f}")

if __name__ == "__main__":
    main()
