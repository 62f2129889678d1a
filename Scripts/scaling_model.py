#!/usr/bin/env python3
"""The allreduce cost model behind docs/SCALING.md (run by Scripts/bench-scaling).

  sizes  MODELS FKP          the models' gradient bytes (4 x parameters, from `fkp summary`), comma-separated
  report DATA MODELS FKP OUT IMAGES
                             the alpha-beta fit, its check at 3 and 4 hosts, and the projection: Markdown on
                             stdout, OUT/projection.tsv, and IMAGES/scaling_*.png when matplotlib is importable

Standard library only, except the plots (matplotlib).
"""
import csv
import math
import os
import re
import statistics
import subprocess
import sys

BUCKET_BYTES = 25 << 20      # fkp's default --bucket-mb (GradientSync.defaultBucketBytes)
MIN_BUCKETS = 4              # overlap needs several buckets: the first starts only when its layers are done
HIDDEN = 0.57                # share of the allreduce fkp hides behind backward across two hosts (issue 22)
BACKWARD_SHARE = 2 / 3       # backward's share of a step: the window overlap can use (PERFORMANCE.md profiles)
TARGET = 0.90                # "scales" = weak-scaling efficiency at or above this
GLOBAL_BATCH_LIMIT = 256     # the largest batch of the published face-landmark recipes (mmpose's 300-W HRNetV2)
RANKS = [2, 4, 8, 16, 32, 64, 128, 256]
OVERLAPS = ["none", "fkp", "perfect"]
OVERLAP_LABEL = {"none": "no overlap", "fkp": f"fkp's measured overlap ({HIDDEN:.0%} hidden)",
                 "perfect": "perfect overlap (bound)"}


def fail(message):
    sys.exit(f"scaling_model: {message}")


# --- models ---------------------------------------------------------------------------------------

