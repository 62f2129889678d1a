#!/usr/bin/env python3
"""Read a run's TensorBoard event files with TensorBoard's own reader and compare them with metrics.jsonl.

    python3 Scripts/check_tensorboard_events.py runs/default [--images NAME,...]

EventAccumulator (tensorboard.backend.event_processing) loads every event file of the run folder,
as `tensorboard --logdir` does (a resumed run's restart marker drops the steps it wrote again).
Checks that:
  - each metrics.jsonl key other than epoch and step is a scalar tag with one value per line, at
    the line's step, equal to the line's value as float32 (JSON null: NaN), and no other
    per-epoch tag exists;
  - `step/train_loss` has one value per optimizer step, and each epoch's mean of them is the
    line's train_loss; `step/lr` at the epoch's last step is the line's lr;
  - the pictures named with --images are image summaries.
Exits 1 with a message naming the first mismatch. Needs tensorboard and numpy.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
from tensorboard.backend.event_processing import event_accumulator

STEP_TAGS = ("step/train_loss", "step/lr")


def fail(message: str) -> None:
    print(f"check_tensorboard_events: {message}", file=sys.stderr)
    sys.exit(1)


def same_float32(expected, actual: float) -> bool:
    """metrics.jsonl's double (None: not finite) against the event's float32."""
    if expected is None:
        return not math.isfinite(actual)
    return np.float32(expected) == np.float32(actual)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--images", default="", help="comma-separated picture names expected as image summaries")
    args = parser.parse_args()
    with open(os.path.join(args.run, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    if not records:
        fail(f"{args.run}/metrics.jsonl has no lines")
    # 0: keep every event (the default keeps a sample of long series).
    reader = event_accumulator.EventAccumulator(args.run, size_guidance={event_accumulator.SCALARS: 0,
                                                                          event_accumulator.IMAGES: 0})
    reader.Reload()
    tags = reader.Tags()
    keys = sorted({key for record in records for key in record} - {"epoch", "step"})
    extra = set(tags["scalars"]) - set(keys) - set(STEP_TAGS)
    if extra:
        fail(f"scalar tags not in metrics.jsonl: {sorted(extra)}")
    checked = 0
    for key in keys:
        if key not in tags["scalars"]:
            fail(f"metrics.jsonl key {key} is not a TensorBoard scalar (tags: {tags['scalars']})")
        events = reader.Scalars(key)
        expected = [(r["step"], r[key]) for r in records if key in r]
        if [e.step for e in events] != [step for step, _ in expected]:
            fail(f"{key}: steps {[e.step for e in events]}, metrics.jsonl has {[s for s, _ in expected]}")
        for event, (step, value) in zip(events, expected):
            if not same_float32(value, event.value):
                fail(f"{key} at step {step}: TensorBoard {event.value!r}, metrics.jsonl {value!r}")
            checked += 1

    losses = {e.step: e.value for e in reader.Scalars("step/train_loss")}
    rates = {e.step: e.value for e in reader.Scalars("step/lr")}
    last = records[-1]["step"]
    if sorted(losses) != list(range(1, last + 1)) or sorted(rates) != sorted(losses):
        fail(f"step/train_loss and step/lr have steps {sorted(losses)} and {sorted(rates)}, expected 1...{last}")
    previous = 0
    for record in records:
        steps = range(previous + 1, record["step"] + 1)
        mean = sum(losses[s] for s in steps) / len(steps)
        if record["train_loss"] is not None and not math.isclose(mean, record["train_loss"], rel_tol=1e-9):
            fail(f"epoch {record['epoch']}: mean of step/train_loss {mean!r}, metrics.jsonl train_loss {record['train_loss']!r}")
        if not same_float32(record["lr"], rates[record["step"]]):
            fail(f"epoch {record['epoch']}: step/lr {rates[record['step']]!r}, metrics.jsonl lr {record['lr']!r}")
        previous = record["step"]

    images = [name for name in args.images.split(",") if name]
    missing = [name for name in images if name not in tags["images"]]
    if missing:
        fail(f"pictures missing as image summaries: {missing} (images: {tags['images']})")
    print(f"tensorboard: {checked} epoch scalars in {len(keys)} tags equal metrics.jsonl ({len(records)} epochs); "
          f"{len(losses)} steps of step/train_loss and step/lr; {len(tags['images'])} images")


if __name__ == "__main__":
    main()
