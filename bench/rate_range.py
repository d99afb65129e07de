"""Packet rate: down to which rate the base model's decisions hold (SIMULATED held-out homes).

The twin's device prior draws packet rates of 70-150 packets/s (every real capture here is
73-143/s); features resample each window to a 100 Hz grid, so a slower device gives windows
with nothing above its Nyquist frequency, which the model never saw. This bench scores
`make demo`'s base model on the pretraining's held-out homes (never trained on; each home's
device drawn from the prior, then its packet rate set to each rate below, everything else
unchanged), uncalibrated and with each home's simulated calibration context, at the default
fall threshold 0.5: 4-class accuracy, fall recall, and the share of windows given the most
common class (1.00 = one answer for everything). Baseline in the same run: the same homes at
100 packets/s (the ratio column).

The capsule and the calibration refuse captures slower than `features.MIN_RATE_HZ`: the lowest
rate here from which every rate up to 100/s keeps at least 95 % of the 100/s accuracy, with and
without the homes' calibration context (a stated margin, not a test: the rates inside the
prior's own range differ from 100/s by a few windows too). This bench is what the value rests on.

    .venv/bin/python bench/rate_range.py [--base-model DIR] [--rooms 32] [--episodes 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import demo_base_model_dir  # noqa: E402

MARGIN = 0.95  # a rate holds when its accuracy is at least 95 % of the 100/s accuracy
RATES = (30, 40, 45, 50, 55, 60, 65, 70, 85, 100, 150, 200)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-model", type=Path, default=demo_base_model_dir())
    ap.add_argument("--rooms", type=int, default=32)
    ap.add_argument("--episodes", type=int, default=10, help="per activity and home")
    ap.add_argument("--seed", type=int, default=0, help="the pretraining seed whose held-out homes are used")
    args = ap.parse_args()
    if not (args.base_model / "model.safetensors").exists():
        print(f"no base model at {args.base_model}: run `make demo` first (or give --base-model)")
        return 2
    from iv_pipelines.sensing.datasets import windows_dataset
    from iv_pipelines.sensing.evaluate import FALL
    from iv_pipelines.sensing.features import MIN_RATE_HZ
    from iv_pipelines.sensing.model import load_model, predict_proba
    from iv_pipelines.sensing.pipeline import PRETRAIN_RESIDENT, random_rooms
    from iv_pipelines.sensing.twin import RESIDENTS, room_device

    model = load_model(args.base_model)[0]
    t0 = time.perf_counter()
    rooms = random_rooms(args.rooms, args.seed + 10_000)  # pretrain_base's held-out homes
    drawn = [room_device(args.seed + 2, i) for i in range(len(rooms))]
    rows = {}
    for rate in RATES:
        devices = [replace(d, rate_hz=float(rate)) for d in drawn]
        x, y, ctx = windows_dataset(
            rooms, args.episodes, args.seed + 2, RESIDENTS[PRETRAIN_RESIDENT], workers=2, devices=devices
        )
        out = {}
        for name, c in (("uncalibrated", None), ("calibrated", ctx)):
            p = predict_proba(model, x, ctx=c)
            pred = p.argmax(1)
            called_fall = p[:, FALL] >= 0.5
            out[name] = {
                "accuracy": float((pred == y).mean()),
                "n": int(len(y)),
                "fall_recall": float(called_fall[y == FALL].mean()),
                "most_common": float(np.bincount(pred, minlength=4).max() / len(pred)),
            }
        rows[rate] = out
    ref = rows[100]
    print("== base model on held-out SIMULATED homes, each home's device at the packet rate given")
    print(
        "| packets/s | accuracy (uncalibrated) | ratio to 100/s | fall recall | most common class | "
        "accuracy (calibrated) | ratio | fall recall |\n|---|---|---|---|---|---|---|---|"
    )
    for rate, o in rows.items():
        u, c = o["uncalibrated"], o["calibrated"]
        print(
            f"| {rate} | {u['accuracy']:.3f} | {u['accuracy'] / ref['uncalibrated']['accuracy']:.2f}x | "
            f"{u['fall_recall']:.3f} | {u['most_common']:.2f} | {c['accuracy']:.3f} | "
            f"{c['accuracy'] / ref['calibrated']['accuracy']:.2f}x | {c['fall_recall']:.3f} |"
        )
    held = []
    for name in ("uncalibrated", "calibrated"):
        acc = ref[name]["accuracy"]
        ok = [
            r
            for r in RATES
            if r <= 100 and all(rows[s][name]["accuracy"] >= MARGIN * acc for s in RATES if r <= s <= 100)
        ]
        held.append(min(ok))
        print(f"{name}: accuracy at 100/s {acc:.3f}; within 5 % of it down to {min(ok)}/s")
    print(
        f"lowest rate where both hold: {max(held)}/s; the capsule refuses below features.MIN_RATE_HZ = {MIN_RATE_HZ:g}/s"
    )
    print(f"total wall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
