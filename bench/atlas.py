"""Energy Atlas (ladybug): ingest 1M energy states, then trajectory and anomaly query latency
for one DAC, each printed beside a pure-Python scan of the same data in the same run.

Goals (DESIGN §8): 1M states ingested < 60 s; trajectory query < 50 ms for one DAC.
Data: 1,000 DACs x 1,000 states (one per minute), E from a per-DAC level with noise.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from iv_pipelines.atlas.engine import LadybugAtlas, window_params
    from iv_pipelines.energy.atlas import EnergyState

    n_dac, per = 1000, 1000
    rng = np.random.default_rng(0)
    level = rng.uniform(10, 100, n_dac)
    E = (level[:, None] + rng.normal(0, 3, (n_dac, per))).ravel()
    states = [
        EnergyState(f"dac:d{d}", 60_000 * i, float(E[d * per + i]), 0.0, 0.5, "bench", "r")
        for d in range(n_dac)
        for i in range(per)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        atlas = LadybugAtlas(Path(tmp) / "graph")
        t0 = time.perf_counter()
        n = atlas.record(states)
        ingest = time.perf_counter() - t0
        print(
            f"ingest: {n:,} states in {ingest:.1f} s ({n / ingest:,.0f} states/s) | goal < 60 s: {'met' if ingest < 60 else 'NOT met'}"
        )
        win = (100 * 60_000, 400 * 60_000)
        lat = []
        for d in rng.integers(0, n_dac, 50):
            t0 = time.perf_counter()
            rows = atlas.trajectory(f"dac:d{d}", *win)
            lat.append(time.perf_counter() - t0)
        assert len(rows) == 300
        t0 = time.perf_counter()
        scan = [s for s in states if s.entity == "dac:d7" and win[0] <= s.ts_ms < win[1]]
        py_traj = time.perf_counter() - t0
        assert len(scan) == 300
        print(
            f"trajectory (one DAC, 300 of its 1,000 states): p50 {np.percentile(lat, 50) * 1e3:.1f} ms, "
            f"p99 {np.percentile(lat, 99) * 1e3:.1f} ms | pure-Python scan of 1M states {py_traj * 1e3:.0f} ms | "
            f"ratio {py_traj / np.percentile(lat, 50):.1f}x | goal < 50 ms: {'met' if np.percentile(lat, 99) < 0.05 else 'NOT met'}"
        )
        t0 = time.perf_counter()
        anomalies = atlas.query("anomalies", k=4.0, min_states=10, source="bench", **window_params())
        q_anom = time.perf_counter() - t0
        t0 = time.perf_counter()
        e = E.reshape(n_dac, per)
        mean, sd = e.mean(1, keepdims=True), e.std(1, keepdims=True)
        py_anom = int((np.abs(e - mean) > 4 * sd).sum())
        t_np = time.perf_counter() - t0
        print(
            f"anomalies (all DACs, 4 sigma): {len(anomalies)} states in {q_anom * 1e3:.0f} ms | numpy over the same "
            f"array {t_np * 1e3:.0f} ms ({py_anom} states) | ratio {q_anom / t_np:.1f}x slower than in-memory numpy"
        )
        atlas.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
