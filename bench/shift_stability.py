"""How much a decision depends on where its window starts: real walking (development) vs the twin.

The capsule cuts windows every second from wherever a capture starts; a person does not move
in step with that grid. Shifting a window's start by up to 0.2 s should not change what it
is called. Measured with the base model (uncalibrated, amplitude-only, threshold 0.5), on:
- REAL: GeoTecINIT session D1 (ESP32-S2, ODC-By; development data only: D2-D4 stay
  evaluation, this script never reads them), windows labelled walking on a 1 s grid, each
  also decided at -0.2, -0.1, +0.1, +0.2 s;
- SIMULATED: 40 twin fall and 40 twin walking episodes of 2.4 s, windows starting 0.0-0.4 s.
Printed per set: windows called fall at the grid (the baseline), at any of the five starts,
and by the mean P(fall) of the five (test-time averaging, a candidate rule, not the
capsule's), and how many windows change their most probable class across the five starts.

Then the candidate rule through the DAC's own path, SIMULATED: `bench/fall_protocol.py`'s labs
(`--labs`, both device profiles, a 20 s walking calibration, amplitude-only at 100 Hz), each
lab's DAC (its adapter, threshold and fall-intensity check) deciding the same fall clips and
walking captures (hop 1 s) from P(fall) at the grid and from its mean over the starts within
+-0.2 s that fit the capture (a clip shorter than a window keeps its one window).

    .venv/bin/python bench/shift_stability.py [--base-model DIR] [--labs 6]   # default: make demo's base model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import demo_base_model_dir  # noqa: E402

SHIFTS = 2  # windows of 0.1 s hop either side: +-0.2 s


def real_walking(model) -> np.ndarray:
    """(n, 5) P(fall) of D1's walking windows on a 1 s grid, at the five starts."""
    from iv_pipelines.sensing.features import drop_phase
    from iv_pipelines.sensing.model import predict_proba
    from iv_pipelines.sensing.realeval import geotecinit_windows

    out = []
    for x, groups in geotecinit_windows(hop_s=0.1, sessions=("D1",))["D1"]:
        drop_phase(x)
        p = predict_proba(model, x)
        g = np.asarray(groups)
        for i in range(SHIFTS, len(p) - SHIFTS, 10):
            if g[i] == "walking":
                out.append(p[i - SHIFTS : i + SHIFTS + 1])
    return np.asarray(out)


def twin(model, activity: str, n: int = 40) -> np.ndarray:
    from iv_pipelines.sensing.features import glitch_mask, packet_features, window_at
    from iv_pipelines.sensing.model import predict_proba
    from iv_pipelines.sensing.twin import Room, simulate_episode

    out = []
    for i in range(n):
        room = Room.random(np.random.default_rng(1000 + i), size=(5.0, 4.0, 2.6))
        ep = simulate_episode(room, activity, seed=500 + i, duration_s=2.4)
        amp, _ = packet_features(ep.csi)
        k = glitch_mask(amp)
        t = ep.t_s[k] - ep.t_s[k][0]
        x = np.stack([window_at(amp[k], None, t, s) for s in (0.0, 0.1, 0.2, 0.3, 0.4)])
        out.append(predict_proba(model, x))
    return np.asarray(out)


def line(name: str, p: np.ndarray) -> str:
    """p: (n, 5 starts, classes)."""
    fall = p[:, :, 3]
    centre = int((fall[:, SHIFTS] >= 0.5).sum())
    flips = int(sum(len(set(w.argmax(1))) > 1 for w in p))
    return (
        f"{name}: {len(p)} windows; called fall at the grid {centre} | at any of 5 starts "
        f"{int((fall.max(1) >= 0.5).sum())} | by the mean of 5 {int((fall.mean(1) >= 0.5).sum())}; "
        f"most probable class changes across the starts in {flips}"
    )


def averaged(model, cap, ctx, shift_s: float = 0.1 * SHIFTS):
    """A capture's windows as `/v1/predict` cuts them (hop 1 s) and P per window: at the grid,
    and averaged over the windows of the same length starting within `shift_s` of it."""
    from iv_pipelines.runtime.predictor import windows
    from iv_pipelines.sensing.features import stretch_windows
    from iv_pipelines.sensing.model import predict_proba

    x, starts, lengths = windows(cap, hop_s=1.0, amplitude_only=True)
    p = predict_proba(model, x, ctx=ctx)
    xf, sf, lf = stretch_windows(cap.csi, cap.t_s, 0.1, True)
    pf = predict_proba(model, xf, ctx=ctx)
    mean = p.copy()
    for i, (s, n) in enumerate(zip(starts, lengths, strict=True)):
        near = (np.abs(sf - s) <= shift_s + 1e-6) & (np.abs(lf - n) < 1e-6)
        if near.any():
            mean[i] = pf[near].mean(0)
    return x, p, mean


def dac_path(args) -> None:
    """The candidate rule through each simulated lab's DAC (fall_protocol's labs)."""
    import fall_protocol as fp

    from iv_pipelines.sensing.evaluate import FALL, decide
    from iv_pipelines.sensing.intensity import IntensityCheck, allowed

    for profile in ("white", "prior"):
        called = {(a, r): [] for a in ("fall", "walk") for r in ("grid", "mean")}
        for lab in range(args.labs):
            room, dev, resident, cal, res = fp.build_lab(args, lab, profile, 20.0)
            if res.selected != "adapter":
                raise SystemExit(
                    f"lab {lab}: the DAC ships the base model; this comparison needs its adapter"
                )
            chk = IntensityCheck.from_dict(res.intensity_check)
            thr = res.thresholds["adapter"]
            sets = fp.lab_test_sets(room, dev, resident, args.seed + 1000 * (lab + 1), 20, 4)
            for act in ("fall", "walk"):
                for cap in sets[act]:
                    x, p, mean = averaged(res.model, cap, cal.context)
                    ok = allowed(chk, x)
                    called[act, "grid"].append(decide(p, thr, ok) == FALL)
                    called[act, "mean"].append(decide(mean, thr, ok) == FALL)
        c = {k: np.concatenate(v) for k, v in called.items()}
        print(
            f"SIMULATED DAC path, {profile} devices, {args.labs} labs: fall recall at the grid "
            f"{c['fall', 'grid'].mean():.3f} | by the mean of the starts {c['fall', 'mean'].mean():.3f} "
            f"({len(c['fall', 'grid'])} fall windows); walking called fall {c['walk', 'grid'].mean():.3f} | "
            f"{c['walk', 'mean'].mean():.3f} ({len(c['walk', 'grid'])} windows)"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-model", type=Path, default=demo_base_model_dir())
    ap.add_argument(
        "--labs", type=int, default=6, help="simulated labs per device profile (0: skip that part)"
    )
    ap.add_argument("--seed", type=int, default=7000, help="as bench/fall_protocol.py's")
    args = ap.parse_args()
    from iv_pipelines.sensing.model import load_model

    if not (args.base_model / "model.safetensors").is_file():
        print(f"no base model at {args.base_model}: run `make demo` first", file=sys.stderr)
        return 1
    model, _ = load_model(args.base_model)
    print(
        f"base model {args.base_model}, uncalibrated, amplitude-only, fall threshold 0.5; starts -0.2..+0.2 s"
    )
    print(line("REAL walking, GeoTecINIT D1 (development)", real_walking(model)))
    print(line("SIMULATED twin walking", twin(model, "walk")))
    print(line("SIMULATED twin falls", twin(model, "fall")))
    if args.labs:
        dac_path(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
