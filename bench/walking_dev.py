"""Real walking for development: the DAC's path on GeoTecINIT's session D1 (ESP32-S2, ODC-By).

The DAC is calibrated as in the evaluation (the first 20 s of session D1's walking are the
client's `walk` capture; device fit, adapter, fall threshold and fall-intensity check as the
lifecycle builds them) and scored on the D1 sequences that capture did not draw on: the same
session, real walking, turning, standing up and sitting down, no falls, so every window called
fall is a false alarm. Sessions D2-D4 stay evaluation only (`bench/real_devices.py --public`);
this script never reads their windows. Same-session walking is easier than walking 10-90 min
later: use it to develop against, never to quote the device's false-alarm rate.

Baselines in the same run, on the same windows: the base model uncalibrated at the default
threshold 0.5, and the DAC built with another weight of the calibration windows in the
adapter's training (`--compare-weight`, default 0.25: the recipe before 2026-12-06), paired
window by window (exact McNemar test). For every window the shipped recipe's DAC calls fall it
prints P(fall) and the window's intensity over the DAC's walking reference (`intensity.py`).

    .venv/bin/python bench/walking_dev.py [--base-model DIR] [--compare-weight 0.25]   # default: make demo's base model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import demo_base_model_dir  # noqa: E402

DEFAULT_BASE = demo_base_model_dir()


def dac_windows(base_dir: Path, seed: int, weight: float | None):
    """The DAC's path on D1's development sequences: (scores, dac, without-check scores,
    per window [(activity, called fall, P(fall), intensity / walking reference, the dataset's
    labels in it)], data)."""
    from iv_pipelines.sensing.evaluate import FALL, decide
    from iv_pipelines.sensing.intensity import allowed, window_intensity
    from iv_pipelines.sensing.model import predict_proba
    from iv_pipelines.sensing.realeval import geotecinit_adapter_scores, geotecinit_windows

    keep: dict = {}
    budget = None if weight is None else {"real_weight": weight}
    res = geotecinit_adapter_scores(base_dir, budget=budget, seed=seed, split="development", keep=keep)
    dac, without = res.pop("_dac"), res.pop("_without_check")
    chk = keep["check"]
    ref = chk.reference if chk is not None else float("nan")
    windows = []
    comp: dict = {}
    geotecinit_windows(composition=comp, sessions=("D1",))  # the dataset's labels in each window
    first = len(comp["D1"]) - len(keep["data"]["D1 (development)"])
    parts = [p for execution in comp["D1"][first:] for p in execution]
    for seqs in keep["data"].values():
        for x, groups in seqs:
            p = predict_proba(keep["model"], x, ctx=keep["context"])
            called = decide(p, keep["threshold"], allowed(chk, x)) == FALL
            ratio = window_intensity(x) / ref
            windows += [
                (g, bool(c), float(pf), float(r))
                for g, c, pf, r in zip(groups, called, p[:, FALL], ratio, strict=True)
            ]
    windows = [w + (c,) for w, c in zip(windows, parts, strict=True)]
    return res, dac, without, windows, keep["data"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-model", type=Path, default=DEFAULT_BASE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare-weight", type=float, default=0.25)
    args = ap.parse_args()
    if not (args.base_model / "model.safetensors").exists():
        print(f"SKIPPED: no base model at {args.base_model}; run `make demo` first")
        return 0

    from iv_pipelines.sensing.client import REAL_WEIGHT
    from iv_pipelines.sensing.gate import mcnemar_exact
    from iv_pipelines.sensing.model import load_model
    from iv_pipelines.sensing.realeval import _score_sessions

    res, dac, without, win, data = dac_windows(args.base_model, args.seed, None)
    res_b, dac_b, _, win_b, _ = dac_windows(args.base_model, args.seed, args.compare_weight)
    uncal = _score_sessions(load_model(args.base_model)[0], data, None, 0.5, None, tuple(data))
    print(
        f"== GeoTecINIT ESP32-S2, session D1 (development), the DAC's path: calibrated on the first "
        f"{dac['calibration_seconds']:.0f} s of D1 walking ({dac['calibration_sequences']} sequences), "
        f"scored on the other D1 sequences; calibration windows weigh {REAL_WEIGHT:g}x the twin's class; "
        f"ships the {dac['selected']}, fall threshold {dac['fall_threshold']:.2f}; fall-intensity check: "
        f"{dac['intensity_check']}"
    )
    print(
        f"| activity | windows | DAC called fall | without the check | weight {args.compare_weight:g}: called fall "
        "| base, uncalibrated, 0.5 | DAC called non-empty |"
    )
    print("|---|---|---|---|---|---|---|")
    for g, v in res.items():
        print(
            f"| {g} | {v['windows']} | {v['called_fall']:.2f} | "
            f"{without[g]['called_fall'] if without else v['called_fall']:.2f} | {res_b[g]['called_fall']:.2f} | "
            f"{uncal[g]['called_fall']:.2f} | {v['called_nonempty']:.2f} |"
        )
    a, b = res["all"]["called_fall"], uncal["all"]["called_fall"]
    print(f"all windows called fall: DAC {a:.3f} vs uncalibrated base {b:.3f} ({a / max(b, 1e-9):.2f}x)")
    for name, keep in (("walking", lambda g: g == "walking"), ("all", lambda g: True)):
        pairs = [(w[1], v[1]) for w, v in zip(win, win_b, strict=True) if keep(w[0])]
        n10 = sum(1 for x, y in pairs if y and not x)  # the compared weight called fall, the shipped did not
        n01 = sum(1 for x, y in pairs if x and not y)
        print(
            f"{name}: weight {REAL_WEIGHT:g} called fall {sum(x for x, _ in pairs)} of {len(pairs)}, "
            f"weight {args.compare_weight:g} {sum(y for _, y in pairs)}; discordant {n10} vs {n01}, "
            f"exact McNemar p = {mcnemar_exact(n10, n01):.3f} (fall thresholds {dac['fall_threshold']:.2f} "
            f"and {dac_b['fall_threshold']:.2f})"
        )
    from iv_pipelines.sensing.client import REAL_HOP_S
    from iv_pipelines.sensing.features import stretch_windows
    from iv_pipelines.sensing.realeval import GAP_S, geotecinit_walk_capture

    cap = geotecinit_walk_capture()
    n_cal = len(stretch_windows(cap.csi, cap.t_s, REAL_HOP_S, True)[0])
    print(
        f"the calibration capture: {cap.meta['seconds']:g} s of walking in {len(cap.meta['runs_s'])} runs "
        f"recorded apart ({GAP_S:g} s gaps between them), {n_cal} windows at hop {REAL_HOP_S:g} s, none "
        "straddling two runs"
    )
    walk_p = [w[2] for w in win if w[0] == "walking"]
    q = np.quantile(walk_p, [0.5, 0.9, 0.95]) if walk_p else [np.nan] * 3
    print(
        f"P(fall) on the {len(walk_p)} walking windows: median {q[0]:.2f}, 90th percentile {q[1]:.2f}, "
        f"95th {q[2]:.2f}; windows called fall (activity, P(fall), intensity / walking reference, "
        "the dataset's labels of its packets; TURN counts as walking):"
    )
    for g, called, pf, r, labels in win:
        if called:
            print(f"  {g}, P(fall) {pf:.2f}, intensity {r:.2f}x; {labels}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
