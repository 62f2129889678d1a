#!/usr/bin/env python3
"""PyTorch reference values for the engine's layers, losses, optimizers and schedules.

Writes Tests/EngineTests/Fixtures/<family>.json: {"cases": [{"name", "config", "tensors": {name: {"shape", "data"}}}]}.
Tensors are PyTorch's (NCHW for images, state_dict layouts for parameters); values are float32
printed with 9 significant digits (exact). Seeded, CPU, float32. Run from the repository root:
    python3 Scripts/make_layer_fixtures.py                      # every family
    python3 Scripts/make_layer_fixtures.py depthwise losses     # only the named families
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "EngineTests", "Fixtures")


def t(x):
    x = x.detach().to(torch.float32).contiguous()
    return {"shape": list(x.shape), "data": [float("%.9g" % v) for v in x.reshape(-1).tolist()]}


def case(name, config, **tensors):
    return {"name": name, "config": config, "tensors": {k: t(v) for k, v in tensors.items()}}


def write(family, cases):
    path = os.path.join(OUT, family + ".json")
    with open(path, "w") as f:
        json.dump({"generator": "Scripts/make_layer_fixtures.py", "torch": torch.__version__, "cases": cases}, f,
                  separators=(",", ":"))
    print(f"{path}: {os.path.getsize(path)} bytes")


def forward_backward(module, x, params):
    """Runs module(x), backprops a random dy; returns y, dy, dx and {name: grad} for params."""
    x = x.clone().requires_grad_(True)
    y = module(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    grads = {n + "_grad": p.grad for n, p in params}
    return y, dy, x.grad, grads


def batchnorm():
    cases = []
    for name, shape, relu in [("train", (4, 3, 5, 6), False), ("train_relu", (2, 3, 4, 4), True)]:
        torch.manual_seed(1)
        bn = nn.BatchNorm2d(shape[1])
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2)
        initial = {"running_mean_before": bn.running_mean.clone(), "running_var_before": bn.running_var.clone()}
        x = torch.randn(shape) * 2 + 1
        module = nn.Sequential(bn, nn.ReLU()) if relu else bn
        bn.train()
        y, dy, dx, grads = forward_backward(module, x, [("weight", bn.weight), ("bias", bn.bias)])
        bn.eval()
        with torch.no_grad():
            y_eval = module(x)
        cases.append(case(name, {"fusedReLU": relu, "eps": bn.eps, "momentum": bn.momentum},
                          x=x, weight=bn.weight, bias=bn.bias, y=y, dy=dy, dx=dx, **grads, **initial,
                          running_mean=bn.running_mean, running_var=bn.running_var, y_eval=y_eval))
    write("batchnorm2d", cases)


def pooling():
    cases = []
    for k, s, p in [(2, 2, 0), (3, 2, 1), (3, 1, 1)]:
        torch.manual_seed(2)
        x = torch.randn(2, 3, 7, 9)
        y, dy, dx, _ = forward_backward(nn.MaxPool2d(k, s, p), x, [])
        cases.append(case(f"maxpool_k{k}_s{s}_p{p}", {"kernel": k, "stride": s, "padding": p}, x=x, y=y, dy=dy, dx=dx))
    torch.manual_seed(3)
    x = torch.randn(2, 4, 5, 6)
    y, dy, dx, _ = forward_backward(nn.AdaptiveAvgPool2d((1, 1)), x, [])
    cases.append(case("adaptiveavgpool", {}, x=x, y=y, dy=dy, dx=dx))
    write("pooling", cases)


def convolutions():
    cases = []
    for cin, cout, k, s, p, bias in [(3, 4, 2, 2, 0, True), (3, 2, 3, 2, 1, False), (2, 3, 4, 2, 1, True)]:
        torch.manual_seed(4)
        m = nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, bias=bias)
        x = torch.randn(2, cin, 4, 5)
        params = [("weight", m.weight)] + ([("bias", m.bias)] if bias else [])
        y, dy, dx, grads = forward_backward(m, x, params)
        extra = {"bias": m.bias} if bias else {}
        cases.append(case(f"convtranspose_k{k}_s{s}_p{p}", {"kind": "transpose", "in": cin, "out": cout, "kernel": k,
                                                            "stride": s, "padding": p, "bias": bias},
                          x=x, weight=m.weight, **extra, y=y, dy=dy, dx=dx, **grads))
    for cin, cout, k, s, p, bias in [(3, 4, 3, 2, 1, True), (2, 3, 1, 1, 0, False)]:
        torch.manual_seed(5)
        m = nn.Conv2d(cin, cout, k, stride=s, padding=p, bias=bias)
        x = torch.randn(2, cin, 6, 7)
        params = [("weight", m.weight)] + ([("bias", m.bias)] if bias else [])
        y, dy, dx, grads = forward_backward(m, x, params)
        extra = {"bias": m.bias} if bias else {}
        cases.append(case(f"conv_k{k}_s{s}_p{p}", {"kind": "conv", "in": cin, "out": cout, "kernel": k, "stride": s,
                                                   "padding": p, "bias": bias},
                          x=x, weight=m.weight, **extra, y=y, dy=dy, dx=dx, **grads))
    write("convolution", cases)


def depthwise():
    """nn.Conv2d(C, C, 3, stride, padding=1, groups=C) and nn.ReLU6: odd and even sizes, stride 1
    and 2, with and without bias, rows narrower and wider than the kernel's 16 weight-gradient lanes."""
    cases = []
    for n, c, h, w, s, bias in [(2, 3, 7, 9, 1, True), (2, 3, 7, 9, 2, False), (3, 5, 8, 6, 2, True),
                                (1, 4, 5, 5, 1, False), (2, 6, 11, 4, 2, True), (2, 2, 1, 3, 2, False),
                                (2, 2, 9, 37, 1, True), (1, 3, 6, 41, 2, False)]:
        torch.manual_seed(8)
        m = nn.Conv2d(c, c, 3, stride=s, padding=1, groups=c, bias=bias)
        x = torch.randn(n, c, h, w)
        params = [("weight", m.weight)] + ([("bias", m.bias)] if bias else [])
        y, dy, dx, grads = forward_backward(m, x, params)
        extra = {"bias": m.bias} if bias else {}
        cases.append(case(f"depthwise_n{n}_c{c}_{h}x{w}_s{s}" + ("_bias" if bias else ""),
                          {"kind": "depthwise", "channels": c, "stride": s, "bias": bias, "repr": repr(m)},
                          x=x, weight=m.weight, **extra, y=y, dy=dy, dx=dx, **grads))
    torch.manual_seed(9)
    x = torch.randn(2, 3, 4, 5) * 5   # values on both sides of 0 and 6
    y, dy, dx, _ = forward_backward(nn.ReLU6(), x, [])
    cases.append(case("relu6", {"kind": "relu6", "repr": repr(nn.ReLU6(inplace=True))}, x=x, y=y, dy=dy, dx=dx))
    write("depthwise", cases)


