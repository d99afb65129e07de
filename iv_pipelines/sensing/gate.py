"""Comparing two models on the same held-out windows: paired tests, not point estimates.

`compare(correct_a, correct_b, nll_a, nll_b)` reports
- McNemar's exact test on the discordant windows (a right where b is wrong, and the reverse):
  two-sided p-value from the binomial(n01 + n10, 1/2) distribution;
- a paired bootstrap (windows resampled together) 95 % interval of the accuracy difference
  a - b and of the mean NLL difference;
- a verdict: `better` (interval above 0 and McNemar p < alpha), `worse` (interval below 0
  and p < alpha), `non-inferior` (interval above -margin, the stated non-inferiority margin),
  or `inconclusive` (too few windows to say).
Windows of one capture are correlated, so with real captures the interval is optimistic;
`block` resamples contiguous blocks of windows to soften that.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from math import comb

import numpy as np

MARGIN = 0.01  # accuracy points the adapter may lose and still count as non-inferior
ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    n: int
    accuracy_a: float
    accuracy_b: float
    a_only: int  # windows a classifies right and b wrong
    b_only: int
    mcnemar_p: float
    diff: float  # accuracy a - b
    diff_low: float
    diff_high: float
    nll_diff: float  # mean NLL a - b (negative: a more confident where right)
    nll_diff_low: float
    nll_diff_high: float
    margin: float
    verdict: str  # better | non-inferior | inconclusive | worse

    def to_dict(self) -> dict:
        return asdict(self)

    def sentence(self, a: str = "adapter", b: str = "base") -> str:
        return (
            f"{a} {self.accuracy_a:.3f} vs {b} {self.accuracy_b:.3f} on the same {self.n} windows: "
            f"difference {self.diff:+.3f} (95% CI {self.diff_low:+.3f}..{self.diff_high:+.3f}), "
            f"McNemar p={self.mcnemar_p:.3g} ({self.a_only} vs {self.b_only} discordant), "
            f"NLL difference {self.nll_diff:+.3f} ({self.nll_diff_low:+.3f}..{self.nll_diff_high:+.3f}); "
            f"margin {self.margin:.3f} -> {self.verdict}"
        )


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def compare(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    nll_a: np.ndarray,
    nll_b: np.ndarray,
    margin: float = MARGIN,
    alpha: float = ALPHA,
    n_boot: int = 2000,
    block: int = 1,
    seed: int = 0,
) -> Comparison:
    ca, cb = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    na, nb = np.asarray(nll_a, float), np.asarray(nll_b, float)
    n = len(ca)
    if n == 0 or len(cb) != n or len(na) != n or len(nb) != n:
        raise ValueError("compare needs the same non-empty set of windows for both models")
    a_only, b_only = int((ca & ~cb).sum()), int((~ca & cb).sum())
    d = ca.astype(float) - cb.astype(float)
    dn = na - nb
    rng = np.random.default_rng(seed)
    nblocks = int(np.ceil(n / block))
    starts = rng.integers(0, max(n - block, 0) + 1, size=(n_boot, nblocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n_boot, -1)[:, :n]
    boot, boot_n = d[idx].mean(1), dn[idx].mean(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    nlo, nhi = np.percentile(boot_n, [2.5, 97.5])
    p = mcnemar_exact(a_only, b_only)
    if lo > 0 and p < alpha:
        verdict = "better"
    elif hi < 0 and p < alpha:
        verdict = "worse"
    elif lo >= -margin:
        verdict = "non-inferior"
    else:
        verdict = "inconclusive"
    return Comparison(
        n=n,
        accuracy_a=float(ca.mean()),
        accuracy_b=float(cb.mean()),
        a_only=a_only,
        b_only=b_only,
        mcnemar_p=p,
        diff=float(d.mean()),
        diff_low=float(lo),
        diff_high=float(hi),
        nll_diff=float(dn.mean()),
        nll_diff_low=float(nlo),
        nll_diff_high=float(nhi),
        margin=margin,
        verdict=verdict,
    )


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion (successes out of n)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    d = 1 + z * z / n
    c = p + z * z / (2 * n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(max(0.0, (c - h) / d)), float(min(1.0, (c + h) / d))


def cluster_interval(
    clusters: list[np.ndarray], n_boot: int = 4000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of a pooled proportion whose outcomes (0/1 arrays) come in
    correlated clusters (the windows of one lab, one home): whole clusters are resampled with
    replacement, so the interval reflects how much the rate varies between clusters, not only
    the window count. Few clusters make it rough (six labs: read it as a scale, not a test)."""
    if not clusters or sum(len(c) for c in clusters) == 0:
        raise ValueError("cluster_interval needs at least one non-empty cluster")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    hits = np.array([float(np.sum(c)) for c in clusters])
    sizes = np.array([len(c) for c in clusters], float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(clusters), (n_boot, len(clusters)))
    total = sizes[idx].sum(axis=1)
    rates = hits[idx].sum(axis=1) / np.maximum(total, 1)
    rates = rates[total > 0]
    a = (1 - level) / 2
    return float(np.quantile(rates, a)), float(np.quantile(rates, 1 - a))


