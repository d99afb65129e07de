"""Where the leave-one-chip-out bench's empty-room errors sit (issue #13, development data).

For each held-out chip (default: the two with errors, C6 and ESP32), a base model is
pretrained on the other chips' prior exactly as `bench/real_devices.py` does (same fits, same
reduced budget), and every window of the chip's empty-room files (less the recorder's
warm-up, as scored there) is decided at the capsule's default decision, as recorded (`iq`)
and as amplitude-only legacy LLTF (`amp52`). Each window called occupied is printed with what
the device statistics say about it:
- `white x`: its packet-to-packet fluctuation over the median window's of the same file
  (`devicestats` `white`): a swell of the room's noise floor shows here;
- `correlated` / `lag1`: the spread that is not packet-to-packet, and its lag-1
  autocorrelation (someone moving raises both: `devicestats.moving_stretches` names a stretch
  at >= 0.02 and >= 0.3);
- `pattern`: the share of the window's fluctuation (glitch packets dropped as the capsule
  drops them) in its first principal component across subcarriers: one fixed band-wide
  pattern that fluctuates, rather than independent noise per subcarrier.
The statistics are those of the recorded packets in the window's 2 s, for both inputs, and
the windows start where the capsule's do (`features.window_starts`, which adds a last window
at the capture's end; `devicestats.stretch_stats` does not, so it is not used here).
The summary compares the windows called occupied with those called empty. Nothing here is
chosen or tuned; it says what a fix would have to tell apart (docs/sensing.md, "What the twin
still gets wrong").

    .venv/bin/python bench/empty_errors.py [--chips c6,esp32] [--rooms 192 --episodes 8 --epochs 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pattern_share(csi: np.ndarray, t_s: np.ndarray) -> float:
    """Share of the packets' relative-amplitude fluctuation in its first principal component
    across subcarriers, after the capsule's glitch cleaning."""
    from iv_pipelines.sensing.devicestats import relative_amplitude
    from iv_pipelines.sensing.features import clean_packets
    from iv_pipelines.sensing.formats import USED_INDEX

    kept, _ = clean_packets(csi, t_s)
    rel = relative_amplitude(np.abs(kept[:, USED_INDEX]).astype(np.float64) + 1e-6)
    s = np.linalg.svd(rel - rel.mean(axis=0), compute_uv=False)
    return float(s[0] ** 2 / max(np.sum(s**2), 1e-12))


def window_rows(cap, mode: str, model) -> list[dict]:
    """One row per window of `cap` (2 s, hop 1 s, as the bench scores it)."""
    from iv_pipelines.sensing.devicestats import capture_stats
    from iv_pipelines.sensing.evaluate import ACTIVITIES, EMPTY, decide
    from iv_pipelines.sensing.features import window_starts
    from iv_pipelines.sensing.model import predict_proba
    from iv_pipelines.sensing.realeval import capture_windows

    x = capture_windows(cap, mode)
    p = predict_proba(model, x)
    decided = decide(p, 0.5)
    starts, _ = window_starts(cap.t_s, 1.0)
    t = cap.t_s
    rows = []
    for i, s0 in enumerate(starts[: len(x)]):
        m = (t >= s0) & (t < s0 + 2.0)
        st = capture_stats(cap.csi[m], t[m], timestamps=False)
        rows.append(
            {
                "start": float(s0 - t[0]),
                "called": ACTIVITIES[decided[i]],
                "occupied": bool(decided[i] != EMPTY),
                "p": p[i],
                "white": st.white,
                "correlated": st.correlated,
                "lag1": st.lag1,
                "pattern": pattern_share(cap.csi[m], t[m]),
            }
        )
    med = float(np.median([r["white"] for r in rows])) if rows else 1.0
    for r in rows:
        r["white_x"] = r["white"] / max(med, 1e-12)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chips", default="c6,esp32")
    ap.add_argument("--rooms", type=int, default=192)
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args()

    from real_devices import chip_fit

    from iv_pipelines.sensing.calibration import prior_from_fits
    from iv_pipelines.sensing.pipeline import pretrain_base
    from iv_pipelines.sensing.realeval import espectre_captures
    from resources.sensing import _DEFAULT_REAL

    if not _DEFAULT_REAL.exists():
        print("SKIPPED: real espectre captures not found beside the repo (../shared/data)")
        return 0
    t0 = time.perf_counter()
    caps = espectre_captures(_DEFAULT_REAL)
    whole = espectre_captures(_DEFAULT_REAL, baseline_warmup=0)
    fits = {chip: chip_fit(whole[chip]) for chip in whole}  # as bench/real_devices.py fits them
    summary = []
    for chip in [c for c in args.chips.split(",") if c]:
        prior = prior_from_fits([f.device for c, f in fits.items() if c != chip])
        base = pretrain_base(
            n_rooms=args.rooms, per_activity=args.episodes, epochs=args.epochs, workers=2, prior=prior
        )
        print(f"== held out {chip}: empty-room windows called occupied (baselines less the warm-up)")
        print(
            "| file | input | start (s) | called | P(empty, walk, sit, fall) | white x | correlated | lag1 | pattern |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for mode in ("iq", "amp52"):
            rows = []
            for cap in caps[chip]["baseline"]:
                name = Path(str(cap.source)).stem.split("_")[-1]
                for r in window_rows(cap, mode, base.model):
                    rows.append(r | {"file": name})
            bad = [r for r in rows if r["occupied"]]
            for r in bad:
                probs = ", ".join(f"{v:.2f}" for v in r["p"])
                print(
                    f"| {r['file']} | {mode} | {r['start']:.0f} | {r['called']} | {probs} | "
                    f"{r['white_x']:.2f} | {r['correlated']:.4f} | {r['lag1']:.2f} | {r['pattern']:.2f} |"
                )
            good = [r for r in rows if not r["occupied"]]
            summary.append((chip, mode, len(rows), bad, good))
    print(f"== summary (wall time {time.perf_counter() - t0:.0f} s)")
    for chip, mode, n, bad, good in summary:

        def span(rs, key):
            return f"{min(r[key] for r in rs):.2f}-{max(r[key] for r in rs):.2f}" if rs else "-"

        n_fall = sum(r["called"] == "fall" for r in bad)
        print(
            f"{chip} {mode}: {len(bad)} of {n} empty-room windows called occupied ({n_fall} of them fall); "
            f"white x {span(bad, 'white_x')} (called empty: {span(good, 'white_x')}), "
            f"correlated max {max((r['correlated'] for r in bad), default=0):.4f} "
            f"(someone moving: >= 0.02), pattern {span(bad, 'pattern')} (called empty: {span(good, 'pattern')})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
