"""Drift: how far a DAC's production inputs are from what it was trained and calibrated on.

Inputs are per-window feature summaries (the mean and standard deviation over time of each
model feature, what the inference log keeps with `retention: features`), standardised by the
reference's own mean and spread.

- **MMD** (maximum mean discrepancy, RBF kernel, bandwidth by the median heuristic on the
  pooled sample; the unbiased estimate of MMD^2) with a **permutation p-value**: under "same
  distribution" the pooled windows are exchangeable, so shuffling them gives the statistic's
  null distribution, and p < alpha fires with false-alarm rate alpha by construction (the
  threshold is calibrated by the permutations themselves, no constant from elsewhere).
- **PSI** per feature (population stability index over the reference's deciles): a per-feature
  view of *where* the inputs moved; the usual reading (< 0.1 stable, 0.1-0.25 moderate,
  > 0.25 major) is a convention, reported, never used as the gate.
- **Class-rate shift**: the production decision rates against the rates the DAC decided on its
  reference windows: total variation distance and a chi-square test's p-value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def summarise(x: np.ndarray) -> np.ndarray:
    """Window features (T, F) or (n, T, F) -> their per-feature mean and standard deviation over
    time, (2F,) or (n, 2F): the inference log keeps exactly this per window."""
    x = np.asarray(x, dtype=np.float32)
    return np.concatenate([x.mean(-2), x.std(-2)], axis=-1)


def save_reference(path, features: np.ndarray, decisions: dict[str, int]) -> None:
    """The drift reference of a DAC: window summaries and the shipped model's decisions on them."""
    import io
    import json
    from pathlib import Path

    from iv_pipelines.paths import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, features=np.asarray(features, np.float32), decisions=np.array(json.dumps(decisions)))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_reference(path) -> tuple[np.ndarray, dict[str, int]]:
    import json

    with np.load(path) as z:
        return z["features"], json.loads(str(z["decisions"]))


@dataclass(frozen=True)
class DriftResult:
    mmd2: float
    p_value: float
    permutations: int
    n_reference: int
    n_production: int
    bandwidth: float
    psi_max: float
    psi_top: list[tuple[int, float]]  # (feature index, PSI), largest first

    def drifted(self, alpha: float) -> bool:
        return self.p_value < alpha

    def to_dict(self) -> dict:
        return asdict(self)


def _standardise(ref: np.ndarray, prod: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = ref.mean(0)
    sd = ref.std(0)
    sd = np.where(sd > 1e-9, sd, 1.0)
    return (ref - mu) / sd, (prod - mu) / sd


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def _mmd2_from_kernel(k: np.ndarray, n: int) -> float:
    """Unbiased MMD^2 of the first n rows/cols of the pooled kernel against the rest."""
    m = k.shape[0] - n
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    sxx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def mmd_test(
    reference: np.ndarray, production: np.ndarray, permutations: int = 200, seed: int = 0, max_n: int = 500
) -> tuple[float, float, float]:
    """(MMD^2, permutation p-value, bandwidth). Each sample is subsampled to `max_n` windows
    (seeded) so a tick costs the same whatever the log holds."""
    rng = np.random.default_rng(seed)
    ref = np.asarray(reference, dtype=np.float64)
    prod = np.asarray(production, dtype=np.float64)
    if ref.ndim != 2 or prod.ndim != 2 or ref.shape[1] != prod.shape[1]:
        raise ValueError(f"need two (n, d) samples of the same d; got {ref.shape} and {prod.shape}")
    if len(ref) < 5 or len(prod) < 5:
        raise ValueError(f"need at least 5 windows on each side; got {len(ref)} and {len(prod)}")
    if len(ref) > max_n:
        ref = ref[rng.choice(len(ref), max_n, replace=False)]
    if len(prod) > max_n:
        prod = prod[rng.choice(len(prod), max_n, replace=False)]
    ref, prod = _standardise(ref, prod)
    pooled = np.concatenate([ref, prod])
    d = _sqdist(pooled, pooled)
    med = float(np.median(d[np.triu_indices(len(pooled), 1)]))
    bw = med if med > 1e-12 else 1.0
    k = np.exp(-d / bw)
    n = len(ref)
    observed = _mmd2_from_kernel(k, n)
    exceed = 0
    for _ in range(permutations):
        idx = rng.permutation(len(pooled))
        if _mmd2_from_kernel(k[np.ix_(idx, idx)], n) >= observed:
            exceed += 1
    return observed, (exceed + 1) / (permutations + 1), bw


def psi(reference: np.ndarray, production: np.ndarray, bins: int = 10, eps: float = 1e-4) -> np.ndarray:
    """PSI per feature over the reference's quantile bins."""
    ref = np.asarray(reference, dtype=np.float64)
    prod = np.asarray(production, dtype=np.float64)
    out = np.zeros(ref.shape[1])
    for j in range(ref.shape[1]):
        edges = np.unique(np.quantile(ref[:, j], np.linspace(0, 1, bins + 1)[1:-1]))
        r = np.bincount(np.searchsorted(edges, ref[:, j], side="right"), minlength=len(edges) + 1)
        p = np.bincount(np.searchsorted(edges, prod[:, j], side="right"), minlength=len(edges) + 1)
        r = np.maximum(r / r.sum(), eps)
        p = np.maximum(p / p.sum(), eps)
        out[j] = float(((p - r) * np.log(p / r)).sum())
    return out


def measure(
    reference: np.ndarray, production: np.ndarray, permutations: int = 200, seed: int = 0
) -> DriftResult:
    mmd2, p, bw = mmd_test(reference, production, permutations, seed)
    per = psi(reference, production)
    order = np.argsort(per)[::-1][:5]
    return DriftResult(
        mmd2=round(mmd2, 6),
        p_value=round(p, 6),
        permutations=permutations,
        n_reference=len(reference),
        n_production=len(production),
        bandwidth=round(bw, 6),
        psi_max=round(float(per.max()), 4),
        psi_top=[(int(j), round(float(per[j]), 4)) for j in order],
    )


def class_rate_shift(reference: dict[str, int], production: dict[str, int]) -> dict:
    """Total variation distance between the decision rates, and a chi-square test of the
    production counts against the reference rates (classes with no reference decision are
    pooled into their neighbours' expected counts by a small floor)."""
    from scipy.stats import chisquare

    classes = sorted(set(reference) | set(production))
    r = np.array([reference.get(c, 0) for c in classes], dtype=np.float64)
    p = np.array([production.get(c, 0) for c in classes], dtype=np.float64)
    if r.sum() == 0 or p.sum() == 0:
        raise ValueError("need decisions on both sides")
    rr = np.maximum(r / r.sum(), 1e-3)
    rr /= rr.sum()
    tv = 0.5 * float(np.abs(p / p.sum() - r / r.sum()).sum())
    chi = chisquare(p, rr * p.sum())
    return {
        "classes": classes,
        "reference_rates": [round(float(x), 4) for x in r / r.sum()],
        "production_rates": [round(float(x), 4) for x in p / p.sum()],
        "total_variation": round(tv, 4),
        "p_value": float(chi.pvalue),
        "n_production": int(p.sum()),
    }
