"""What a walking-only device fit reaches: real walking against the twin of its fitted device.

Issue #13's evaluators calibrate a DAC with 15-20 s of walking and nothing else. The device
fit (`calibration.fit_device`) matches the walking capture's white and correlated parts of the
relative-amplitude spread (`devicestats`) by searching the body's scattering strength, the
motion-coupled packet noise and the walking speed, each within the prior. This script prints,
per real moving capture fitted alone as a `walk` capture:
- the capture's own statistics (white, correlated, window spread, common-mode gain jitter);
- the fit (motion noise, body gain, walking speed; `*` marks motion noise or body gain at the
  prior's bound; the speed search spans 0.25-1.0 m/s, and 1.10 is the resident's own when the
  capture cannot show it);
- what the fit's own episodes achieved, and the median over fresh 20 s twin walks of the
  fitted device at the fitted speed in four layouts of the room (what the adapter trains on).

Development data only (GeoTecINIT D1's walking calibration, in the repo; the espectre movement
captures, read in place from ../shared when present): it chooses nothing. Where the twin
cannot reach a real walking's correlated part, the adapter learns walking from a twin whose
walking looks unlike the client's.

    .venv/bin/python bench/walk_fit_gap.py [--layouts 4] [--seconds 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOM_SIZE = (4.0, 4.0, 2.6)  # a declared room size: the real rooms' layouts are unknown


def captures():
    """[(name, CsiCapture, timestamps)]: D1's walking calibration, then espectre's movement."""
    from iv_pipelines.sensing.formats import load_espectre_npz
    from iv_pipelines.sensing.realeval import geotecinit_walk_capture
    from resources.sensing import _DEFAULT_REAL

    out = [("geotecinit D1 walking (20 s)", geotecinit_walk_capture(), False)]
    for f in sorted(_DEFAULT_REAL.glob("movement/movement_*.npz")) if _DEFAULT_REAL.exists() else []:
        out.append((f"espectre {f.stem.split('_')[1]} {f.stem.split('_')[-1]}", load_espectre_npz(f), True))
    return out


def main() -> int:
    from iv_pipelines.sensing.calibration import Calibration, fit_device, resident_at
    from iv_pipelines.sensing.client import room_layouts
    from iv_pipelines.sensing.device import DEFAULT_PRIOR
    from iv_pipelines.sensing.devicestats import capture_stats
    from iv_pipelines.sensing.twin import CALIBRATION_VARIANT, RESIDENTS, Room, simulate_episode

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layouts", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    room = Room.random(np.random.default_rng(1), size=ROOM_SIZE)
    layouts = room_layouts(room, args.layouts, seed=0)
    resident = RESIDENTS["adult"]

    def at_bound(name, v):
        lo, hi = getattr(DEFAULT_PRIOR, name)
        return "*" if v <= lo * 1.05 or v >= hi * 0.95 else ""

    def stats_row(s):
        return f"{s.white:.3f} / {s.correlated:.3f} / {s.spread:.3f} / {s.gain_jitter:.3f}"

    print(
        "per capture: white / correlated / window spread / gain jitter (devicestats; the fit "
        "matches the first two); fit: motion noise, body gain, walking speed (* motion noise or body gain at the prior's bound)"
    )
    print(
        "| capture | real | fit | fit's episodes achieved (white / correlated / spread) | twin walks of the fit, median |"
    )
    print("|---|---|---|---|---|")
    ratios = []
    for name, cap, stamped in captures():
        real = capture_stats(cap.csi, cap.t_s, timestamps=stamped)
        fit = fit_device([Calibration("walk", cap, stamped, name)], room, resident, seed=0)
        d, v = fit.device, fit.walk_speed_ms or float(np.mean(resident.walk_speed_ms))
        walks = [
            capture_stats(e.csi, e.t_s)
            for i, lay in enumerate(layouts)
            for e in [
                simulate_episode(
                    lay,
                    "walk",
                    100 + i,
                    args.seconds,
                    d,
                    resident_at(resident, v),
                    variant=CALIBRATION_VARIANT.get("walk"),
                )
            ]
        ]
        med = {
            k: float(np.median([getattr(w, k) for w in walks]))
            for k in ("white", "correlated", "spread", "gain_jitter")
        }
        a = fit.achieved
        ratios.append(med["correlated"] / max(real.correlated, 1e-9))
        print(
            f"| {name} | {stats_row(real)} | {d.motion_noise:.3f}{at_bound('motion_noise', d.motion_noise)}, "
            f"{d.body_gain:.1f}{at_bound('body_gain', d.body_gain)}, {v:.2f} m/s | "
            f"{a.get('walk_white', float('nan')):.3f} / {a.get('walk_correlated', float('nan')):.3f} / "
            f"{a.get('walk_spread', float('nan')):.3f} | {med['white']:.3f} / {med['correlated']:.3f} / "
            f"{med['spread']:.3f} / {med['gain_jitter']:.3f} |",
            flush=True,
        )
    print(
        f"twin walks' correlated part over the real capture's: median {np.median(ratios):.2f}x "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}x) over {len(ratios)} captures; wall time "
        f"{time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
