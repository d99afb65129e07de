"""Open-ended Discovery Score (ODS), stored as `asal_consciousness`.

ASAL (Sakana, "Automating the Search for Artificial Life") measures a trajectory of
simulations in a foundation model's embedding space three ways; here the trajectory is the
sequence of hypotheses discovery produced (sentence vectors z_1..z_T, unit norm):
- target: how close the trajectory gets to the target, max_t cos(z_t, z_request);
- open-endedness: historical novelty, mean over t >= 2 of 1 - max_{t' < t} cos(z_t, z_t');
- illumination: spread of the final set, mean over i of 1 - max_{j != i} cos(z_i, z_j).
Each is turned into a conformal percentile against null trajectories (sequences of null
texts), then combined by geometric mean, then calibrated once more against the null ODS.
It measures how exploratory and on-target the search was; it is reported, not the gate.
"""

from __future__ import annotations

import numpy as np

from iv_pipelines.scoring.conformal import conformal_percentile

METRICS = ("target", "open_endedness", "illumination")


def trajectory_metrics(z: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(3,) raw ASAL metrics of a trajectory z (T, d) against a target vector (d,)."""
    t = z.shape[0]
    tgt = float((z @ target).max())
    if t < 2:
        return np.array([tgt, 0.0, 0.0])
    sim = z @ z.T
    oe = float(np.mean([1.0 - sim[i, :i].max() for i in range(1, t)]))
    off = sim - 2.0 * np.eye(t)
    ill = float(np.mean(1.0 - off.max(axis=1)))
    return np.array([tgt, oe, ill])


def geometric_mean(p: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    return np.exp(np.log(np.maximum(p, floor)).mean(axis=-1))


class OdsCalibration:
    def __init__(self, fit_null: np.ndarray, calib_null: np.ndarray):
        self.fit_sorted = np.sort(fit_null, axis=0)
        self.calib_gm = np.sort(geometric_mean(self._pct(calib_null)))

    def _pct(self, raw: np.ndarray) -> np.ndarray:
        raw = np.atleast_2d(raw)
        return np.stack([conformal_percentile(self.fit_sorted[:, k], raw[:, k]) for k in range(3)], axis=1)

    def score(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(percentiles (n,3), calibrated ODS (n,)) for raw metrics (n,3)."""
        pct = self._pct(raw)
        return pct, conformal_percentile(self.calib_gm, geometric_mean(pct))
