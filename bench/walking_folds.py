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


def fold(base_dir: Path, from_end: bool, seed: int, data: list) -> tuple[str, dict, dict, list[float]]:
    """(heading, DAC's called-fall counts per activity, the uncalibrated base's, P(fall) on the
    DAC's walking windows) for one fold of D1."""
    from iv_pipelines.sensing.calibration import Calibration
    from iv_pipelines.sensing.client import calibrate_client, train_client_adapter
    from iv_pipelines.sensing.evaluate import DEFAULT_FALL_THRESHOLD, FALL, decide
    from iv_pipelines.sensing.intensity import IntensityCheck, allowed
    from iv_pipelines.sensing.model import load_model, predict_proba
    from iv_pipelines.sensing.realeval import geotecinit_walk_capture
    from iv_pipelines.sensing.twin import RESIDENTS, Room

    room = Room.random(np.random.default_rng(5))  # the lab's room is not published (as realeval)
    cap = geotecinit_walk_capture(from_end=from_end)
    cal = calibrate_client(
        room, RESIDENTS["mixed"], [(Calibration("walk", cap, False, cap.source), "real")], seed
    )
    res = train_client_adapter(base_dir, room, cal, seed=seed)
    base = load_model(base_dir)[0]
    model = res.model if res.selected == "adapter" else base
    thr = res.thresholds[res.selected]
    check = IntensityCheck.from_dict(res.intensity_check)
    used = int(cap.meta["sequences"])
    scored = data[: len(data) - used] if from_end else data[used:]
    dac: dict[str, list[int]] = {}
    uncal: dict[str, list[int]] = {}
    p_walk: list[float] = []
    for x, groups in scored:
        p = predict_proba(model, x, ctx=cal.context)
        d = decide(p, thr, allowed(check, x))
        u = decide(predict_proba(base, x, ctx=None), DEFAULT_FALL_THRESHOLD)
        for pi, di, ui, g in zip(p, d, u, groups, strict=True):
            dac.setdefault(g, []).append(int(di == FALL))
            uncal.setdefault(g, []).append(int(ui == FALL))
            if g == "walking":
                p_walk.append(float(pi[FALL]))
    f = cal.fit.device
    where = (
        f"last {used} sequences, scored on the {len(scored)} before"
        if from_end
        else (f"first {used} sequences, scored on the {len(scored)} after")
    )
    heading = (
        f"calibrated on the walking of D1's {where}: fit body gain {f.body_gain:.2f}, motion noise "
        f"{f.motion_noise:.4f}, walking speed {cal.fit.walk_speed_ms:.2f} m/s; ships the {res.selected}, "
        f"fall threshold {thr:.2f}"
    )
    return heading, dac, uncal, p_walk


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-model", type=Path, default=demo_base_model_dir())
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (args.base_model / "model.safetensors").exists():
        print(f"no base model at {args.base_model}: run `make demo` first (or pass --base-model)")
        return 2
    from iv_pipelines.sensing.realeval import geotecinit_windows
    from iv_pipelines.sensing.twin import SIM_VERSION

    data = geotecinit_windows(sessions=("D1",))["D1"]
    print(f"== GeoTecINIT ESP32-S2, session D1 only (development), {SIM_VERSION}, base {args.base_model}")
    for from_end in (False, True):
        heading, dac, uncal, p_walk = fold(args.base_model, from_end, args.seed, data)
        print(f"-- {heading}")
        print("| activity | windows | DAC called fall | base, uncalibrated, 0.5 |")
        print("|---|---|---|---|")
        for g in sorted(dac):
            print(f"| {g} | {len(dac[g])} | {sum(dac[g])} | {sum(uncal[g])} |")
        n, a, b = (
            sum(len(v) for v in dac.values()),
            sum(map(sum, dac.values())),
            sum(map(sum, uncal.values())),
        )
        print(f"all: DAC {a} of {n} called fall vs uncalibrated base {b} ({a / max(b, 1):.2f}x)")
        q = np.percentile(p_walk, [50, 90, 95, 100])
        print(
            f"P(fall) on the {len(p_walk)} walking windows: median {q[0]:.3f}, 90th {q[1]:.3f}, 95th {q[2]:.3f}, max {q[3]:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