def read_models(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 8:
                fail(f"{path}: expected 8 tab-separated fields, got {len(fields)}: {line.strip()}")
            name, model, width, size, batch, threads, ips, source = fields
            rows.append(dict(name=name, model=model, width=width, size=size, batch=int(batch),
                             threads=int(threads), ips=None if ips == "-" else float(ips), source=source))
    return rows


def summary_args(row):
    args = ["--model", row["model"]]
    if row["width"] != "-":
        args += ["--base-width", row["width"]]
    if row["size"] != "-":
        w, _, h = row["size"].partition("x")
        args += ["--height", h or w, "--width", w]
    return args


def parameters(fkp, row):
    out = subprocess.run([fkp, "summary"] + summary_args(row), capture_output=True, text=True)
    last = out.stdout.strip().splitlines()[-1:] or [""]
    if out.returncode != 0 or not last[0].startswith("parameters: "):
        fail(f"fkp summary {' '.join(summary_args(row))} failed: {out.stderr.strip() or last[0]}")
    return int(last[0].split()[1])


# --- measurements and the fit ----------------------------------------------------------------------

def read_medians(path):
    """DATA rows: round kind rate hosts bytes median_ms -> {(kind, rate, hosts): {bytes: median s}}."""
    times = {}
    with open(path) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            key = (row["kind"], row["rate"], int(row["hosts"]))
            times.setdefault(key, {}).setdefault(int(row["bytes"]), []).append(float(row["median_ms"]) / 1e3)
    return {key: {n: statistics.median(ts) for n, ts in sizes.items()} for key, sizes in times.items()}


def ring_time(n, p, alpha, beta, buckets=1):
    """Ring allreduce of n bytes in `buckets` equal pieces on p ranks: 2(p-1) steps of n/p bytes each."""
    return 2 * (p - 1) * buckets * alpha + 2 * (p - 1) / p * n * beta


def binomial_time(n, p, alpha, beta, buckets=1):
    """Open MPI libnbc's in-place iallreduce: a binomial reduce, then a binomial broadcast, of all n bytes."""
    rounds = 2 * math.ceil(math.log2(p))
    return rounds * buckets * alpha + rounds * n * beta


def fit(times):
    """Least squares of T = 2a + n b on the 2-rank medians (the ring at p = 2), weighted by 1/T^2 so that
    each size's relative error counts the same (times span four decades). Returns (alpha s, beta s/B)."""
    w = {n: 1 / t ** 2 for n, t in times.items()}
    sw, sx, sy = sum(w.values()), sum(w[n] * n for n in times), sum(w[n] * t for n, t in times.items())
    sxx, sxy = sum(w[n] * n * n for n in times), sum(w[n] * n * t for n, t in times.items())
    beta = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
    return (sy - beta * sx) / sw / 2, beta


def errors(times, p, alpha, beta, model=ring_time):
    return {n: model(n, p, alpha, beta) / t - 1 for n, t in times.items()}


def gbps(beta):
    return 1 / beta / 1e9


def rate_bytes(rate):
    """Bytes per second of a tc rate such as 10gbit."""
    match = re.fullmatch(r"([0-9.]+)([kmgt]?)bit", rate)
    if not match:
        fail(f"not a rate: {rate}")
    return float(match[1]) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[match[2]] / 8


def human_bytes(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


# --- projection ------------------------------------------------------------------------------------

def project(model, p, alpha, beta, overlap, allreduce=ring_time):
    """One rank's step on p ranks: (efficiency, images/s, alpha part s, beta part s) under `overlap`."""
    n, step = model["bytes"], model["step"]
    buckets = math.ceil(n / BUCKET_BYTES)
    if overlap != "none":   # overlap needs several buckets: --bucket-mb n/4 when 25 MB gives fewer
        buckets = max(buckets, MIN_BUCKETS)
    total = allreduce(n, p, alpha, beta, buckets)
    latency = allreduce(n, p, alpha, 0, buckets)
    window = BACKWARD_SHARE * step
    exposed = {"none": total,
               "fkp": max((1 - HIDDEN) * total, total - window),
               "perfect": max(0.0, total - window)}[overlap]
    return step / (step + exposed), p * model["batch"] / (step + exposed), latency, total - latency


def stop(model, alpha, beta, overlap, allreduce=ring_time, limit=256):
    """First rank count up to `limit` at which the model stops scaling, and why: the network (alpha or
    beta, whichever term is larger there) or the batch (global batch past GLOBAL_BATCH_LIMIT)."""
    batch_stop = GLOBAL_BATCH_LIMIT // model["batch"] + 1
    for p in range(2, limit + 1):
        if p >= batch_stop:
            return p, "batch"
        eff, _, a, b = project(model, p, alpha, beta, overlap, allreduce)
        if eff < TARGET:
            return p, "α" if a > b else "β"
    return None, ""


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "sizes":
        models = read_models(sys.argv[2])
        print(",".join(str(4 * parameters(sys.argv[3], m)) for m in models))
    elif len(sys.argv) == 7 and sys.argv[1] == "report":
        report(*sys.argv[2:])
    else:
        fail("usage: scaling_model.py sizes MODELS FKP | report DATA MODELS FKP OUT IMAGES")


def report(data, models_path, fkp, out, images):
    medians = read_medians(data)
    models = read_models(models_path)
    for m in models:
        if m["ips"] is None:
            fail(f"{models_path}: no images/s for {m['name']}: measure it (Scripts/bench-scaling --measure-steps)")
        m["params"] = parameters(fkp, m)
        m["bytes"] = 4 * m["params"]
        m["step"] = m["batch"] / m["ips"]

    rates = sorted({rate for kind, rate, _ in medians if kind == "allreduce-ring"},
                   key=lambda r: math.inf if r == "none" else rate_bytes(r))
    fits = {}
    print("## Fit: ring allreduce, T(n, p) = 2(p-1)·α + 2(p-1)/p·n·β, fitted at 2 hosts\n")
    print("| link | α (µs) | β as bandwidth (GB/s) | of the link | error at 3 hosts: median, worst | at 4 hosts |")
    print("| --- | --- | --- | --- | --- | --- |")
    for rate in rates:
        two = medians.get(("allreduce-ring", rate, 2))
        if not two or len(two) < 2:
            continue
        alpha, beta = fit(two)
        fits[rate] = (alpha, beta)
        cells = []
        for p in (3, 4):
            times = medians.get(("allreduce-ring", rate, p))
            if times:
                e = errors(times, p, alpha, beta)
                worst = max(e, key=lambda n: abs(e[n]))
                cells.append(f"{statistics.median(abs(x) for x in e.values()):.0%}, "
                             f"{e[worst]:+.0%} at {human_bytes(worst)}")
            else:
                cells.append("–")
        share = "–" if rate == "none" else f"{gbps(beta) * 1e9 / rate_bytes(rate):.0%}"
        print(f"| {rate} | {alpha * 1e6:.1f} | {gbps(beta):.2f} | {share} | {cells[0]} | {cells[1]} |")
    if not fits:
        fail(f"{data}: no 2-host allreduce-ring measurements to fit")
    print("\n(error: model / measured − 1 over every size; + means the model is slower than measured)\n")

    print("## Measured medians (ms; allreduce-ring unless named)\n")
    sizes = sorted({n for times in medians.values() for n in times})
    keys = sorted(medians, key=lambda k: (k[0] != "allreduce-ring", k[0],
                                          math.inf if k[1] == "none" else rate_bytes(k[1]), k[2]))
    print("| bytes | " + " | ".join(f"{r} {p}h" + ("" if kind == "allreduce-ring" else f" {kind}")
                                    for kind, r, p in keys) + " |")
    print("| --- " * (len(keys) + 1) + "|")
    for n in sizes:
        row = [f"{medians[k][n] * 1e3:.3f}" if n in medians[k] else "–" for k in keys]
        print(f"| {human_bytes(n)} | " + " | ".join(row) + " |")
    print()

    # fkp's own call (in-place MPI_Iallreduce): Open MPI's default algorithm against the ring, predicted
    # from the same fit.
    for kind, model in (("iallreduce", binomial_time), ("iallreduce-ring", ring_time)):
        for (k, rate, p), times in sorted(medians.items()):
            if k == kind and rate in fits:
                e = errors(times, p, *fits[rate], model=model)
                big = [x for n, x in e.items() if n >= 1 << 20]
                ratio = [times[n] / medians[("allreduce-ring", rate, p)][n] for n in times
                         if n >= 1 << 20 and n in medians.get(("allreduce-ring", rate, p), {})]
                print(f"- {kind} at {rate}, {p} hosts: {model.__name__.split('_')[0]} model error "
                      f"median {statistics.median(abs(x) for x in e.values()):.0%} (≥ 1 MiB: "
                      f"{statistics.median(abs(x) for x in big) if big else float('nan'):.0%}); "
                      f"time / blocking ring ≥ 1 MiB: median {statistics.median(ratio) if ratio else float('nan'):.2f}")
    print()

    # Projection rates: a shaped rate is used as measured when the shaper, not this machine, limited it
    # (its bandwidth clearly below the unshaped ceiling); otherwise it is projected from the slowest
    # measured rate's alpha with beta = the link's line rate.
    ceiling = gbps(fits["none"][1]) if "none" in fits else math.inf
    measured = [r for r in fits if r != "none" and gbps(fits[r][1]) < 0.9 * ceiling]
    base = measured[0] if measured else "none"
    projection = {}
    print("## Rates used for the projection\n")
    for rate in [r for r in rates if r != "none"]:
        if rate in measured:
            projection[rate] = (fits[rate], f"measured at {rate}")
        else:
            projection[rate] = ((fits[base][0], 1 / rate_bytes(rate)),
                                f"projected: α from {base}, β = line rate (this machine moves only "
                                f"{ceiling:.2f} GB/s unshaped)")
        (alpha, beta), how = projection[rate]
        print(f"- {rate}: α {alpha * 1e6:.1f} µs, {gbps(beta):.2f} GB/s — {how}")
    print()

    print("## Models (one rank = 2 threads of this VM)\n")
    print("| model | parameters | gradient | buckets (25 MB / overlap) | batch | step (ms) | source |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for m in models:
        k = math.ceil(m["bytes"] / BUCKET_BYTES)
        print(f"| {m['name']} | {m['params']:,} | {human_bytes(m['bytes'])} | {k} / {max(k, MIN_BUCKETS)} | "
              f"{m['batch']} | {m['step'] * 1e3:.1f} | {m['source']} |")
    print()

    rows = []
    for rate, ((alpha, beta), how) in projection.items():
        print(f"## Weak-scaling efficiency at {rate} ({how})\n")
        print("| model | overlap | " + " | ".join(f"{p}" for p in RANKS) +
              " | images/s at 16, 64 | stops scaling at |")
        print("| --- | --- | " + "--- | " * len(RANKS) + "--- | --- |")
        for m in models:
            for overlap in OVERLAPS:
                cells = []
                for p in RANKS:
                    eff, ips, a, b = project(m, p, alpha, beta, overlap)
                    rows.append([rate, m["name"], overlap, p, f"{eff:.4f}", f"{ips:.2f}", f"{a * 1e3:.3f}", f"{b * 1e3:.3f}"])
                    cells.append(f"{eff:.0%}" if eff >= TARGET else f"*{eff:.0%}*")
                ips = [project(m, p, alpha, beta, overlap)[1] for p in (16, 64)]
                at, why = stop(m, alpha, beta, overlap)
                print(f"| {m['name']} | {overlap} | " + " | ".join(cells) +
                      f" | {ips[0]:,.0f}, {ips[1]:,.0f} | " + (f"{at} ({why})" if at else "> 256") + " |")
        print()

    with open(os.path.join(out, "projection.tsv"), "w") as f:
        f.write("rate\tmodel\toverlap\tranks\tefficiency\timages_per_s\talpha_ms\tbeta_ms\n")
        for row in rows:
            f.write("\t".join(str(x) for x in row) + "\n")

    headline(models, projection)
    plot(models, projection, medians, fits, images)


def headline(models, projection):
    """Jobs of N nodes with R ranks (2 threads each) per node: the ring crosses each node's NIC once
    in and once out per step, so the bandwidth term is the same for any R; the latency term grows
    with the N x R ranks, and so does the global batch."""
    print("## Jobs: nodes x ranks per node (ranks of 2 threads; measured overlap)\n")
    print("| model | link | nodes | ranks/node | global batch | efficiency, ring | efficiency, libnbc default (binomial) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for m in models:
        if m["name"] not in ("resnet50", "unet", "unet-fast"):
            continue
        for rate, ((alpha, beta), _) in projection.items():
            for nodes in (16, 64):
                for per_node in (1, 16):
                    p = nodes * per_node
                    ring = project(m, p, alpha, beta, "fkp")[0]
                    binomial = project(m, p, alpha, beta, "fkp", binomial_time)[0]
                    print(f"| {m['name']} | {rate} | {nodes} | {per_node} | {p * m['batch']:,} | {ring:.0%} | {binomial:.0%} |")
    print()


def plot(models, projection, medians, fits, images):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(plots skipped: no matplotlib in this Python; PYTHON=/path/to/python with matplotlib)")
        return
    os.makedirs(images, exist_ok=True)

    ranks = sorted({int(round(2 ** (i / 8))) for i in range(8, 65)})
    fig, axes = plt.subplots(len(projection), 3, figsize=(15, 4.6 * len(projection)), sharex=True, sharey=True,
                             squeeze=False)
    colours = plt.cm.tab10.colors
    for row, (rate, ((alpha, beta), how)) in enumerate(projection.items()):
        for col, overlap in enumerate(OVERLAPS):
            ax = axes[row][col]
            for i, m in enumerate(models):
                eff = [project(m, p, alpha, beta, overlap)[0] for p in ranks]
                ax.plot(ranks, eff, color=colours[i % 10], label=f"{m['name']} (b{m['batch']})")
                at, why = stop(m, alpha, beta, overlap)
                if at:
                    ax.plot([at], [project(m, at, alpha, beta, overlap)[0]], "o" if why != "batch" else "x",
                            color=colours[i % 10], markersize=7)
            ax.axhline(TARGET, color="grey", linestyle="--", linewidth=0.8)
            ax.set_xscale("log", base=2)
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            ax.set_title(f"{rate}, {OVERLAP_LABEL[overlap]}" + ("\n(β projected)" if "projected" in how else ""),
                         fontsize=10)
            if row == len(projection) - 1:
                ax.set_xlabel("ranks (1 per node, 2 threads each)")
            if col == 0:
                ax.set_ylabel("weak-scaling efficiency")
    axes[0][0].legend(fontsize=8, loc="lower left")
    fig.suptitle("fkp weak scaling projected from the measured ring-allreduce α–β fit "
                 "(o: below 90 % from the network, x: global batch past 256)", fontsize=11)
    fig.tight_layout()
    fig.savefig(os.path.join(images, "scaling_projection.png"), dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(fits), figsize=(5 * len(fits), 4.2), squeeze=False)
    for ax, (rate, (alpha, beta)) in zip(axes[0], fits.items()):
        for p, colour in ((2, "C0"), (3, "C1"), (4, "C2")):
            times = medians.get(("allreduce-ring", rate, p))
            if not times:
                continue
            sizes = sorted(times)
            ax.plot(sizes, [times[n] * 1e3 for n in sizes], "o", color=colour, markersize=4, label=f"{p} hosts measured")
            ax.plot(sizes, [ring_time(n, p, alpha, beta) * 1e3 for n in sizes], "-" if p == 2 else "--",
                    color=colour, label=f"{p} hosts model" + (" (fit)" if p == 2 else ""))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("message (bytes)")
        ax.set_ylabel("allreduce median (ms)")
        ax.set_title(f"{rate}: α {alpha * 1e6:.0f} µs, {gbps(beta):.2f} GB/s", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(images, "scaling_allreduce_fit.png"), dpi=110)
    plt.close(fig)
    print(f"(plots: {images}/scaling_projection.png, {images}/scaling_allreduce_fit.png)")


if __name__ == "__main__":
    main()