def heatmaps(n, k, h, w, gen):
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    out = torch.zeros(n, k, h, w)
    for i in range(n):
        for j in range(k):
            cy, cx = torch.rand(2, generator=gen) * torch.tensor([h - 1.0, w - 1.0])
            out[i, j] = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * 1.5 ** 2))
    return out


def losses():
    gen = torch.Generator().manual_seed(6)
    target = heatmaps(2, 3, 6, 7, gen)
    target[1, 2] = 0  # a landmark off the image: ignored by the spatial softmax loss
    pred = torch.randn(2, 3, 6, 7, generator=gen) * 0.5
    cases = []

    def add(name, config, fn, prediction=pred):
        p = prediction.clone().requires_grad_(True)
        loss = fn(p)
        loss.backward()
        cases.append(case(name, config, prediction=prediction, target=target, loss=loss.reshape(1), gradient=p.grad))

    add("mse", {"kind": "MSELoss"}, lambda p: F.mse_loss(p, target))
    add("l1", {"kind": "L1Loss"}, lambda p: F.l1_loss(p, target))
    weight = torch.where(target > 0.1, torch.tensor(8.0), torch.tensor(1.0))
    add("heatmap_mse", {"kind": "HeatmapMSELoss", "positiveWeight": 8.0}, lambda p: (weight * (p - target) ** 2).mean())

    def spatial(p):
        logp = F.log_softmax(p.reshape(6, -1), dim=1)
        t = target.reshape(6, -1)
        mass = t.sum(1)
        valid = mass > 1e-12
        tn = t[valid] / mass[valid].unsqueeze(1)
        return -(tn * logp[valid]).sum(1).mean()
    add("spatial_softmax_ce", {"kind": "SpatialSoftmaxCrossEntropy"}, spatial, prediction=pred * 4)
    write("losses", cases)


