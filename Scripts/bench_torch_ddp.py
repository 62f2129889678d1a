#!/usr/bin/env python3
"""PyTorch DDP side of Scripts/bench-ddp-vs-pytorch: the data-parallel training step of
`mpirun -np N fkp bench train` (forward, MSE loss, backward with DDP's bucketed, overlapped gloo
allreduce, AdamW) on random input with the models of torch_models.py. Start it with torchrun:

    torchrun --standalone --nproc_per_node 2 Scripts/bench_torch_ddp.py --model facenet --batch 32

Each rank is pinned to its own `--threads` cores (as mpirun's default binding pins fkp's ranks).
Rank 0 prints the global images/s (the sum over ranks) as its last line: `images/s: X`."""
import argparse
import os
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=32, help="per rank")
    ap.add_argument("--threads", type=int, default=1, help="per rank")
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", rank))
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= (local + 1) * a.threads:
        os.sched_setaffinity(0, cores[local * a.threads:(local + 1) * a.threads])
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = torch_models.default_config(a.model)
    model = DistributedDataParallel(torch_models.make(a.model, c["outputs"], c["height"], c["width"], c["base"]))
    x = torch.rand(a.batch, 1, c["height"], c["width"]) * 2 - 1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    target = None

    def step():
        nonlocal target
        opt.zero_grad(set_to_none=False)
        y = model(x)
        if target is None:
            target = torch.rand(y.shape) * 2 - 1
        torch.nn.functional.mse_loss(y, target).backward()
        opt.step()

    model.train()
    for _ in range(3):  # warm-up
        step()
    dist.barrier()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    seconds = time.perf_counter() - start
    rate = torch.tensor([a.batch * a.steps / seconds], dtype=torch.float64)
    dist.all_reduce(rate)
    if rank == 0:
        print(f"torch {torch.__version__} DDP gloo, model {a.model}, batch {a.batch} per rank, {world} ranks x "
              f"{a.threads} threads: {1000 * seconds / a.steps:.2f} ms/step (rank 0)")
        print(f"images/s: {rate.item():.2f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
