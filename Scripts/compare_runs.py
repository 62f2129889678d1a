#!/usr/bin/env python3
"""Checks fkp run folders for Scripts/test-slurm (standard library and the zstd tool only).

  compare_runs.py same A B   the two runs' metrics.jsonl (without the timings) and the tensors of
                             their final checkpoints (the one `latest` names) are equal, bit for bit
  compare_runs.py intact A   every checkpoint decompresses and parses, `latest` names one of them,
                             and no temporary file of a checkpoint write is left

Prints one line saying what it found; exit status 0 when it holds, 1 when not, 2 on bad usage.
"""
import json
import os
import struct
import subprocess
import sys

TIMINGS = ("seconds", "images_per_s")   # differ between any two runs


class Broken(Exception):
    pass


def metrics(run):
    path = os.path.join(run, "metrics.jsonl")
    try:
        with open(path) as f:
            records = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        raise Broken(f"{path}: {e}")
    for record in records:
        for key in TIMINGS:
            record.pop(key, None)
    return records


def tensors(path):
    """The checkpoint's tensor table (without __metadata__, which names the run folder) and its bytes."""
    unpacked = subprocess.run(["zstd", "-dcq", path], capture_output=True)
    if unpacked.returncode != 0:
        raise Broken(f"{path}: zstd -d failed: {unpacked.stderr.decode().strip()}")
    raw = unpacked.stdout
    if len(raw) < 8:
        raise Broken(f"{path}: {len(raw)} bytes, no safetensors header")
    size = struct.unpack("<Q", raw[:8])[0]
    try:
        header = json.loads(raw[8:8 + size])
    except ValueError as e:
        raise Broken(f"{path}: safetensors header is not JSON: {e}")
    header.pop("__metadata__", None)
    data = raw[8 + size:]
    try:
        end = max((entry["data_offsets"][1] for entry in header.values()), default=0)
    except (KeyError, TypeError, IndexError):
        raise Broken(f"{path}: a tensor entry has no valid data_offsets")
    if end != len(data):
        raise Broken(f"{path}: tensors end at byte {end} of {len(data)}")
    return header, data


def latest(run):
    try:
        with open(os.path.join(run, "latest")) as f:
            name = f.read().strip()
    except OSError as e:
        raise Broken(f"{run}: no latest file: {e}")
    if not os.path.isfile(os.path.join(run, name)):
        raise Broken(f"{run}/latest names {name!r}, which does not exist")
    return name


def same(a, b):
    ma, mb = metrics(a), metrics(b)
    if ma != mb:
        first = next((i for i, (x, y) in enumerate(zip(ma, mb)) if x != y), min(len(ma), len(mb)))
        raise Broken(f"metrics differ at line {first + 1} ({len(ma)} and {len(mb)} lines): "
                     f"{ma[first] if first < len(ma) else None} vs {mb[first] if first < len(mb) else None}")
    na, nb = latest(a), latest(b)
    if na != nb:
        raise Broken(f"final checkpoints differ: {na} vs {nb}")
    (ha, da), (hb, db) = tensors(os.path.join(a, na)), tensors(os.path.join(b, nb))
    if ha != hb:
        raise Broken(f"{na}: tensor names, shapes or dtypes differ")
    for name, entry in ha.items():
        start, end = entry["data_offsets"]
        if da[start:end] != db[start:end]:
            raise Broken(f"{na}: tensor {name} differs")
    return f"same: {len(ma)} metrics lines, final checkpoint {na} with {len(ha)} equal tensors"


def intact(run):
    names = sorted(n for n in os.listdir(run) if n.endswith(".safetensors.zst"))
    leftovers = [n for n in os.listdir(run) if ".tmp-" in n]
    if leftovers:
        raise Broken(f"{run}: temporary checkpoint files left: {leftovers}")
    if not names:
        raise Broken(f"{run}: no checkpoint")
    for name in names:
        tensors(os.path.join(run, name))
    return f"intact: {len(names)} checkpoints parse, latest is {latest(run)}"


def main():
    commands = {"same": (same, 2), "intact": (intact, 1)}
    if len(sys.argv) < 2 or sys.argv[1] not in commands or len(sys.argv) - 2 != commands[sys.argv[1]][1]:
        print("usage: compare_runs.py same RUN_A RUN_B | intact RUN", file=sys.stderr)
        return 2
    function, _ = commands[sys.argv[1]]
    try:
        print(function(*sys.argv[2:]))
        return 0
    except Broken as e:
        print(e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