def constraint_status(measured: float, n: int, limit: float, sense: str) -> tuple[str, tuple[float, float]]:
    """`met` (the point estimate meets the limit), `missed` (the whole 95 % interval is on the
    wrong side: significantly worse) or `uncertain` (the estimate misses the limit by less than
    its noise), with the interval; `sense` is "min" (accuracy) or "max" (false alarms)."""
    lo, hi = wilson(measured * n, n)
    ok = measured >= limit if sense == "min" else measured <= limit
    if ok:
        return "met", (lo, hi)
    worse = hi < limit if sense == "min" else lo > limit
    return ("missed" if worse else "uncertain"), (lo, hi)


def decisive_evidence(evidence: dict) -> dict:
    """The evidence a DAC's accuracy claims rest on: the client's held-out real captures when
    it has them (`validated_on == client_device`), else the simulated client room."""
    return (
        evidence["client_device"] if evidence["validated_on"] == "client_device" else evidence["simulation"]
    )


def accuracy_constraints(constraints, evidence: dict) -> list[tuple[str, str, float, str, int, str]]:
    """(name, metric key, limit, sense, windows, source) of each accuracy-type constraint a
    request sets: accuracy over every window, the fall false-alarm rate over the non-fall
    windows, fall recall over the fall windows. `source` is the evidence it is judged on: the
    client's held-out real captures when the DAC has them (`validated_on == client_device`)
    and they measure it — fall recall only where the request gave real falls to evaluate on —
    else the simulated client room."""
    real = evidence.get("client_device") if evidence["validated_on"] == "client_device" else None
    rows = (
        ("min_accuracy", "accuracy", constraints.min_accuracy, "min", lambda e: int(e.get("n", 0))),
        (
            "max_false_alarm_rate",
            "fall_false_alarm_rate",
            constraints.max_false_alarm_rate,
            "max",
            lambda e: int(e.get("n", 0)) - int(e.get("n_fall", 0)),
        ),
        (
            "min_fall_recall",
            "recall_fall",
            getattr(constraints, "min_fall_recall", None),
            "min",
            lambda e: int(e.get("n_fall", 0)),
        ),
    )
    out = []
    for name, key, limit, sense, count in rows:
        if limit is None:
            continue
        source = "client_device" if real and key in real else "simulation"
        out.append((name, key, limit, sense, count(evidence[source]), source))
    return out


def constraint_violations(constraints, evidence: dict) -> list[str]:
    """Client constraints the shipped model's decisions significantly miss (the whole 95 %
    Wilson interval on the wrong side), each on the evidence that judges it
    (`accuracy_constraints`); an estimate that misses by less than its noise is not a violation."""
    out = []
    for name, key, limit, sense, n, source in accuracy_constraints(constraints, evidence):
        src = evidence[source] or {}
        if key not in src:
            continue
        status, (lo, hi) = constraint_status(src[key], n, limit, sense)
        if status == "missed":
            out.append(
                f"{name} {limit}: measured {src[key]:.3f} (95% CI {lo:.3f}-{hi:.3f}, {n} windows, {source})"
            )
    return out
