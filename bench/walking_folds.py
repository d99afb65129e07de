"""Real walking for development, both ends of the session: the DAC's path on GeoTecINIT D1 in two folds.

`bench/walking_dev.py` calibrates on the walking of session D1's first sequences and scores the
sequences after them; its DAC called none of them fall on twin 2.2 and on twin 2.3 alike, while
on the evaluation sessions D2-D4 (10-90 min later) twin 2.3's DAC called 7 of 38 walking
windows fall (0 on twin 2.2). Same-session scoring right after the calibration is too easy to
see that. This bench adds the other fold of the same session: calibrate on the walking of D1's
LAST sequences (20 s, runs recorded apart, as a client would) and score the sequences before
them, minutes earlier. D1 only (development data, ESP32-S2, ODC-By); D2-D4 are never read.

For each fold: the device fit, the DAC's threshold, windows called fall per activity, P(fall)
quantiles on walking windows; baseline in the same run, on the same windows: the base model
uncalibrated at the default threshold 0.5.

    .venv/bin/python bench/walking_folds.py [--base-model DIR] [--seed 0]   # default: make demo's base model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import demo_base_model_dir  # noqa: E402


def fold(base_dir: Path, from_end: bool, seed: int) -> tuple[str, dict, dict, list[float]]:
    """(heading, DAC's scores per activity, the uncalibrated base's on the same windows,
    P(fall) on the DAC's walking windows) for one fold of D1 (`realeval.geotecinit_adapter_scores`)."""
    from iv_pipelines.sensing.evaluate import DEFAULT_FALL_THRESHOLD, FALL
    from iv_pipelines.sensing.model import load_model, predict_proba
    from iv_pipelines.sensing.realeval import _score_sessions, geotecinit_adapter_scores

    keep: dict = {}
    res = geotecinit_adapter_scores(base_dir, seed=seed, split="development", keep=keep, from_end=from_end)
    dac = res.pop("_dac")
    res.pop("_without_check")
    data = keep["data"]
    uncal = _score_sessions(load_model(base_dir)[0], data, None, DEFAULT_FALL_THRESHOLD, None, tuple(data))
    p_walk = [
        float(p[FALL])
        for seqs in data.values()
        for x, groups in seqs
        for p, g in zip(predict_proba(keep["model"], x, ctx=keep["context"]), groups, strict=True)
        if g == "walking"
    ]
    used, scored = dac["calibration_sequences"], len(data["D1 (development)"])
    where = (
        f"last {used} sequences, scored on the {scored} before"
        if from_end
        else f"first {used} sequences, scored on the {scored} after"
    )
    fit = dac["device_fit"]
    heading = (
        f"calibrated on the walking of D1's {where}: fit body gain {fit['body_gain']:.2f}, motion noise "
        f"{fit['motion_noise']:.4f}, walking speed {dac['walk_speed_ms'] or float('nan'):.2f} m/s; ships the {dac['selected']}, "
        f"fall threshold {dac['fall_threshold']:.2f}"
    )
    return heading, res, uncal, p_walk


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-model", type=Path, default=demo_base_model_dir())
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (args.base_model / "model.safetensors").exists():
        print(f"no base model at {args.base_model}: run `make demo` first (or pass --base-model)")
        return 2
    from iv_pipelines.sensing.twin import SIM_VERSION

    print(f"== GeoTecINIT ESP32-S2, session D1 only (development), {SIM_VERSION}, base {args.base_model}")
    for from_end in (False, True):
        heading, dac, uncal, p_walk = fold(args.base_model, from_end, args.seed)
        print(f"-- {heading}")
        print("| activity | windows | DAC called fall | base, uncalibrated, 0.5 |")
        print("|---|---|---|---|")
        for g, v in dac.items():
            n = v["windows"]
            print(f"| {g} | {n} | {round(v['called_fall'] * n)} | {round(uncal[g]['called_fall'] * n)} |")
        a, b = (round(r["all"]["called_fall"] * r["all"]["windows"]) for r in (dac, uncal))
        print(
            f"DAC {a} of {dac['all']['windows']} windows called fall vs uncalibrated base {b} ({a / max(b, 1):.2f}x)"
        )
        q = np.percentile(p_walk, [50, 90, 95, 100])
        print(
            f"P(fall) on the {len(p_walk)} walking windows: median {q[0]:.3f}, 90th {q[1]:.3f}, "
            f"95th {q[2]:.3f}, max {q[3]:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
