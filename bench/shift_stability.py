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

    .venv/bin/python bench/shift_stability.py [--base-model DIR]   # default: make demo's base model
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-model", type=Path, default=demo_base_model_dir())
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
