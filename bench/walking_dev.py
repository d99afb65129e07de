"""Real walking for development: the DAC's path on GeoTecINIT's session D1 (ESP32-S2, ODC-By).

The DAC is calibrated as in the evaluation (the first 20 s of session D1's walking are the
client's `walk` capture; device fit, adapter, fall threshold and fall-intensity check as the
lifecycle builds them) and scored on the D1 sequences that capture did not draw on: the same
session, real walking, turning, standing up and sitting down, no falls, so every window called
fall is a false alarm. Sessions D2-D4 stay evaluation only (`bench/real_devices.py --public`);
this script never reads their windows. Same-session walking is easier than walking 10-90 min
later: use it to develop against, never to quote the device's false-alarm rate.

Baseline in the same run: the base model, uncalibrated, at the default threshold 0.5, on the
same windows. For every window the DAC calls fall it prints P(fall) and the window's
intensity over the DAC's walking reference (`intensity.py`).

    .venv/bin/python bench/walking_dev.py [--base-model DIR]   # default: make demo's base model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from iv_pipelines.storage import StorageLayout  # noqa: E402

DEFAULT_BASE = StorageLayout(Path(__file__).resolve().parent.parent / ".dagster_home" / "iv").base_model_dir()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-model", type=Path, default=DEFAULT_BASE)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (args.base_model / "model.safetensors").exists():
        print(f"SKIPPED: no base model at {args.base_model}; run `make demo` first")
        return 0

    from iv_pipelines.sensing.evaluate import FALL, decide
    from iv_pipelines.sensing.intensity import window_intensity
    from iv_pipelines.sensing.model import load_model, predict_proba
    from iv_pipelines.sensing.realeval import _score_sessions, geotecinit_adapter_scores

    keep: dict = {}
    res = geotecinit_adapter_scores(args.base_model, seed=args.seed, split="development", keep=keep)
    dac, without = res.pop("_dac"), res.pop("_without_check")
    base = load_model(args.base_model)[0]
    uncal = _score_sessions(base, keep["data"], None, 0.5, None, tuple(keep["data"]))
    print(
        f"== GeoTecINIT ESP32-S2, session D1 (development), the DAC's path: calibrated on the first "
        f"{dac['calibration_seconds']:.0f} s of D1 walking ({dac['calibration_sequences']} sequences), "
        f"scored on the other D1 sequences; ships the {dac['selected']}, fall threshold "
        f"{dac['fall_threshold']:.2f}; fall-intensity check: {dac['intensity_check']}"
    )
    print(
        "| activity | windows | DAC called fall | without the check | base, uncalibrated, 0.5 | DAC called non-empty |"
    )
    print("|---|---|---|---|---|---|")
    for g, v in res.items():
        print(
            f"| {g} | {v['windows']} | {v['called_fall']:.2f} | "
            f"{without[g]['called_fall'] if without else v['called_fall']:.2f} | "
            f"{uncal[g]['called_fall']:.2f} | {v['called_nonempty']:.2f} |"
        )
    a, b = res["all"]["called_fall"], uncal["all"]["called_fall"]
    print(f"all windows called fall: DAC {a:.3f} vs uncalibrated base {b:.3f} ({a / max(b, 1e-9):.2f}x)")
    model, ctx, thr, chk = keep["model"], keep["context"], keep["threshold"], keep["check"]
    ref = chk.reference if chk is not None else float("nan")
    rows, walk_p = [], []
    for session, seqs in keep["data"].items():
        for k, (x, groups) in enumerate(seqs):
            p = predict_proba(model, x, ctx=ctx)
            inten = window_intensity(x)
            allow = inten >= chk.factor * chk.reference if chk is not None else None
            pred = decide(p, thr, allow)
            walk_p += [float(p[i, FALL]) for i, g in enumerate(groups) if g == "walking"]
            for i in np.flatnonzero(pred == FALL):
                rows.append((session, k, int(i), groups[i], float(p[i, FALL]), float(inten[i] / ref)))
    q = np.quantile(walk_p, [0.5, 0.9, 0.95]) if walk_p else [np.nan] * 3
    print(
        f"P(fall) on the {len(walk_p)} walking windows: median {q[0]:.2f}, 90th percentile {q[1]:.2f}, "
        f"95th {q[2]:.2f}; windows called fall (sequence, window, activity, P(fall), intensity / walking reference):"
    )
    for s, k, i, g, pf, r in rows:
        print(f"  {s} seq {k} window {i}: {g}, P(fall) {pf:.2f}, intensity {r:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