def coordinate_losses():
    """Losses on regression outputs: keypoints normalised to the crop (0 ... 1), [N, 2K]."""
    gen = torch.Generator().manual_seed(8)
    target = torch.rand(4, 10, generator=gen)
    # Errors from a few thousandths to ~0.3 of the crop: both sides of w = 10/128.
    pred = target + torch.randn(4, 10, generator=gen) * 0.08
    cases = []
    for w, eps in [(10 / 128, 2 / 128), (0.05, 0.01)]:
        p = pred.clone().requires_grad_(True)
        d = (p - target).abs()
        c = w - w * math.log(1 + w / eps)
        loss = torch.where(d < w, w * torch.log(1 + d / eps), d - c).mean()
        loss.backward()
        cases.append(case(f"wing_w{w:.4g}_eps{eps:.4g}", {"kind": "WingLoss", "width": w, "curvature": eps},
                          prediction=pred, target=target, loss=loss.reshape(1), gradient=p.grad))
    write("coordinate_losses", cases)


def optimizers():
    cases = []
    configs = [("adamw", lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
                {"kind": "AdamW", "lr": 0.01, "weightDecay": 0.05}),
               ("sgd_momentum", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
                {"kind": "SGD", "lr": 0.1, "momentum": 0.9, "weightDecay": 0.01, "nesterov": False}),
               ("sgd_nesterov", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.8, nesterov=True),
                {"kind": "SGD", "lr": 0.1, "momentum": 0.8, "weightDecay": 0.0, "nesterov": True})]
    for name, make, config in configs:
        torch.manual_seed(7)
        w = torch.randn(3, 4, requires_grad=True)
        b = torch.randn(3, requires_grad=True)
        tensors = {"weight": w.detach().clone(), "bias": b.detach().clone()}
        opt = make([w, b])
        for step in range(3):
            gw, gb = torch.randn(3, 4), torch.randn(3)
            tensors[f"grad{step}_weight"], tensors[f"grad{step}_bias"] = gw, gb
            w.grad, b.grad = gw.clone(), gb.clone()
            opt.step()
        tensors["weight_after"], tensors["bias_after"] = w.detach().clone(), b.detach().clone()
        for key, value in opt.state[w].items():
            if key != "step":
                tensors[f"{key}_weight"], tensors[f"{key}_bias"] = value, opt.state[b][key]
        cases.append(case(name, config, **tensors))
    write("optimizers", cases)


def schedules():
    def rates(make, steps=30):
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.1)
        sched = make(opt)
        out = []
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return torch.tensor(out)
    cases = [case("step", {"every": 7, "gamma": 0.5},
                  rates=rates(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5))),
             case("cosine", {"totalSteps": 20, "minFactor": 0.05},
                  rates=rates(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=0.005)))]
    write("schedules", cases)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    families = {"batchnorm2d": batchnorm, "pooling": pooling, "convolution": convolutions, "depthwise": depthwise,
                "losses": losses, "coordinate_losses": coordinate_losses, "optimizers": optimizers, "schedules": schedules}
    unknown = [name for name in sys.argv[1:] if name not in families]
    if unknown:
        sys.exit(f"unknown families {unknown}; known: {', '.join(families)}")
    for name in sys.argv[1:] or families:
        families[name]()
