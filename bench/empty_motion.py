"""Someone moving in a capture declared empty: how `devicestats.moving_stretches` was chosen.

A client's `empty` calibration capture that holds someone moving (a caregiver still walking
out, a recorder that starts before the room is quiet) would train the adapter and set the
fall threshold with windows of motion labelled "empty room". The device fit names such
stretches in its warnings: a 2 s stretch whose spread is both temporally correlated and large
(`correlated` >= EMPTY_MOTION_CORRELATED and `lag1` >= EMPTY_MOTION_LAG1).

1. Chosen on the twin (SIMULATED): 2 s stretches at hop 1 s of 10 s episodes in `--rooms`
   rooms, each with a device drawn from the whole prior (nuisances included: interference
   bursts, AGC steps and gain-state flips, glitches): the share of empty-room, walking and
   sitting-down stretches the rule names, and the statistics' quantiles. A one-sided test:
   the twin's walking on devices whose motion shows as packet-to-packet noise is not named.
2. Then run on the real espectre captures (read in place from ../shared/data; nothing chosen
   on them): the stretches it names in each empty-room file, and the share of each movement
   file it names.

    .venv/bin/python bench/empty_motion.py [--rooms 40]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def twin_part(rooms: int) -> None:
    from iv_pipelines.sensing.device import DEFAULT_PRIOR
    from iv_pipelines.sensing.devicestats import (
        EMPTY_MOTION_CORRELATED,
        EMPTY_MOTION_LAG1,
        stretch_stats,
    )
    from iv_pipelines.sensing.twin import CALIBRATION_VARIANT, RESIDENTS, Room, simulate_episode

    rng = np.random.default_rng(3)
    stats: dict[str, list[tuple[float, float]]] = {"empty": [], "walk": [], "sit": []}
    for i in range(rooms):
        room, dev = Room.random(rng), DEFAULT_PRIOR.sample(rng)
        for act in stats:
            ep = simulate_episode(
                room, act, 1000 + i, 10.0, dev, RESIDENTS["mixed"], variant=CALIBRATION_VARIANT.get(act)
            )
            stats[act] += [(st.correlated, st.lag1) for _, st in stretch_stats(ep.csi, ep.t_s)]
    print(
        f"SIMULATED: {rooms} rooms, devices from the whole prior, 2 s stretches at hop 1 s; rule: "
        f"correlated >= {EMPTY_MOTION_CORRELATED} and lag1 >= {EMPTY_MOTION_LAG1}"
    )
    print("| activity | stretches | named | correlated q50 / q99 / max | lag1 q50 / q99 / max |")
    print("|---|---|---|---|---|")
    for act, v in stats.items():
        a = np.array(v)
        named = int(((a[:, 0] >= EMPTY_MOTION_CORRELATED) & (a[:, 1] >= EMPTY_MOTION_LAG1)).sum())
        c, lag = np.percentile(a[:, 0], [50, 99, 100]), np.percentile(a[:, 1], [50, 99, 100])
        print(
            f"| {act} | {len(a)} | {named} ({named / len(a):.2f}) | "
            f"{c[0]:.3f} / {c[1]:.3f} / {c[2]:.3f} | {lag[0]:.2f} / {lag[1]:.2f} / {lag[2]:.2f} |"
        )


def real_part() -> None:
    from iv_pipelines.sensing.devicestats import moving_stretches
    from iv_pipelines.sensing.realeval import espectre_captures
    from resources.sensing import _DEFAULT_REAL

    if not _DEFAULT_REAL.exists():
        print("real espectre captures not found beside the repo (../shared/data): real part skipped")
        return
    print("\nreal espectre captures (whole files; evaluation only, nothing chosen on them)")
    print("| chip | empty-room file | stretches named (s) | movement files: share of their length named |")
    print("|---|---|---|---|")
    for chip, d in sorted(espectre_captures(_DEFAULT_REAL, baseline_warmup=0).items()):
        shares = [
            sum(b - a for a, b, _, _ in moving_stretches(c.csi, c.t_s)) / float(c.t_s[-1] - c.t_s[0])
            for c in d["movement"]
        ]
        for c in d["baseline"]:
            found = moving_stretches(c.csi, c.t_s)
            named = (
                ", ".join(f"{a:.0f}-{b:.0f} ({corr:.3f} / {lag:.2f})" for a, b, corr, lag in found) or "none"
            )
            print(f"| {chip} | {Path(c.source).name} | {named} | {', '.join(f'{s:.2f}' for s in shares)} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rooms", type=int, default=40)
    args = ap.parse_args()
    t0 = time.perf_counter()
    twin_part(args.rooms)
    real_part()
    print(f"total wall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
