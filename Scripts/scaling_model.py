#!/usr/bin/env python3
"""The allreduce cost model behind docs/SCALING.md (run by Scripts/bench-scaling).

  sizes  MODELS FKP          the models' gradient bytes (4 x parameters, from `fkp summary`), comma-separated
  report DATA MODELS FKP OUT IMAGES RATES
                             the alpha-beta fit, its check at 3 and 4 hosts, and the projection to the link
                             RATES (comma-separated): Markdown on stdout, OUT/projection.tsv, and
                             IMAGES/scaling_*.png when matplotlib is importable

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
BUCKET_CHOICES = (1, 2, 4, 8, 16)   # bucket counts tried per point (--bucket-mb = gradient MB / count)
HIDDEN = 0.57                # share of the allreduce fkp hides behind backward across two hosts (issue 22)
BACKWARD_SHARE = 2 / 3       # backward's share of a step: the window overlap can use (PERFORMANCE.md profiles)
SMALL = 64 << 10             # the fit's latency regime: messages up to this size ...
LARGE = 16 << 20             # ... and its bandwidth regime: from this size up
BOUND = 0.8                  # a shaped link "binds" when the allreduce moves at least this share of it
TARGET = 0.90                # "scales" = weak-scaling efficiency at or above this
GLOBAL_BATCH_LIMIT = 256     # the largest batch of the published face-landmark recipes (mmpose's 300-W HRNetV2)
RANKS = [2, 4, 8, 16, 32, 64, 128, 256]
NODE_CORES = 32              # the jobs tables' node: 32 cores, as fast per core as this VM's
NODE_RANKS = 2               # ... run as a rank per socket at a fixed global batch
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


def line(points):
    """Least squares of T = a + n b over {n: T}, weighted by 1/T^2 (each point's relative error counts
    the same). Returns (a, b)."""
    w = {n: 1 / t ** 2 for n, t in points.items()}
    sw, sx, sy = sum(w.values()), sum(w[n] * n for n in points), sum(w[n] * t for n, t in points.items())
    sxx, sxy = sum(w[n] * n * n for n in points), sum(w[n] * n * t for n, t in points.items())
    b = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
    return (sy - b * sx) / sw, b


def fit(times):
    """alpha and beta from the 2-rank medians (the ring at p = 2: T = 2 alpha + n beta), each from its
    own regime: 2 alpha is the intercept of the weighted least-squares line through the messages up to
    SMALL, beta the slope through those from LARGE up (given that intercept). One line through every
    size does not fit here: on this VM messages up to a few MiB stay in the caches and move 3 to 5 times
    faster per byte than a gradient bucket streaming from memory (the model is then slower than
    measured on them, as reported). Returns (alpha s, beta s/B)."""
    small = {n: t for n, t in times.items() if n <= SMALL}
    large = {n: t for n, t in times.items() if n >= LARGE}
    if len(small) < 2 or not large:
        fail(f"the fit needs 2-host sizes up to {human_bytes(SMALL)} (two) and from {human_bytes(LARGE)} up")
    alpha = max(0.0, line(small)[0] / 2)
    beta = sum(n * (t - 2 * alpha) / t ** 2 for n, t in large.items()) / sum(n * n / t ** 2 for n, t in large.items())
    return alpha, beta


def median_error(e, keep):
    values = [x for n, x in e.items() if keep(n)]
    return f"{statistics.median(values):+.0%}" if values else "–"


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
    """One rank's step on p ranks under `overlap`, with the best bucket count of BUCKET_CHOICES: more
    buckets let more of the allreduce run during backward but pay alpha once per bucket each step.
    One bucket cannot overlap at all (it starts when backward ends), and even with perfect overlap the
    last bucket (the first layers' gradients, done last) runs after backward. Returns (efficiency,
    images/s, alpha part s, beta part s, buckets)."""
    n, step = model["bytes"], model["step"]
    window = BACKWARD_SHARE * step
    best = None
    for buckets in BUCKET_CHOICES:
        total = allreduce(n, p, alpha, beta, buckets)
        if overlap == "none" or buckets == 1:
            exposed = total
        elif overlap == "fkp":
            exposed = max((1 - HIDDEN) * total, total / buckets, total - window)
        else:
            exposed = max(total / buckets, total - window)
        if best is None or exposed < best[0]:
            latency = allreduce(n, p, alpha, 0, buckets)
            best = (exposed, latency, total - latency, buckets)
    exposed, latency, bandwidth, buckets = best
    return step / (step + exposed), p * model["batch"] / (step + exposed), latency, bandwidth, buckets


def network_stop(model, alpha, beta, overlap, allreduce=ring_time, limit=256):
    """First rank count up to `limit` whose efficiency falls below TARGET, and why: α or β, whichever
    term of the allreduce is larger there. (None, "") when it never does."""
    for p in range(2, limit + 1):
        eff, _, a, b, _ = project(model, p, alpha, beta, overlap, allreduce)
        if eff < TARGET:
            return p, "α" if a > b else "β"
    return None, ""


def batch_stop(model):
    """First rank count whose global batch (ranks x per-rank batch) passes GLOBAL_BATCH_LIMIT."""
    return GLOBAL_BATCH_LIMIT // model["batch"] + 1


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "sizes":
        models = read_models(sys.argv[2])
        print(",".join(str(4 * parameters(sys.argv[3], m)) for m in models))
    elif len(sys.argv) == 8 and sys.argv[1] == "report":
        report(*sys.argv[2:7], sys.argv[7].split(","))
    else:
        fail("usage: scaling_model.py sizes MODELS FKP | report DATA MODELS FKP OUT IMAGES RATES")


def report(data, models_path, fkp, out, images, targets):
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
    print(f"| link | α (µs) | β as bandwidth (GB/s) | of the link | 2 hosts: ≤ {human_bytes(SMALL)}, cache band, "
          f"≥ {human_bytes(LARGE)} | 3 hosts | 4 hosts |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for rate in rates:
        two = medians.get(("allreduce-ring", rate, 2))
        if not two or len(two) < 2:
            continue
        alpha, beta = fit(two)
        fits[rate] = (alpha, beta)
        cells = []
        for p in (2, 3, 4):
            times = medians.get(("allreduce-ring", rate, p))
            if times:
                e = errors(times, p, alpha, beta)
                cells.append(", ".join(median_error(e, keep) for keep in (
                    lambda n: n <= SMALL, lambda n: SMALL < n < LARGE, lambda n: n >= LARGE)))
            else:
                cells.append("–")
        share = "–" if rate == "none" else f"{gbps(beta) * 1e9 / rate_bytes(rate):.0%}"
        print(f"| {rate} | {alpha * 1e6:.1f} | {gbps(beta):.2f} | {share} | " + " | ".join(cells) + " |")
    if not fits:
        fail(f"{data}: no 2-host allreduce-ring measurements to fit")
    print("\n(median of model / measured − 1 over the sizes in each range; + means the model is slower than measured)\n")

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

    # fkp's own call (in-place MPI_Iallreduce) with Open MPI's default algorithm and with ring forced,
    # against the blocking ring at the same rate and hosts.
    print("## fkp's call: in-place MPI_Iallreduce against the blocking ring (messages ≥ 4 MiB)\n")
    print("| call | link | hosts | time / blocking ring, measured | predicted |")
    print("| --- | --- | --- | --- | --- |")
    for kind, model in (("iallreduce", binomial_time), ("iallreduce-ring", ring_time)):
        for (k, rate, p), times in sorted(medians.items()):
            ring = medians.get(("allreduce-ring", rate, p), {})
            ratio = [times[n] / ring[n] for n in times if n >= 4 << 20 and n in ring]
            if k == kind and ratio:
                predicted = model(1 << 30, p, 0, 1) / ring_time(1 << 30, p, 0, 1)
                print(f"| {kind} ({'libnbc default: binomial' if model is binomial_time else 'ring forced'}) | "
                      f"{rate} | {p} | {statistics.median(ratio):.2f} | {predicted:.2f} |")
    print()

    # Projection rates: a rate whose link bound the measurement (the allreduce moved at least BOUND of
    # it) is used as fitted; otherwise this machine, not the link, set the bandwidth, so alpha comes from
    # the first projected rate's fit and beta is the link's line rate.
    for rate in targets:
        rate_bytes(rate)
    ceiling = gbps(fits["none"][1]) if "none" in fits else math.nan
    bound = [r for r in fits if r != "none" and gbps(fits[r][1]) * 1e9 >= BOUND * rate_bytes(r)]
    if targets[0] not in fits:
        fail(f"{data}: no 2-host measurements at {targets[0]}, the rate whose α the projection uses")
    projection = {}
    print("## Rates used for the projection\n")
    for rate in targets:
        if rate in bound:
            projection[rate] = (fits[rate], f"fitted at {rate}")
        else:
            projection[rate] = ((fits[targets[0]][0], 1 / rate_bytes(rate)),
                                f"projected: α fitted at {targets[0]}, β = the line rate "
                                f"(the allreduce here moves {ceiling:.2f} GB/s unshaped)")
        (alpha, beta), how = projection[rate]
        print(f"- {rate}: α {alpha * 1e6:.1f} µs, {gbps(beta):.2f} GB/s — {how}")
    print()

    print("## Models (one rank = 2 threads of this VM)\n")
    print(f"| model | parameters | gradient | buckets at 25 MB | batch | step (ms) | global batch > {GLOBAL_BATCH_LIMIT} from | source |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in models:
        print(f"| {m['name']} | {m['params']:,} | {human_bytes(m['bytes'])} | {math.ceil(m['bytes'] / BUCKET_BYTES)} | "
              f"{m['batch']} | {m['step'] * 1e3:.1f} | {batch_stop(m)} ranks | {m['source']} |")
    print()

    rows = []
    for rate, ((alpha, beta), how) in projection.items():
        print(f"## Weak-scaling efficiency at {rate} ({how})\n")
        print("| model | overlap | " + " | ".join(f"{p}" for p in RANKS) +
              " | images/s at 16, 64 | buckets at 64 | below 90 % from (why) |")
        print("| --- | --- | " + "--- | " * len(RANKS) + "--- | --- | --- |")
        for m in models:
            for overlap in OVERLAPS:
                cells = []
                for p in RANKS:
                    eff, ips, a, b, k = project(m, p, alpha, beta, overlap)
                    rows.append([rate, m["name"], overlap, p, f"{eff:.4f}", f"{ips:.2f}", f"{a * 1e3:.3f}", f"{b * 1e3:.3f}", k])
                    cells.append(f"{eff:.0%}" if eff >= TARGET else f"*{eff:.0%}*")
                ips = [project(m, p, alpha, beta, overlap)[1] for p in (16, 64)]
                at, why = network_stop(m, alpha, beta, overlap)
                print(f"| {m['name']} | {overlap} | " + " | ".join(cells) +
                      f" | {ips[0]:,.0f}, {ips[1]:,.0f} | {project(m, 64, alpha, beta, overlap)[4]} | " +
                      (f"{at} ({why})" if at else "> 256") + " |")
        print()

    with open(os.path.join(out, "projection.tsv"), "w") as f:
        f.write("rate\tmodel\toverlap\tranks\tefficiency\timages_per_s\talpha_ms\tbeta_ms\tbuckets\n")
        for row in rows:
            f.write("\t".join(str(x) for x in row) + "\n")

    headline(models, projection)
    plot(models, projection, medians, fits, images)


def headline(models, projection):
    """Jobs of N nodes of NODE_CORES cores. Ranks are numbered node by node, so the ring crosses each
    node's NIC once in and once out: the bandwidth term is the same for any ranks per node, while the
    latency term grows with the total ranks."""
    print("## Jobs of 16 and 64 nodes (fkp's measured overlap)\n")
    print(f"Weak scaling: {NODE_CORES // 2} ranks of 2 threads per {NODE_CORES}-core node, each at the table's batch.\n")
    print("| model | link | nodes | global batch | efficiency, ring (buckets) | libnbc default (binomial) |")
    print("| --- | --- | --- | --- | --- | --- |")
    per_node = NODE_CORES // 2
    for m in models:
        for rate, ((alpha, beta), _) in projection.items():
            for nodes in (16, 64):
                p = nodes * per_node
                eff, _, _, _, k = project(m, p, alpha, beta, "fkp")
                binomial = project(m, p, alpha, beta, "fkp", binomial_time)[0]
                print(f"| {m['name']} | {rate} | {nodes} | {p * m['batch']:,} | {eff:.0%} ({k}) | {binomial:.0%} |")
    print()
    print(f"Global batch {GLOBAL_BATCH_LIMIT}: {NODE_RANKS} ranks of {NODE_CORES // NODE_RANKS} threads per node, "
          f"each {NODE_CORES // NODE_RANKS // 2}x a 2-thread rank's speed (perfect thread scaling) and "
          f"time per image independent of the batch (both optimistic for the compute, so pessimistic for "
          f"the efficiency).\n")
    print("| model | nodes | batch per rank | step (ms) | " +
          " | ".join(f"{rate}: efficiency, images/s" for rate in projection) + " |")
    print("| --- | --- | --- | --- | " + "--- | " * len(projection))
    for m in models:
        for nodes in (4, 16, 64):
            p = nodes * NODE_RANKS
            batch = GLOBAL_BATCH_LIMIT / p
            rank = dict(m, batch=batch, step=batch / (m["ips"] * NODE_CORES / NODE_RANKS / 2))
            cells = []
            for rate, ((alpha, beta), _) in projection.items():
                eff, ips, _, _, k = project(rank, p, alpha, beta, "fkp")
                cells.append(f"{eff:.0%}, {ips:,.0f}")
            ms = rank["step"] * 1e3
            step = f"{ms:,.0f}" if ms >= 10 else f"{ms:.2g}"
            print(f"| {m['name']} | {nodes} | {batch:g} | {step} | " + " | ".join(cells) + " |")
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
                at, why = network_stop(m, alpha, beta, overlap)
                if at:
                    ax.plot([at], [project(m, at, alpha, beta, overlap)[0]], "o", color=colours[i % 10], markersize=7)
                at = batch_stop(m)
                ax.plot([at], [project(m, at, alpha, beta, overlap)[0]], "x", color=colours[i % 10], markersize=8)
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
                 "(o: below 90 % from the network; x: global batch past 256)", fontsize=11)
    fig.tight_layout()
    fig.savefig(os.path.join(images, "scaling_projection.png"), dpi=110)
    plt.close(fig)

    columns = min(2, len(fits))
    rows = math.ceil(len(fits) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 4.6 * rows), squeeze=False)
    for ax in axes.flat[len(fits):]:
        ax.set_visible(False)
    for ax, (rate, (alpha, beta)) in zip(axes.flat, fits.items()):
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
